//! `wardgate serve`: wires configuration, recorder and proxy together and runs
//! until SIGTERM or Ctrl-C, then drains and seals the audit log.

use anyhow::{Context, Result};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use wardgate_audit::fsx;
use wardgate_config::Validated;
use wardgate_engine::{Clock, Policy};
use wardgate_event::event::{Action, Event};
use wardgate_event::Category;
use wardgate_event::Stage;
use wardgate_proxy::{Proxy, ProxyOptions};
use wardgate_store::{Recorder, RecorderOptions};

/// Where the gateway writes the hash of the policy in force (`check --running`).
pub(crate) const POLICY_HASH_FILE: &str = "policy.hash";

/// A running gateway: what `serve` and `demo` share.
pub(crate) struct Running {
    pub recorder: Recorder,
    pub proxy: Proxy,
    /// The `[export]` destinations, fed from the audit log.
    pub exporters: Option<wardgate_export::Exporters>,
    /// The consent directory as it was just before the lists were read at
    /// start: the watcher's first state, so a list written in between is
    /// still seen as a change.
    pub consent_seen: crate::privacy::ConsentStamp,
    pub _lock: std::fs::File,
}

/// The data directory's lock file, opened (not yet locked).
fn lock_file(v: &Validated) -> Result<std::fs::File> {
    fsx::create_dir(&v.data_dir)
        .with_context(|| format!("creating data_dir {}", v.data_dir.display()))?;
    let lock_path = v.data_dir.join("wardgate.lock");
    fsx::create_if_missing(&lock_path)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))
}

/// Most paths named one by one in the start-up record of wide modes.
const WIDE_LISTED: usize = 20;

/// Warns (stderr and a `WG-AUDIT-005` record) about anything in data_dir that
/// grants more than wardgate gives it: directories 0750, files 0640, keys 0600.
fn check_modes(v: &Validated, recorder: &wardgate_store::RecorderHandle) -> Result<()> {
    let report = fsx::wide_modes(&v.data_dir, 100_000)
        .with_context(|| format!("checking the modes in {}", v.data_dir.display()))?;
    if report.wide.is_empty() {
        return Ok(());
    }
    for w in report.wide.iter().take(100) {
        tracing::warn!(
            path = %w.path.display(),
            mode = %format!("{:04o}", w.mode),
            want = %format!("{:04o}", w.allowed),
            "wider permissions than wardgate gives (the data directory holds events that name patients, and keys)"
        );
    }
    let listed: Vec<String> = report
        .wide
        .iter()
        .take(WIDE_LISTED)
        .map(|w| {
            format!(
                "{} {:04o} (want {:04o})",
                w.path.display(),
                w.mode,
                w.allowed
            )
        })
        .collect();
    let more = report.wide.len().saturating_sub(WIDE_LISTED);
    let mut e = Event::new(
        Clock::now().rfc3339().to_owned(),
        Action::Alerted,
        format!(
            "{} path(s) in data_dir grant more than wardgate gives (directories 0750, files 0640, keys 0600): {}{}{}",
            report.wide.len(),
            listed.join(", "),
            if more > 0 { format!(", and {more} more") } else { String::new() },
            if report.truncated { " (the check stopped at 100 000 entries)" } else { "" }
        ),
        Stage::Gateway,
    )
    .with_rule(wardgate_event::rules::DATA_DIR_MODES);
    e.event.category = Category::Process;
    recorder.record(e)?;
    Ok(())
}

/// Takes the data directory exclusively and starts the recorder on it: two
/// processes writing one audit chain would fork it. `hint` is added to the
/// refusal (what the caller could do instead).
pub(crate) fn open_data_dir(
    v: &Validated,
    hint: &str,
    gap: crate::GapArg,
) -> Result<(Recorder, std::fs::File)> {
    let lock = lock_file(v)?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another wardgate is using data_dir {}{hint}",
            v.data_dir.display()
        )
    })?;
    let g = &v.config.gateway;
    let mut ropts = RecorderOptions::new(&v.data_dir);
    ropts.checkpoint_every = g.audit.checkpoint_every;
    ropts.checkpoint_interval = Duration::from_millis(g.audit.checkpoint_interval_ms.max(10));
    ropts.fsync = g.audit.fsync;
    ropts.accept_gap = gap.accept_audit_gap;
    ropts.rotate_bytes = g.audit.rotate_bytes;
    ropts.rotate_age = Duration::from_secs(g.audit.rotate_secs);
    let recorder = Recorder::start(ropts).context("opening the audit log and event store")?;
    check_modes(v, &recorder.handle())?;
    Ok((recorder, lock))
}

/// The nonces of MQTT commands forwarded before this start that are still
/// within their replay window, from `data_dir/mqtt-command-nonces` (each
/// appended before its command was forwarded), as `(signer, nonce, expires)`;
/// the file is rewritten with only those. Lines that do not parse are
/// dropped (a torn last line after a crash).
fn recorded_command_nonces(v: &Validated) -> Vec<(String, String, i64)> {
    let path = v.data_dir.join(NONCE_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let now = Clock::now().unix_secs();
    let live: Vec<(String, String, i64)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let expires: i64 = f.next()?.parse().ok()?;
            let (signer, nonce) = (f.next()?, f.next()?);
            (f.next().is_none() && expires > now)
                .then(|| (signer.to_owned(), nonce.to_owned(), expires))
        })
        .collect();
    let kept: String = live
        .iter()
        .map(|(s, n, e)| format!("{e} {s} {n}\n"))
        .collect();
    if let Err(e) = wardgate_audit::fsx::write_replace(&path, kept.as_bytes()) {
        tracing::error!(error = %e, "could not compact the MQTT command nonces");
    }
    live
}

/// Where forwarded MQTT commands' nonces are kept across restarts.
const NONCE_FILE: &str = "mqtt-command-nonces";

/// Opens the data directory (exclusively), starts the recorder and binds every route.
pub(crate) async fn start(v: &Validated, gap: crate::GapArg) -> Result<Running> {
    // Checked before the data directory is touched: a bad policy opens nothing.
    Policy::compile(v).map_err(|p| anyhow::Error::new(wardgate_config::ConfigError::Invalid(p)))?;
    let (recorder, lock) = open_data_dir(v, "", gap)?;
    let consent_seen = crate::privacy::consent_stamp(v);
    let (site, key_made) = crate::privacy::open_site(v)?;
    let policy = Arc::new(
        Policy::compile_with(v, &site)
            .map_err(|p| anyhow::Error::new(wardgate_config::ConfigError::Invalid(p)))?,
    );
    recorder.handle().set_overrides(policy.overrides.clone());
    recorder
        .handle()
        .set_repeat_window(v.config.gateway.alert_repeat_window_secs);
    // Before anything of this run is recorded, so that an export starting at
    // the log's end still sends this run's start.
    let exporters = start_exports(v, &recorder)?;
    let g = &v.config.gateway;
    let mut popts = ProxyOptions::from_config(g);
    popts.queue_dir = Some(v.data_dir.join("queue"));
    popts.nonce_file = Some(v.data_dir.join(NONCE_FILE));
    let nonces = recorded_command_nonces(v);
    let proxy = Proxy::bind(policy, recorder.handle(), popts).await?;
    if !nonces.is_empty() {
        let n = proxy.remember_command_nonces(&nonces);
        tracing::info!(
            nonces = n,
            "MQTT command nonces of the last window remembered"
        );
    }
    let routes: Vec<String> = proxy
        .local_addrs()
        .iter()
        .map(|(id, a)| format!("{id}@{a}"))
        .collect();
    let mut e = Event::new(
        Clock::now().rfc3339().to_owned(),
        Action::Started,
        format!(
            "wardgate {} started; routes: {}",
            env!("CARGO_PKG_VERSION"),
            routes.join(", ")
        ),
        Stage::Gateway,
    );
    e.event.category = Category::Process;
    recorder.handle().record(e)?;
    if let Some(fingerprint) = key_made {
        let mut e = Event::new(
            Clock::now().rfc3339().to_owned(),
            Action::Changed,
            format!(
                "made the site key {} (fingerprint {fingerprint}): every pseudonym depends on it; back it up",
                v.privacy.key_file.display()
            ),
            Stage::Gateway,
        );
        e.event.category = Category::Configuration;
        recorder.handle().record(e)?;
    }
    applied(v, &proxy.policy().load(), None, &recorder.handle())?;
    // For `wardgate reload`: which process serves this data directory.
    let pid_path = v.data_dir.join("wardgate.pid");
    fsx::write_replace(&pid_path, format!("{}\n", std::process::id()).as_bytes())
        .with_context(|| format!("writing {}", pid_path.display()))?;
    Ok(Running {
        recorder,
        proxy,
        exporters,
        consent_seen,
        _lock: lock,
    })
}

/// Starts the `[export]` destinations, if any, on the data directory's audit log.
fn start_exports(v: &Validated, recorder: &Recorder) -> Result<Option<wardgate_export::Exporters>> {
    if v.export.syslog.is_empty() && v.export.eve.is_none() {
        return Ok(None);
    }
    let exporters = wardgate_export::Exporters::start(
        &v.export,
        &v.data_dir,
        &crate::identity(v),
        Some(recorder.handle()),
    )
    .context("starting the exports")?;
    for s in &v.export.syslog {
        tracing::info!(export = %s.name, collector = %s.address, "exporting events to syslog");
    }
    if let Some(e) = &v.export.eve {
        tracing::info!(path = %e.path.display(), "exporting events to the EVE file");
    }
    Ok(Some(exporters))
}

/// How long the exports may take at shutdown to send what the sealed log holds
/// and see it delivered.
fn export_grace(v: &Validated) -> Duration {
    let settle = v
        .export
        .syslog
        .iter()
        .map(|s| s.settle_ms)
        .max()
        .unwrap_or(0);
    Duration::from_secs(5) + Duration::from_millis(settle)
}

/// Records the stop, drains the recorder, seals the audit log, then lets the
/// exports send what it holds (for a bounded time) and save their cursors.
pub(crate) fn finish(
    recorder: Recorder,
    exporters: Option<wardgate_export::Exporters>,
    grace: Duration,
) -> Result<()> {
    // Episodes of repeated alerts still open are summarised before the end.
    recorder
        .handle()
        .sweep_repeats(Clock::now().rfc3339(), true)?;
    let mut e = Event::new(
        Clock::now().rfc3339().to_owned(),
        Action::Stopped,
        "wardgate stopped".into(),
        Stage::Gateway,
    );
    e.event.category = Category::Process;
    recorder.handle().record(e)?;
    let sealed = recorder.shutdown().context("sealing the audit log");
    if let Some(x) = exporters {
        x.shutdown(grace);
    }
    sealed
}

/// Ends episodes of repeated alerts whose source has gone quiet, even if it
/// never alerts again: their summaries are recorded within a second.
async fn sweep_repeats(recorder: wardgate_store::RecorderHandle) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let r = recorder.clone();
        let swept =
            tokio::task::spawn_blocking(move || r.sweep_repeats(Clock::now().rfc3339(), false))
                .await;
        if let Ok(Err(e)) = swept {
            tracing::error!(error = %e, "could not record an alert episode's summary");
        }
    }
}

/// Tells systemd the service's state when it runs as a `Type=notify` unit
/// (`NOTIFY_SOCKET` set); nothing otherwise. A failure to tell is logged, not
/// fatal: the gateway serves either way.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

pub(crate) fn run(v: Validated, gap: crate::GapArg) -> Result<ExitCode> {
    init_tracing();
    let started = (std::time::SystemTime::now(), std::time::Instant::now());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let Signals { term, int, hup } = Signals::install()?;
        let Running {
            recorder,
            proxy,
            exporters,
            consent_seen,
            _lock,
        } = start(&v, gap).await?;
        // With the data directory locked: a stale status socket is ours to replace.
        let admin = match crate::admin::start(&v, proxy.monitor(), recorder.handle(), started) {
            Ok(a) => a,
            Err(e) => {
                drop(proxy);
                let _ = finish(recorder, exporters, export_grace(&v));
                let _ = std::fs::remove_file(v.data_dir.join("wardgate.pid"));
                return Err(e);
            }
        };
        for (id, addr) in proxy.local_addrs() {
            tracing::info!(route = %id, listen = %addr, "listening");
        }
        tracing::info!(data_dir = %v.data_dir.display(), "wardgate serving");
        // systemd (Type=notify): every listener is bound and the audit log open.
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&format!(
                "serving {} route(s), policy {}",
                v.routes.len(),
                &proxy.policy().load().hash[..16]
            )),
        ]);
        let expiry = tokio::spawn(watch_expiry(v.clone(), recorder.handle()));
        let repeats = tokio::spawn(sweep_repeats(recorder.handle()));
        let current = Arc::new(arc_swap::ArcSwap::from_pointee(v.clone()));
        let console = match &v.console {
            Some(c) => match wardgate_console::Console::start(
                c,
                v.config.source.name.clone().into(),
                Arc::new(ConsoleGateway {
                    status: admin.source(),
                    config: current.clone(),
                }),
                recorder.handle(),
            ) {
                Ok(c) => Some(c),
                Err(e) => {
                    admin.stop();
                    drop(proxy);
                    let _ = finish(recorder, exporters, export_grace(&v));
                    let _ = std::fs::remove_file(v.data_dir.join("wardgate.pid"));
                    return Err(anyhow::Error::new(e).context("starting the console"));
                }
            },
            None => None,
        };
        let reassess = Arc::new(tokio::sync::Notify::new());
        let risk = tokio::spawn(assess_risk(
            current.clone(),
            recorder.handle(),
            reassess.clone(),
        ));
        let consent = tokio::spawn(watch_consent(
            current.clone(),
            proxy.policy().load().site.clone(),
            recorder.handle(),
            consent_seen,
        ));
        let reload = tokio::spawn(reload_on_sighup(
            hup,
            recorder.handle(),
            v.config.source.name.clone().into(),
            proxy.policy(),
            current,
            reassess,
        ));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let signals = tokio::spawn(async move {
            wait_for_signal(term, int).await;
            tracing::info!("shutdown requested: no new connections; finishing in-flight messages");
            notify(&[sd_notify::NotifyState::Stopping]);
            let _ = tx.send(true);
        });
        proxy.run(rx).await;
        if let Some(c) = console {
            c.stop();
        }
        admin.stop();
        signals.abort();
        expiry.abort();
        repeats.abort();
        reload.abort();
        risk.abort();
        consent.abort();
        let sealed = finish(recorder, exporters, export_grace(&v));
        let _ = std::fs::remove_file(v.data_dir.join("wardgate.pid"));
        drop(_lock);
        sealed
    })?;
    tracing::info!("audit log sealed; bye");
    Ok(ExitCode::SUCCESS)
}

/// Consent lists, in the running gateway: re-read when their files change
/// (`wardgate consent add` writes them), put in force at once, and the change
/// recorded with the count per purpose. Each use of the key by `wardgate
/// consent` (spooled by the command, with who ran it) is recorded too.
async fn watch_consent(
    current: Arc<arc_swap::ArcSwap<Validated>>,
    site: wardgate_privacy::Site,
    recorder: wardgate_store::RecorderHandle,
    seen: crate::privacy::ConsentStamp,
) {
    let mut watch = ConsentWatch::new(seen);
    let mut uses = crate::privacy::UsesState::default();
    let mut tick = tokio::time::interval(STORE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let v = current.load_full();
        // The lists first: a new opt-out is in force before anything else
        // this poll waits on the recorder.
        if let Some(report_failure) = watch.poll(crate::privacy::consent_stamp(&v)) {
            reload_consent(&v, &site, &mut watch, report_failure, &recorder);
        }
        // Then the uses of the key on the command line (`wardgate consent`),
        // into the audit chain; each spooled file goes once the recorder took
        // it.
        let r = recorder.clone();
        let drained = tokio::task::spawn_blocking(move || {
            let mut uses = uses;
            crate::privacy::drain_uses(&v, &mut uses, &mut |e| match r.record(e) {
                Ok(()) => true,
                Err(err) => {
                    tracing::error!(error = %err, "could not record a use of the site key");
                    false
                }
            });
            uses
        })
        .await;
        uses = drained.unwrap_or_default();
    }
}

/// Reads the consent lists again and puts them in force, recording it (a
/// failure only when `report_failure`: once per change).
fn reload_consent(
    v: &Validated,
    site: &wardgate_privacy::Site,
    watch: &mut ConsentWatch<crate::privacy::ConsentStamp>,
    report_failure: bool,
    recorder: &wardgate_store::RecorderHandle,
) {
    let fingerprint = site
        .patients
        .pseudonymiser()
        .map(|p| p.fingerprint().to_owned())
        .unwrap_or_default();
    let (text, ok) = match crate::privacy::load_consent(v, &fingerprint) {
        Ok(lists) => {
            let counts = lists.counts();
            site.consent.replace(lists);
            let list: Vec<String> = counts.iter().map(|(p, n)| format!("{p}: {n}")).collect();
            (
                format!(
                    "consent opt-out lists put in force ({})",
                    if list.is_empty() {
                        "none".into()
                    } else {
                        list.join(", ")
                    }
                ),
                true,
            )
        }
        // The lists in force stay: a half-written or wrong file never
        // empties an opt-out list.
        Err(e) => (
            format!("consent lists not reloaded, the previous ones stay in force (tried again every {} s until they read): {e:#}", STORE_POLL.as_secs()),
            false,
        ),
    };
    watch.loaded(ok);
    if !ok && !report_failure {
        return;
    }
    let mut e = Event::new(
        Clock::now().rfc3339().to_owned(),
        if ok { Action::Reloaded } else { Action::Failed },
        text,
        Stage::Gateway,
    );
    e.event.category = Category::Configuration;
    if let Err(err) = recorder.record(e) {
        tracing::error!(error = %err, "could not record the consent lists' reload");
    }
}

/// When the running gateway reads the consent lists again: when the
/// directory changes, and, while the last read failed, at every poll, so a
/// fix that leaves names, sizes and times alone (a `chmod`, a mount back)
/// still takes effect. A failure is recorded once per change, not per poll.
struct ConsentWatch<S> {
    seen: S,
    failing: bool,
}

impl<S: PartialEq> ConsentWatch<S> {
    fn new(seen: S) -> Self {
        ConsentWatch {
            seen,
            failing: false,
        }
    }

    /// `None`: nothing to read. `Some(report)`: read the lists; `report`
    /// says whether a failure of this read is to be recorded.
    fn poll(&mut self, now: S) -> Option<bool> {
        let changed = now != self.seen;
        self.seen = now;
        match (changed, self.failing) {
            (false, false) => None,
            (changed, failing) => Some(changed || !failing),
        }
    }

    /// What the read gave.
    fn loaded(&mut self, ok: bool) {
        self.failing = !ok;
    }
}

/// Device risk, in the running gateway: at start, after every reload, and every
/// `[risk] assess_every_secs`, the devices are assessed against the advisories
/// in data_dir and what changed is recorded (`WG-RISK-*`, `WG-MUD-*`), so new
/// advisory hits and thresholds crossed reach the syslog stream and the console.
async fn assess_risk(
    current: Arc<arc_swap::ArcSwap<Validated>>,
    recorder: wardgate_store::RecorderHandle,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        let v = current.load_full();
        let every = v.config.risk.assess_every_secs();
        let data_dir = v.data_dir.clone();
        let seen = crate::risk::store_stamp(&data_dir);
        let r = recorder.clone();
        let done = tokio::task::spawn_blocking(move || -> Result<usize> {
            let (risks, problems) = crate::risk::assess(&v, &v.data_dir, None)?;
            for p in problems {
                tracing::warn!(problem = %p, "risk assessment");
            }
            let (events, state) =
                crate::risk::findings(&v.data_dir, &risks, Clock::now().rfc3339())?;
            let n = events.len();
            for e in events {
                r.record(e)?;
            }
            // Only once every finding is in the record: a stop mid-way
            // leaves them to be found again, not lost.
            crate::risk::save_state(&v.data_dir, &state)?;
            Ok(n)
        })
        .await;
        match done {
            Ok(Ok(n)) => tracing::info!(findings = n, "devices assessed for risk"),
            Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "risk assessment failed"),
            Err(e) => tracing::error!(error = %e, "risk assessment task failed"),
        }
        // Until the next period, a reload, or advisories imported meanwhile
        // (`wardgate advisories import` changes the store's directories):
        // a new hit should not wait an hour for its alert.
        let started = tokio::time::Instant::now();
        loop {
            let left = match every {
                0 => STORE_POLL,
                n => Duration::from_secs(n).saturating_sub(started.elapsed()),
            };
            if left.is_zero() {
                break;
            }
            if tokio::time::timeout(left.min(STORE_POLL), wake.notified())
                .await
                .is_ok()
            {
                break;
            }
            let d = data_dir.clone();
            let now = tokio::task::spawn_blocking(move || crate::risk::store_stamp(&d))
                .await
                .unwrap_or_default();
            if now != seen {
                tracing::info!("advisories or VEX statements changed: assessing again");
                break;
            }
        }
    }
}

/// How often the risk task looks whether the advisory store changed.
const STORE_POLL: Duration = Duration::from_secs(5);

/// Alerts on certificates close to expiry (listeners', the built-in CA's and the
/// devices' it issued), at start and every six hours, so a renewal is planned
/// rather than discovered when a device can no longer connect.
async fn watch_expiry(v: Validated, recorder: wardgate_store::RecorderHandle) {
    let window = time::Duration::days(
        i64::try_from(v.config.gateway.cert_expiry_warning_days).unwrap_or(i64::MAX / 86_400_000),
    );
    loop {
        let v2 = v.clone();
        let found = tokio::task::spawn_blocking(move || expiring(&v2, window))
            .await
            .unwrap_or_default();
        for x in found {
            let reason = if x.days_left < 0 {
                format!("{} ({}) expired on {}", x.what, x.subject, x.not_after)
            } else {
                format!(
                    "{} ({}) expires on {}, in {} day(s)",
                    x.what, x.subject, x.not_after, x.days_left
                )
            };
            let mut e = Event::new(
                Clock::now().rfc3339().to_owned(),
                Action::Alerted,
                reason,
                Stage::Gateway,
            )
            .with_rule(wardgate_event::rules::TLS_EXPIRING);
            e.event.category = Category::Configuration;
            if let Err(err) = recorder.record(e) {
                tracing::error!(error = %err, "could not record a certificate expiry alert");
            }
        }
        tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
    }
}

fn expiring(v: &Validated, window: time::Duration) -> Vec<wardgate_tls::Expiring> {
    let now = time::OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for r in &v.routes {
        if let Some(t) = &r.listen_tls {
            match wardgate_tls::expiring_in_file(&t.cert, window, now) {
                Ok(x) => out.extend(x),
                Err(e) => {
                    tracing::warn!(error = %e, route = %r.id, "cannot read the listener certificate")
                }
            }
        }
    }
    if let Ok(ca) = wardgate_tls::Ca::load(&v.data_dir) {
        match ca.expiring(window, now) {
            Ok(x) => out.extend(x),
            Err(e) => tracing::warn!(error = %e, "cannot read the CA's register"),
        }
    }
    out
}

/// Records a policy put in force (at start, or by a reload replacing `previous`)
/// and writes its hash for `wardgate check --running`.
fn applied(
    v: &Validated,
    policy: &Policy,
    previous: Option<&Policy>,
    recorder: &wardgate_store::RecorderHandle,
) -> Result<()> {
    let libraries: Vec<String> = policy
        .libraries
        .iter()
        .map(|l| {
            format!(
                "{} version {} {}",
                l.id,
                l.version.as_deref().unwrap_or("-"),
                l.signer
                    .as_deref()
                    .map_or_else(|| "unsigned".to_owned(), |s| format!("signed by {s}"))
            )
        })
        .collect();
    let changes = previous.map(|p| policy.changes(p, 200)).unwrap_or_default();
    let reason = match previous {
        None => format!("policy {} applied at start", &policy.hash[..16]),
        Some(p) => format!(
            "policy {} applied, replacing {}: {} change(s)",
            &policy.hash[..16],
            &p.hash[..16],
            changes.len()
        ),
    };
    let mut e = Event::new(
        Clock::now().rfc3339().to_owned(),
        Action::PolicyApplied,
        reason,
        Stage::Gateway,
    );
    e.event.category = Category::Configuration;
    e.wardgate.policy = Some(policy.hash[..16].to_owned());
    e.wardgate.policy_applied = Some(wardgate_event::event::PolicyApplied {
        hash: policy.hash.clone(),
        previous: previous.map(|p| p.hash.clone()),
        changes,
        libraries,
    });
    recorder.record(e)?;
    let path = v.data_dir.join(POLICY_HASH_FILE);
    fsx::write_replace(&path, format!("{}\n", policy.hash).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Re-reads and validates the whole configuration (devices, routes, drug
/// libraries and their signatures) and, if it is valid and keeps the routes'
/// listeners, TLS and delivery as they are, returns the policy to swap in.
fn load_for_reload(
    path: &std::path::Path,
    running: &Policy,
    running_v: &Validated,
) -> Result<(Validated, Policy), String> {
    let v = wardgate_config::Config::load(path).map_err(|e| e.to_string())?;
    // The site key and consent lists stay those the gateway started with.
    let p = Policy::compile_with(&v, &running.site)
        .map_err(|problems| wardgate_config::ConfigError::Invalid(problems).to_string())?;
    // What a running gateway cannot take without a restart is refused, not
    // half-applied: its data directory, [gateway] settings, flood limits.
    if v.data_dir != running_v.data_dir {
        return Err("data_dir changed: restart wardgate to apply".into());
    }
    if v.export != running_v.export {
        return Err("[export] changed: restart wardgate to apply".into());
    }
    // The key and what records name patients by are the running gateway's:
    // half-applied, events would name patients one way and traffic another.
    if v.privacy != running_v.privacy {
        return Err("[privacy] changed: restart wardgate to apply".into());
    }
    let opts = |v: &Validated| format!("{:?}", ProxyOptions::from_config(&v.config.gateway));
    if opts(&v) != opts(running_v) {
        return Err("[gateway] settings (timeouts, sizes, workers, connection cap) changed: restart wardgate to apply".into());
    }
    if v.console != running_v.console {
        return Err("[console] changed: restart wardgate to apply".into());
    }
    if v.admin != running_v.admin {
        return Err(
            "[gateway.admin] (metrics address, status socket) changed: restart wardgate to apply"
                .into(),
        );
    }
    if format!("{:?}", p.flood) != format!("{:?}", running.flood) {
        return Err(
            "flood limits ([gateway.limits], [device.limits]) changed: restart wardgate to apply"
                .into(),
        );
    }
    if p.routes.len() != running.routes.len() {
        return Err("the routes changed (added or removed): restart wardgate to apply".into());
    }
    for (a, b) in running.routes.iter().zip(&p.routes) {
        let same = a.id == b.id
            && a.protocol == b.protocol
            && a.listen == b.listen
            && a.upstream == b.upstream
            && a.listen_tls == b.listen_tls
            && a.upstream_tls == b.upstream_tls
            && a.delivery == b.delivery;
        if !same {
            return Err(format!(
                "route {:?}: its id, protocol, listen or upstream address, TLS or delivery changed: restart wardgate to apply",
                &*a.id
            ));
        }
    }
    Ok((v, p))
}

/// SIGHUP (or `wardgate reload`): TLS certificates, keys, CAs and CRLs are
/// re-read before the next connection, and the whole configuration is re-read,
/// validated and swapped in atomically for new connections and new messages.
/// An invalid file leaves the running policy in force and says why.
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    recorder: wardgate_store::RecorderHandle,
    config: std::path::PathBuf,
    cell: Arc<arc_swap::ArcSwap<Policy>>,
    current: Arc<arc_swap::ArcSwap<Validated>>,
    reassess: Arc<tokio::sync::Notify>,
) {
    let mut running_v = current.load_full();
    {
        while hup.recv().await.is_some() {
            wardgate_proxy::request_reload();
            // logrotate renamed the EVE file and wants a new one.
            wardgate_export::reopen_files();
            tracing::info!("SIGHUP: TLS material will be reloaded before the next connection");
            let mut e = Event::new(
                Clock::now().rfc3339().to_owned(),
                Action::Reloaded,
                "SIGHUP: TLS certificates, keys, CAs and CRLs reloaded for new connections".into(),
                Stage::Gateway,
            );
            e.event.category = Category::Configuration;
            let _ = recorder.record(e);
            let running = cell.load_full();
            let path = config.clone();
            let rv = running_v.clone();
            let r =
                tokio::task::spawn_blocking(move || load_for_reload(&path, &running, &rv)).await;
            let running = cell.load_full();
            match r {
                Ok(Ok((v, policy))) if policy.hash == running.hash => {
                    tracing::info!("SIGHUP: the configuration is unchanged");
                    let _ = (v, policy);
                }
                Ok(Ok((v, policy))) => {
                    let policy = Arc::new(policy);
                    recorder.set_overrides(policy.overrides.clone());
                    cell.store(policy.clone());
                    tracing::info!(policy = %&policy.hash[..16], "SIGHUP: new policy applied");
                    if let Err(err) = applied(&v, &policy, Some(&running), &recorder) {
                        tracing::error!(error = %err, "could not record the applied policy");
                    }
                    running_v = Arc::new(v);
                    current.store(running_v.clone());
                }
                Ok(Err(why)) => {
                    tracing::error!(%why, "SIGHUP: configuration refused; the running policy stays");
                    let mut e = Event::new(
                        Clock::now().rfc3339().to_owned(),
                        Action::Failed,
                        format!(
                            "reload refused; policy {} stays in force: {why}",
                            &running.hash[..16]
                        ),
                        Stage::Gateway,
                    );
                    e.event.category = Category::Configuration;
                    e.wardgate.policy = Some(running.hash[..16].to_owned());
                    let _ = recorder.record(e);
                }
                Err(join) => tracing::error!(error = %join, "reload task failed"),
            }
            // Advisories imported since, or devices changed: assess again, with
            // the configuration now in force (a `Notify` keeps one permit, so
            // the wake is not lost while an assessment runs).
            reassess.notify_one();
        }
    }
}

/// What the console reads of the running gateway: the status document (the
/// metrics endpoint's), the configuration in force (swapped by each reload
/// applied), and a reload (a SIGHUP to this process, so it takes the one path
/// every reload takes).
struct ConsoleGateway {
    status: crate::admin::StatusSource,
    config: Arc<arc_swap::ArcSwap<Validated>>,
}

impl wardgate_console::Gateway for ConsoleGateway {
    fn status(&self) -> wardgate_console::BoxFuture<'_, serde_json::Value> {
        Box::pin(self.status.json())
    }

    fn config(&self) -> Arc<Validated> {
        self.config.load_full()
    }

    fn reload(&self) {
        if let Err(e) =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP)
        {
            tracing::error!(error = %e, "the console could not ask for a reload");
        }
    }

    fn reidentify(&self, pseudonym: &str) -> Option<String> {
        // The key is read from its file for each use, as `wardgate consent` does.
        let v = self.config.load_full();
        let found = crate::privacy::load_key(&v.privacy.key_file, false).and_then(|key| {
            crate::privacy::reidentify(&crate::privacy::table_path(&v), &key, pseudonym)
        });
        match found {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "could not re-identify");
                None
            }
        }
    }
}

/// The signals `serve` handles, registered before anything is bound or
/// announced: until a handler exists, SIGTERM and SIGHUP kill the process
/// (SIGHUP's default is to terminate), so a stop or `systemctl reload` right
/// after start would lose the audit log's seal.
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must run inside the runtime.
    pub(crate) fn install() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("handling SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("handling SIGINT")?,
            hup: signal(SignalKind::hangup()).context("handling SIGHUP")?,
        })
    }
}

async fn wait_for_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Operational logs to stderr, filtered by `WARDGATE_LOG`. Colour only on a
/// terminal (and not with `NO_COLOR`): escape codes in a log file, journald or
/// a syslog relay are noise an operator has to strip before reading or grepping.
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(log_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .try_init();
}

/// Whether logs are coloured: on a terminal, unless `NO_COLOR` is set to
/// anything but the empty string (no-color.org).
fn log_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// `wardgate reload`: asks the gateway serving this data directory to re-read its
/// configuration, drug libraries, TLS certificates, keys, CAs and CRLs (a SIGHUP to the process in wardgate.pid,
/// checked against the data directory's lock so a stale pid is never signalled).
pub(crate) fn reload(v: &Validated) -> Result<ExitCode> {
    let lock = lock_file(v)?;
    if lock.try_lock().is_ok() {
        anyhow::bail!("no wardgate is serving data_dir {}", v.data_dir.display());
    }
    let pid_path = v.data_dir.join("wardgate.pid");
    let text = std::fs::read_to_string(&pid_path)
        .with_context(|| format!("reading {}", pid_path.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} holds no process id", pid_path.display()))?;
    let pid = rustix::process::Pid::from_raw(pid)
        .with_context(|| format!("{} holds no process id", pid_path.display()))?;
    rustix::process::kill_process(pid, rustix::process::Signal::HUP)
        .with_context(|| format!("signalling process {}", pid.as_raw_nonzero()))?;
    println!(
        "asked wardgate (pid {}) to reload its configuration and TLS material; `wardgate check --running` tells when it is in force, and the events say why if it was refused",
        pid.as_raw_nonzero()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(super::log_colour(true, None));
        assert!(super::log_colour(true, Some(OsStr::new(""))));
        assert!(!super::log_colour(true, Some(OsStr::new("1"))));
        assert!(!super::log_colour(false, None));
        assert!(!super::log_colour(false, Some(OsStr::new(""))));
    }

    /// A failed read of the consent lists is tried again at every poll until
    /// it succeeds, and recorded once per change, not per poll.
    #[test]
    fn a_failed_consent_read_is_retried_and_reported_once() {
        let mut w = super::ConsentWatch::new(1);
        assert_eq!(w.poll(1), None, "unchanged: nothing to read");
        assert_eq!(w.poll(2), Some(true), "changed: read, report a failure");
        w.loaded(false);
        assert_eq!(w.poll(2), Some(false), "failed: read again, quietly");
        w.loaded(false);
        assert_eq!(w.poll(3), Some(true), "failed and changed: reported again");
        w.loaded(false);
        assert_eq!(w.poll(3), Some(false));
        w.loaded(true);
        assert_eq!(w.poll(3), None, "read: back to watching for changes");
    }
}
