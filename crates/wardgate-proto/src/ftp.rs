//! FTP control channel, client to server (RFC 959 section 4.1 and 5.3): finds the
//! commands that carry credentials in clear and counts the others.
//!
//! Commands are lines: `VERB [SP argument] CRLF` (RFC 959 5.3.1: the verb is a
//! case-insensitive code of up to four letters). A bare LF is accepted as a line
//! end too. A line longer than [`Limits::max_line_bytes`] is reported and skipped
//! up to its LF. Only a partial line is ever buffered.
//!
//! After `AUTH` (RFC 2228 section 3, RFC 4217 section 4) the client normally
//! starts a TLS handshake: the parser stops unless the next byte is a letter, which
//! means the server refused and the client carries on in clear.

use memchr::memchr;

/// Parser limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line accepted: the bytes before its LF, CR included.
    pub max_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 2048,
        }
    }
}

/// What the client said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpEvent<'a> {
    /// `USER <username>` (RFC 959 4.1.1): the argument, as sent.
    User(&'a [u8]),
    /// `PASS <password>` (RFC 959 4.1.1): the secret. Compare it, never record it.
    Pass(&'a [u8]),
    /// `AUTH <mechanism>` (RFC 2228 3): the session is about to switch to TLS.
    Auth(&'a [u8]),
    /// Any other command; `verb` is as sent (compare case-insensitively).
    Command {
        /// The command code.
        verb: &'a [u8],
    },
    /// A line longer than the limit; it is skipped up to its LF.
    LineTooLong {
        /// The configured limit.
        limit: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a line boundary or inside a line (partial line in `buf`).
    Line,
    /// After a gap: the next line counts only if its verb looks like one.
    Resync,
    /// Skipping the rest of an overlong line.
    Discard,
    /// `AUTH` was sent: waiting for the first byte of what follows.
    AfterAuth,
    /// TLS (or an unknown state after a gap in it): nothing more is parsed.
    Stopped,
}

/// Client-to-server FTP control channel parser.
#[derive(Debug, Clone)]
pub struct FtpParser {
    limits: Limits,
    buf: Vec<u8>,
    state: State,
}

impl FtpParser {
    /// A parser at the start of a control connection.
    pub fn new(limits: Limits) -> Self {
        FtpParser {
            limits,
            buf: Vec::new(),
            state: State::Line,
        }
    }

    /// Feeds the next bytes of the client-to-server stream.
    pub fn feed(&mut self, data: &[u8], out: &mut dyn FnMut(FtpEvent<'_>)) {
        let max = self.limits.max_line_bytes;
        let mut data = data;
        while let Some(&first) = data.first() {
            match self.state {
                State::Stopped => return,
                State::AfterAuth => {
                    self.state = if first.is_ascii_alphabetic() {
                        State::Line
                    } else {
                        State::Stopped
                    };
                }
                State::Discard => match memchr(b'\n', data) {
                    Some(i) => {
                        data = data.get(i + 1..).unwrap_or_default();
                        self.state = State::Line;
                    }
                    None => return,
                },
                State::Line | State::Resync => {
                    let Some(i) = memchr(b'\n', data) else {
                        if self.buf.len() + data.len() > max {
                            out(FtpEvent::LineTooLong { limit: max });
                            self.buf.clear();
                            self.state = State::Discard;
                        } else {
                            self.buf.extend_from_slice(data);
                        }
                        return;
                    };
                    let piece = data.get(..i).unwrap_or_default();
                    data = data.get(i + 1..).unwrap_or_default();
                    let resync = self.state == State::Resync;
                    self.state = State::Line;
                    if self.buf.len() + piece.len() > max {
                        out(FtpEvent::LineTooLong { limit: max });
                        self.buf.clear();
                        continue;
                    }
                    let auth = if self.buf.is_empty() {
                        dispatch(piece, resync, out)
                    } else {
                        self.buf.extend_from_slice(piece);
                        let auth = dispatch(&self.buf, resync, out);
                        self.buf.clear();
                        auth
                    };
                    if auth {
                        self.state = State::AfterAuth;
                    }
                }
            }
        }
    }

    /// Bytes were lost. A partial line is dropped; the next line is taken only
    /// if it starts with something shaped like a verb, since the gap may have
    /// ended mid-line. After `AUTH` the parser stops.
    pub fn gap(&mut self) {
        self.buf.clear();
        self.state = match self.state {
            State::Stopped | State::AfterAuth => State::Stopped,
            _ => State::Resync,
        };
    }

    /// Bytes held for an incomplete line (never more than the line limit).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Reports one complete line (LF removed); true if it was `AUTH`.
fn dispatch(line: &[u8], resync: bool, out: &mut dyn FnMut(FtpEvent<'_>)) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return false;
    }
    // RFC 959 5.3.1: `<command> <SP> <argument> <CRLF>`; the argument is kept
    // whole (a password may contain spaces).
    let (verb, arg) = match memchr(b' ', line) {
        Some(i) => (
            line.get(..i).unwrap_or_default(),
            line.get(i + 1..).unwrap_or_default(),
        ),
        None => (line, &[][..]),
    };
    // After a gap the line may be the tail of one whose start was lost.
    if resync && !((3..=4).contains(&verb.len()) && verb.iter().all(u8::is_ascii_alphabetic)) {
        return false;
    }
    if verb.eq_ignore_ascii_case(b"USER") {
        out(FtpEvent::User(arg));
    } else if verb.eq_ignore_ascii_case(b"PASS") {
        out(FtpEvent::Pass(arg));
    } else if verb.eq_ignore_ascii_case(b"AUTH") {
        out(FtpEvent::Auth(arg));
        return true;
    } else {
        out(FtpEvent::Command { verb });
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(limits: Limits, chunks: &[&[u8]]) -> Vec<String> {
        let mut p = FtpParser::new(limits);
        let mut ev = Vec::new();
        for c in chunks {
            p.feed(c, &mut |e| ev.push(format!("{e:?}")));
            assert!(p.buffered() <= limits.max_line_bytes);
        }
        ev
    }

    fn whole(data: &[u8]) -> Vec<String> {
        run(Limits::default(), &[data])
    }

    const SESSION: &[u8] =
        b"USER anonymous\r\nPASS guest@example.com\r\nSYST\r\nPWD\nTYPE I\r\nQUIT\r\n";

    fn s(e: FtpEvent<'_>) -> String {
        format!("{e:?}")
    }

    #[test]
    fn credentials_and_commands() {
        assert_eq!(
            whole(SESSION),
            vec![
                s(FtpEvent::User(b"anonymous")),
                s(FtpEvent::Pass(b"guest@example.com")),
                s(FtpEvent::Command { verb: b"SYST" }),
                s(FtpEvent::Command { verb: b"PWD" }),
                s(FtpEvent::Command { verb: b"TYPE" }),
                s(FtpEvent::Command { verb: b"QUIT" }),
            ]
        );
    }

    #[test]
    fn verbs_are_case_insensitive_and_passwords_keep_spaces() {
        assert_eq!(
            whole(b"user root\r\npass a b  c\r\n\r\n"),
            vec![s(FtpEvent::User(b"root")), s(FtpEvent::Pass(b"a b  c"))]
        );
        assert_eq!(whole(b"PASS\r\n"), vec![s(FtpEvent::Pass(b""))]);
    }

    #[test]
    fn one_byte_at_a_time_and_every_split_match_one_chunk() {
        let want = whole(SESSION);
        let bytes: Vec<&[u8]> = SESSION.chunks(1).collect();
        assert_eq!(run(Limits::default(), &bytes), want);
        for i in 0..=SESSION.len() {
            let (a, b) = SESSION.split_at(i);
            assert_eq!(run(Limits::default(), &[a, b]), want, "split at {i}");
        }
    }

    #[test]
    fn auth_tls_stops_parsing() {
        let mut data = b"AUTH TLS\r\n".to_vec();
        data.extend_from_slice(b"\x16\x03\x01\x00\xa5USER x\r\nPASS y\r\n");
        assert_eq!(whole(&data), vec![s(FtpEvent::Auth(b"TLS"))]);
    }

    #[test]
    fn refused_auth_then_cleartext_login_is_still_seen() {
        assert_eq!(
            whole(b"AUTH TLS\r\nUSER x\r\nPASS y\r\n"),
            vec![
                s(FtpEvent::Auth(b"TLS")),
                s(FtpEvent::User(b"x")),
                s(FtpEvent::Pass(b"y"))
            ]
        );
    }

    #[test]
    fn overlong_line_is_reported_once_and_skipped() {
        let limits = Limits { max_line_bytes: 8 };
        let data = b"USER 12345678901234\r\nPASS pw\r\n";
        let want = vec![
            s(FtpEvent::LineTooLong { limit: 8 }),
            s(FtpEvent::Pass(b"pw")),
        ];
        assert_eq!(run(limits, &[data]), want);
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(run(limits, &bytes), want);
        // Exactly at the limit (CR included) is fine.
        assert_eq!(
            run(limits, &[b"PASS abc\nNOOP\r\n"]),
            vec![
                s(FtpEvent::Pass(b"abc")),
                s(FtpEvent::Command { verb: b"NOOP" })
            ]
        );
    }

    #[test]
    fn gap_then_resync_at_the_next_command() {
        let mut p = FtpParser::new(Limits::default());
        let mut ev = Vec::new();
        p.feed(b"USER alice\r\nPASS sec", &mut |e| ev.push(s(e)));
        p.gap();
        // The gap ended mid-line: the tail "12" is not verb-shaped and is
        // dropped; the next whole command is seen.
        p.feed(b"12\r\nPASS hunter2\r\n", &mut |e| ev.push(s(e)));
        assert_eq!(
            ev,
            vec![s(FtpEvent::User(b"alice")), s(FtpEvent::Pass(b"hunter2"))]
        );
        // A gap that ends on a line boundary loses nothing.
        p.gap();
        ev.clear();
        p.feed(b"PASS again\r\n", &mut |e| ev.push(s(e)));
        assert_eq!(ev, vec![s(FtpEvent::Pass(b"again"))]);
    }

    #[test]
    fn gap_after_auth_stops() {
        let mut p = FtpParser::new(Limits::default());
        let mut ev = Vec::new();
        p.feed(b"AUTH TLS\r\n", &mut |e| ev.push(s(e)));
        p.gap();
        p.feed(b"USER x\r\n", &mut |e| ev.push(s(e)));
        assert_eq!(ev, vec![s(FtpEvent::Auth(b"TLS"))]);
    }

    proptest! {
        #[test]
        fn any_bytes_any_split_same_events_bounded_buffer(
            data in proptest::collection::vec(any::<u8>(), 0..400),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            max in 1usize..64,
        ) {
            let limits = Limits { max_line_bytes: max };
            let want = run(limits, &[&data]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for p in points {
                chunks.push(&data[at..p]);
                at = p;
            }
            chunks.push(&data[at..]);
            prop_assert_eq!(run(limits, &chunks), want);
            // Gaps anywhere never panic and keep the bound.
            let mut p = FtpParser::new(limits);
            for c in &chunks {
                p.feed(c, &mut |_| {});
                p.gap();
                prop_assert!(p.buffered() <= max);
            }
        }

        #[test]
        fn credentials_round_trip(user in "[!-~]{0,40}", pass in "[ -~]{0,40}") {
            let data = format!("USER {user}\r\nPASS {pass}\r\n");
            prop_assert_eq!(
                whole(data.as_bytes()),
                vec![s(FtpEvent::User(user.as_bytes())), s(FtpEvent::Pass(pass.as_bytes()))]
            );
        }
    }
}
