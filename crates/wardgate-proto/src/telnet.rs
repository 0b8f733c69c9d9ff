//! Telnet logins (RFC 854), seen from both directions of one connection.
//!
//! Telnet commands (RFC 854 "TELNET COMMAND STRUCTURE": `IAC IAC` is a literal
//! 0xFF, `IAC WILL|WONT|DO|DONT <option>`, `IAC SB ... IAC SE` per RFC 855, other
//! `IAC <cmd>` are two bytes) are stripped from both directions. What remains is
//! matched as a person would read the screen:
//!
//! - the server's output, lower-cased, is remembered in a short window that is
//!   emptied every time the client finishes a line, so only output that came
//!   after the client's last line can act as a prompt;
//! - when the client starts a line, the window decides what the line is: it
//!   ends (ignoring trailing spaces) in a login prompt ([`LOGIN_PROMPTS`]) — the
//!   username; in a password prompt ([`PASSWORD_PROMPTS`]) — the password;
//!   otherwise nothing of interest;
//! - client lines are edited as a terminal would: BS (0x08), DEL (0x7F) and
//!   Telnet EC erase a character, ^U (0x15) and Telnet EL erase the line; a line
//!   ends with CR, CR NUL, CR LF or LF (RFC 854 "The NVT printer and keyboard").
//!
//! [`TelnetEvent::Login`] is reported when a password line ends (with the
//! username typed before it, if any), or with no password when the client starts
//! another line, or the connection ends ([`TelnetParser::finish`]), without the
//! server having asked for one. Only the current client line, the pending
//! username and the prompt window are buffered, each bounded by [`Limits`].

/// Server text, lower-cased, that asks for a username when it ends the output.
pub const LOGIN_PROMPTS: &[&[u8]] = &[b"login:", b"username:", b"user name:", b"user:"];
/// Server text, lower-cased, that asks for a password when it ends the output.
pub const PASSWORD_PROMPTS: &[&[u8]] = &[b"password:", b"passcode:"];
/// Server text, lower-cased, that reports a refused login. Deliberately not
/// "failed" alone: RHEL prints "Last failed login: ..." after a successful one.
pub const FAILURE_MESSAGES: &[&[u8]] = &[
    b"incorrect",
    b"login failed",
    b"authentication failed",
    b"access denied",
    b"permission denied",
    b"login invalid",
    b"bad password",
];

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const EC: u8 = 247;
const EL: u8 = 248;
const WILL: u8 = 251;
const DONT: u8 = 254;

/// The prompt window never shrinks below this, so every pattern fits.
const MIN_WINDOW: usize = 32;

/// Parser limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest client line kept (after line editing); longer lines are reported
    /// and ignored.
    pub max_line_bytes: usize,
    /// Server output remembered to recognise a prompt or a failure message
    /// (at least 32 bytes are always kept).
    pub prompt_window_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 256,
            prompt_window_bytes: 128,
        }
    }
}

/// What a login looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelnetEvent<'a> {
    /// A login: the username typed at a login prompt (empty if the server asked
    /// only for a password) and the password typed at a password prompt (`None`
    /// if the server never asked). The password is a secret: compare it, never
    /// record it.
    Login {
        /// The username.
        user: &'a [u8],
        /// The password, if the server asked for one.
        password: Option<&'a [u8]>,
    },
    /// After a password, the server printed a failure message.
    LoginFailed,
    /// A client line longer than the limit; it is ignored.
    LineTooLong {
        /// The configured limit.
        limit: usize,
    },
}

/// Where a direction is in the Telnet command syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Cmd {
    #[default]
    Data,
    Iac,
    Option,
    Sub,
    SubIac,
}

/// One byte after command stripping.
enum Nvt {
    Data(u8),
    EraseChar,
    EraseLine,
    Nothing,
}

impl Cmd {
    fn step(&mut self, b: u8) -> Nvt {
        let (next, out) = match (*self, b) {
            (Cmd::Data, IAC) => (Cmd::Iac, Nvt::Nothing),
            (Cmd::Data, _) => (Cmd::Data, Nvt::Data(b)),
            (Cmd::Iac, IAC) => (Cmd::Data, Nvt::Data(IAC)),
            (Cmd::Iac, WILL..=DONT) => (Cmd::Option, Nvt::Nothing),
            (Cmd::Iac, SB) => (Cmd::Sub, Nvt::Nothing),
            (Cmd::Iac, EC) => (Cmd::Data, Nvt::EraseChar),
            (Cmd::Iac, EL) => (Cmd::Data, Nvt::EraseLine),
            (Cmd::Iac, _) => (Cmd::Data, Nvt::Nothing),
            (Cmd::Option, _) => (Cmd::Data, Nvt::Nothing),
            (Cmd::Sub, IAC) => (Cmd::SubIac, Nvt::Nothing),
            (Cmd::Sub, _) => (Cmd::Sub, Nvt::Nothing),
            (Cmd::SubIac, SE) => (Cmd::Data, Nvt::Nothing),
            // IAC IAC inside SB is an escaped 0xFF; anything else is malformed
            // and, like most implementations, treated as still inside SB.
            (Cmd::SubIac, _) => (Cmd::Sub, Nvt::Nothing),
        };
        *self = next;
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Other,
    User,
    Password,
}

/// Telnet login detector for one connection (both directions).
#[derive(Debug, Clone)]
pub struct TelnetParser {
    limits: Limits,
    server_iac: Cmd,
    client_iac: Cmd,
    /// Recent server output, lower-cased (at most twice the window).
    window: Vec<u8>,
    /// The client line being typed.
    line: Vec<u8>,
    /// What the current client line is; `None` between lines.
    role: Option<Role>,
    /// The current line grew past the limit.
    overlong: bool,
    /// The previous client byte was CR: a NUL or LF after it is part of the end.
    after_cr: bool,
    /// A username waiting for its password.
    user: Vec<u8>,
    has_user: bool,
    /// A password was just sent: watch for a failure message.
    awaiting_verdict: bool,
}

impl TelnetParser {
    /// A parser at the start of a connection.
    pub fn new(limits: Limits) -> Self {
        TelnetParser {
            limits,
            server_iac: Cmd::Data,
            client_iac: Cmd::Data,
            window: Vec::new(),
            line: Vec::new(),
            role: None,
            overlong: false,
            after_cr: false,
            user: Vec::new(),
            has_user: false,
            awaiting_verdict: false,
        }
    }

    fn window_limit(&self) -> usize {
        self.limits.prompt_window_bytes.max(MIN_WINDOW)
    }

    /// Feeds server-to-client bytes.
    pub fn feed_server(&mut self, data: &[u8], out: &mut dyn FnMut(TelnetEvent<'_>)) {
        let keep = self.window_limit();
        for &b in data {
            let Nvt::Data(c) = self.server_iac.step(b) else {
                continue;
            };
            if c == 0 {
                continue;
            }
            if self.window.len() >= 2 * keep {
                let cut = self.window.len() - keep;
                self.window.drain(..cut);
            }
            self.window.push(c.to_ascii_lowercase());
            if self.awaiting_verdict && ends_with_any(&self.window, FAILURE_MESSAGES) {
                self.awaiting_verdict = false;
                out(TelnetEvent::LoginFailed);
            }
        }
    }

    /// Feeds client-to-server bytes.
    pub fn feed_client(&mut self, data: &[u8], out: &mut dyn FnMut(TelnetEvent<'_>)) {
        for &b in data {
            let nvt = self.client_iac.step(b);
            if matches!(nvt, Nvt::Nothing) {
                continue;
            }
            if self.after_cr {
                self.after_cr = false;
                if matches!(nvt, Nvt::Data(0 | b'\n')) {
                    continue;
                }
            }
            if matches!(nvt, Nvt::Data(0)) {
                // NUL is a no-op on the NVT.
                continue;
            }
            if self.role.is_none() {
                self.start_line(out);
            }
            match nvt {
                Nvt::Data(b'\r') => {
                    self.end_line(out);
                    self.after_cr = true;
                }
                Nvt::Data(b'\n') => self.end_line(out),
                Nvt::Data(0x08 | 0x7f) | Nvt::EraseChar => {
                    self.line.pop();
                }
                Nvt::Data(0x15) | Nvt::EraseLine => self.line.clear(),
                Nvt::Data(c) => {
                    if self.overlong {
                        continue;
                    }
                    if self.line.len() >= self.limits.max_line_bytes {
                        self.overlong = true;
                        self.line.clear();
                        out(TelnetEvent::LineTooLong {
                            limit: self.limits.max_line_bytes,
                        });
                    } else {
                        self.line.push(c);
                    }
                }
                Nvt::Nothing => {}
            }
        }
    }

    /// The connection ended: a username still waiting is reported without a
    /// password.
    pub fn finish(&mut self, out: &mut dyn FnMut(TelnetEvent<'_>)) {
        self.flush_user(out);
    }

    /// Bytes were lost in either direction: everything in progress is dropped
    /// (command state, the line, the pending username and the prompt window).
    pub fn gap(&mut self) {
        *self = TelnetParser::new(self.limits);
    }

    /// Bytes held: the client line, the pending username and the prompt window.
    pub fn buffered(&self) -> usize {
        self.line.len() + self.user.len() + self.window.len()
    }

    fn start_line(&mut self, out: &mut dyn FnMut(TelnetEvent<'_>)) {
        let shown = trim_end_spaces(&self.window);
        let role = if ends_with_any(shown, PASSWORD_PROMPTS) {
            Role::Password
        } else if ends_with_any(shown, LOGIN_PROMPTS) {
            Role::User
        } else {
            Role::Other
        };
        if role != Role::Password {
            self.flush_user(out);
        }
        self.role = Some(role);
        self.awaiting_verdict = false;
    }

    fn end_line(&mut self, out: &mut dyn FnMut(TelnetEvent<'_>)) {
        let role = self.role.take();
        if !self.overlong {
            match role {
                Some(Role::User) if !self.line.is_empty() => {
                    std::mem::swap(&mut self.user, &mut self.line);
                    self.has_user = true;
                }
                Some(Role::Password) => {
                    let user = if self.has_user { &self.user[..] } else { &[] };
                    out(TelnetEvent::Login {
                        user,
                        password: Some(&self.line),
                    });
                    self.user.clear();
                    self.has_user = false;
                    self.awaiting_verdict = true;
                }
                _ => {}
            }
        }
        self.line.clear();
        self.overlong = false;
        self.window.clear();
    }

    fn flush_user(&mut self, out: &mut dyn FnMut(TelnetEvent<'_>)) {
        if self.has_user {
            out(TelnetEvent::Login {
                user: &self.user,
                password: None,
            });
            self.user.clear();
            self.has_user = false;
        }
    }
}

fn trim_end_spaces(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    s.get(..end).unwrap_or_default()
}

fn ends_with_any(s: &[u8], patterns: &[&[u8]]) -> bool {
    patterns.iter().any(|p| s.ends_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Copy, Debug)]
    enum Dir {
        S,
        C,
    }

    fn run_with(limits: Limits, script: &[(Dir, &[u8])], bytewise: bool) -> Vec<String> {
        let mut p = TelnetParser::new(limits);
        let mut ev = Vec::new();
        for (dir, data) in script {
            let chunks: Vec<&[u8]> = if bytewise {
                data.chunks(1).collect()
            } else {
                vec![data]
            };
            for c in chunks {
                match dir {
                    Dir::S => p.feed_server(c, &mut |e| ev.push(format!("{e:?}"))),
                    Dir::C => p.feed_client(c, &mut |e| ev.push(format!("{e:?}"))),
                }
                let l = limits;
                assert!(
                    p.buffered()
                        <= 2 * l.max_line_bytes + 2 * l.prompt_window_bytes.max(MIN_WINDOW)
                );
            }
        }
        p.finish(&mut |e| ev.push(format!("{e:?}")));
        ev
    }

    fn run(script: &[(Dir, &[u8])]) -> Vec<String> {
        let whole = run_with(Limits::default(), script, false);
        assert_eq!(
            run_with(Limits::default(), script, true),
            whole,
            "byte at a time differs"
        );
        whole
    }

    fn login(user: &[u8], password: Option<&[u8]>) -> String {
        format!("{:?}", TelnetEvent::Login { user, password })
    }

    fn s(e: TelnetEvent<'_>) -> String {
        format!("{e:?}")
    }

    /// A BusyBox-style login with option negotiation and per-character echo.
    fn busybox() -> Vec<(Dir, &'static [u8])> {
        vec![
            (Dir::S, b"\xff\xfd\x18\xff\xfd\x20\xff\xfb\x01\xff\xfb\x03"),
            (
                Dir::C,
                b"\xff\xfb\x18\xff\xfa\x18\x00xterm\xff\xf0\xff\xfd\x01",
            ),
            (
                Dir::S,
                b"\r\nBusyBox v1.31 (2020) built-in shell\r\n\r\ndevice login: ",
            ),
            (Dir::C, b"r"),
            (Dir::S, b"r"),
            (Dir::C, b"o"),
            (Dir::S, b"o"),
            (Dir::C, b"x"),
            (Dir::S, b"x"),
            (Dir::C, b"\x7f"),
            (Dir::S, b"\x08 \x08"),
            (Dir::C, b"o"),
            (Dir::S, b"o"),
            (Dir::C, b"t"),
            (Dir::S, b"t"),
            (Dir::C, b"\r\x00"),
            (Dir::S, b"\r\nPassword: "),
            (Dir::C, b"x"),
            (Dir::C, b"c"),
            (Dir::C, b"3511\r\n"),
            (Dir::S, b"\r\n\r\nLogin incorrect\r\ndevice login: "),
            (Dir::C, b"admin\r"),
            (Dir::S, b"\r\nPassword: "),
            (Dir::C, b"admin\r"),
            (Dir::S, b"\r\n~ # "),
            (Dir::C, b"cat /etc/passwd\r"),
        ]
    }

    #[test]
    fn busybox_login_with_echo_backspace_and_failure() {
        assert_eq!(
            run(&busybox()),
            vec![
                login(b"root", Some(b"xc3511")),
                s(TelnetEvent::LoginFailed),
                login(b"admin", Some(b"admin")),
            ]
        );
    }

    #[test]
    fn prompts_are_case_insensitive_and_may_have_trailing_spaces() {
        let script: &[(Dir, &[u8])] = &[
            (Dir::S, b"User Name:   "),
            (Dir::C, b"manager\r\n"),
            (Dir::S, b"PASSWORD:"),
            (Dir::C, b"friend\n"),
        ];
        assert_eq!(run(script), vec![login(b"manager", Some(b"friend"))]);
    }

    #[test]
    fn no_password_prompt_reports_the_username_alone() {
        let script: &[(Dir, &[u8])] = &[
            (Dir::S, b"Username: "),
            (Dir::C, b"guest\r\n"),
            (Dir::S, b"Welcome\r\n> "),
            (Dir::C, b"show version\r\n"),
        ];
        assert_eq!(run(script), vec![login(b"guest", None)]);
        // And at the end of the connection.
        let script: &[(Dir, &[u8])] = &[(Dir::S, b"login: "), (Dir::C, b"guest\r\n")];
        assert_eq!(run(script), vec![login(b"guest", None)]);
    }

    #[test]
    fn password_only_prompt() {
        let script: &[(Dir, &[u8])] = &[
            (Dir::S, b"\r\nUser Access Verification\r\n\r\nPassword: "),
            (Dir::C, b"cisco\r\n"),
            (Dir::S, b"% Bad passwords\r\n"),
        ];
        assert_eq!(
            run(script),
            vec![login(b"", Some(b"cisco")), s(TelnetEvent::LoginFailed)]
        );
    }

    #[test]
    fn output_before_the_last_client_line_is_not_a_prompt() {
        // Type-ahead: the client sends a command while the screen still shows
        // "Password:" from before its previous line.
        let script: &[(Dir, &[u8])] = &[
            (Dir::S, b"login: "),
            (Dir::C, b"root\r\n"),
            (Dir::S, b"Password: "),
            (Dir::C, b"toor\r\n"),
            (Dir::C, b"ls\r\n"),
        ];
        assert_eq!(run(script), vec![login(b"root", Some(b"toor"))]);
    }

    #[test]
    fn rhel_last_failed_login_banner_is_not_a_failure() {
        let script: &[(Dir, &[u8])] = &[
            (Dir::S, b"login: "),
            (Dir::C, b"root\r\n"),
            (Dir::S, b"Password: "),
            (Dir::C, b"toor\r\n"),
            (
                Dir::S,
                b"Last failed login: Mon Jan 1 from 10.0.0.9\r\nThere was 1 failed login attempt.\r\n# ",
            ),
        ];
        assert_eq!(run(script), vec![login(b"root", Some(b"toor"))]);
    }

    #[test]
    fn iac_iac_is_a_literal_ff_and_telnet_erase_commands_edit() {
        let script: &[(Dir, &[u8])] = &[
            (Dir::S, b"login: "),
            (Dir::C, b"a\xff\xffb\xff\xf7c\xff\xf8root\r\n"),
            (Dir::S, b"password:"),
            (Dir::C, b"p\xff\xffw\r\n"),
        ];
        assert_eq!(run(script), vec![login(b"root", Some(b"p\xffw"))]);
    }

    #[test]
    fn overlong_line_is_reported_and_ignored() {
        let limits = Limits {
            max_line_bytes: 4,
            prompt_window_bytes: 0,
        };
        let script: &[(Dir, &[u8])] = &[
            (Dir::S, b"login: "),
            (Dir::C, b"administrator\r\n"),
            (Dir::S, b"login: "),
            (Dir::C, b"root\r\n"),
            (Dir::S, b"Password: "),
            (Dir::C, b"toor\r\n"),
        ];
        let want = vec![
            s(TelnetEvent::LineTooLong { limit: 4 }),
            login(b"root", Some(b"toor")),
        ];
        assert_eq!(run_with(limits, script, false), want);
        assert_eq!(run_with(limits, script, true), want);
    }

    #[test]
    fn gap_drops_the_half_seen_login_and_resyncs_on_the_next_prompt() {
        let mut p = TelnetParser::new(Limits::default());
        let mut ev = Vec::new();
        p.feed_server(b"login: ", &mut |e| ev.push(s(e)));
        p.feed_client(b"ro", &mut |e| ev.push(s(e)));
        p.gap();
        p.feed_client(b"ot\r\n", &mut |e| ev.push(s(e)));
        p.feed_server(b"Password: ", &mut |e| ev.push(s(e)));
        p.feed_client(b"x\r\n", &mut |e| ev.push(s(e)));
        p.feed_server(b"\xff\xfa\x18", &mut |e| ev.push(s(e)));
        p.gap();
        p.feed_server(b"login: ", &mut |e| ev.push(s(e)));
        p.feed_client(b"admin\r\n", &mut |e| ev.push(s(e)));
        p.feed_server(b"Password: ", &mut |e| ev.push(s(e)));
        p.feed_client(b"1234\r\n", &mut |e| ev.push(s(e)));
        assert_eq!(
            ev,
            vec![login(b"", Some(b"x")), login(b"admin", Some(b"1234"))]
        );
    }

    proptest! {
        #[test]
        fn any_conversation_any_split_same_events_bounded(
            script in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..60)), 0..12),
            line in 1usize..40,
            window in 0usize..80,
        ) {
            let limits = Limits { max_line_bytes: line, prompt_window_bytes: window };
            let script: Vec<(Dir, &[u8])> = script
                .iter()
                .map(|(s, d)| (if *s { Dir::S } else { Dir::C }, d.as_slice()))
                .collect();
            prop_assert_eq!(run_with(limits, &script, true), run_with(limits, &script, false));
        }

        #[test]
        fn credentials_round_trip(user in proptest::collection::vec(0x21u8..=0xff, 1..30),
                                  pass in proptest::collection::vec(0x20u8..=0xff, 0..30)) {
            // Escape 0xFF as IAC IAC; keep clear of the editing characters.
            let esc = |v: &[u8]| -> Vec<u8> {
                let mut o = Vec::new();
                for &b in v {
                    if b == 0x7f { continue; }
                    o.push(b);
                    if b == 0xff { o.push(0xff); }
                }
                o.extend_from_slice(b"\r\n");
                o
            };
            let clean = |v: &[u8]| -> Vec<u8> { v.iter().copied().filter(|&b| b != 0x7f).collect() };
            let (u, p) = (esc(&user), esc(&pass));
            let script: &[(Dir, &[u8])] = &[(Dir::S, b"login: "), (Dir::C, &u), (Dir::S, b"Password: "), (Dir::C, &p)];
            let cu = clean(&user);
            let want = if cu.is_empty() {
                vec![login(b"", Some(&clean(&pass)))]
            } else {
                vec![login(&cu, Some(&clean(&pass)))]
            };
            prop_assert_eq!(run(script), want);
        }
    }
}
