//! `wardgate serve`: wires configuration, recorder and proxy together and runs
//! until SIGTERM or Ctrl-C, then drains and seals the audit log.

use anyhow::{Context, Result};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use wardgate_config::Validated;
use wardgate_engine::event::{Action, Event};
use wardgate_engine::{Clock, Policy};
use wardgate_proxy::{Proxy, ProxyOptions};
use wardgate_store::{Recorder, RecorderOptions};

/// A running gateway: what `serve` and `demo` share.
pub(crate) struct Running {
    pub recorder: Recorder,
    pub proxy: Proxy,
    pub _lock: std::fs::File,
}

/// Opens the data directory (exclusively), starts the recorder and binds every route.
pub(crate) async fn start(v: &Validated) -> Result<Running> {
    let policy = Arc::new(
        Policy::compile(v)
            .map_err(|p| anyhow::Error::new(wardgate_config::ConfigError::Invalid(p)))?,
    );
    std::fs::create_dir_all(&v.data_dir)
        .with_context(|| format!("creating data_dir {}", v.data_dir.display()))?;
    let lock_path = v.data_dir.join("wardgate.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    // Two gateways writing one audit chain would fork it: refuse.
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another wardgate is using data_dir {}",
            v.data_dir.display()
        )
    })?;
    let g = &v.config.gateway;
    let mut ropts = RecorderOptions::new(&v.data_dir);
    ropts.checkpoint_every = g.audit.checkpoint_every;
    ropts.checkpoint_interval = Duration::from_millis(g.audit.checkpoint_interval_ms.max(10));
    ropts.fsync = g.audit.fsync;
    let recorder = Recorder::start(ropts).context("opening the audit log and event store")?;
    let proxy = Proxy::bind(policy, recorder.handle(), ProxyOptions::from_config(g)).await?;
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
        "gateway",
    );
    e.event.category = "process".into();
    recorder.handle().record(e)?;
    Ok(Running {
        recorder,
        proxy,
        _lock: lock,
    })
}

/// Records the stop, drains the recorder and seals the audit log.
pub(crate) fn finish(recorder: Recorder) -> Result<()> {
    let mut e = Event::new(
        Clock::now().rfc3339().to_owned(),
        Action::Stopped,
        "wardgate stopped".into(),
        "gateway",
    );
    e.event.category = "process".into();
    recorder.handle().record(e)?;
    recorder.shutdown().context("sealing the audit log")?;
    Ok(())
}

pub(crate) fn run(v: Validated) -> Result<ExitCode> {
    init_tracing();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let Running {
            recorder,
            proxy,
            _lock,
        } = start(&v).await?;
        for (id, addr) in proxy.local_addrs() {
            tracing::info!(route = %id, listen = %addr, "listening");
        }
        tracing::info!(data_dir = %v.data_dir.display(), "wardgate serving");
        let (tx, rx) = tokio::sync::watch::channel(false);
        let signals = tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: no new connections; finishing in-flight messages");
            let _ = tx.send(true);
        });
        proxy.run(rx).await;
        signals.abort();
        let sealed = finish(recorder);
        drop(_lock);
        sealed
    })?;
    tracing::info!("audit log sealed; bye");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
