//! Packet filters in the pcap-filter language (the expressions tcpdump, tshark
//! and BPF take), the subset a monitor of clinical traffic needs: `host`, `net`,
//! `port`, `portrange` with `src`/`dst`, the protocols `ip`, `ip6`, `tcp`,
//! `udp`, `vlan [ID]`, combined with `and`/`&&`, `or`/`||`, `not`/`!` and
//! parentheses. `tcp port 2575` means `tcp and port 2575`, as in pcap-filter(7).
//!
//! Why our own: the BPF compiler is libpcap's (C); wardgate decodes each packet
//! anyway (`decode`), so the filter is evaluated on the decoded packet, in Rust,
//! with typed errors. It does not run in the kernel: filtered-out packets still
//! cross the packet socket (counted as `filtered`), which a SPAN port at hospital
//! rates can afford; the work saved is all of the analysis after decoding.

use crate::decode::{Decoded, Transport};
use std::net::IpAddr;
use wardgate_config::IpNetwork;

/// A compiled filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    expr: Expr,
    text: String,
}

/// Why an expression is not a filter: what, and at which word (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter {text:?}: {what} (at word {at})")]
pub struct FilterError {
    text: String,
    what: String,
    at: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Src,
    Dst,
    Either,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Host(Dir, IpAddr),
    Net(Dir, IpNetwork),
    Ports(Dir, u16, u16),
    Tcp,
    Udp,
    Ip,
    Ip6,
    Vlan(Option<u16>),
}

/// Most words an expression may have: a filter is a line typed by a person.
const MAX_WORDS: usize = 256;

impl Filter {
    /// Compiles `text`.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let spaced = text
            .replace('(', " ( ")
            .replace(')', " ) ")
            .replace("&&", " and ")
            .replace("||", " or ")
            .replace('!', " not ");
        let words: Vec<&str> = spaced.split_whitespace().collect();
        let err = |what: String, at: usize| FilterError {
            text: text.to_owned(),
            what,
            at,
        };
        if words.is_empty() {
            return Err(err("empty expression".into(), 0));
        }
        if words.len() > MAX_WORDS {
            return Err(err(format!("more than {MAX_WORDS} words"), MAX_WORDS));
        }
        let mut p = Parser {
            words: &words,
            at: 0,
            depth: 0,
        };
        let expr = p.or().map_err(|(what, at)| err(what, at + 1))?;
        if p.at < words.len() {
            return Err(err(format!("unexpected {:?}", words[p.at]), p.at + 1));
        }
        Ok(Filter {
            expr,
            text: text.to_owned(),
        })
    }

    /// The expression as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the decoded packet passes.
    pub fn matches(&self, d: &Decoded<'_>) -> bool {
        eval(&self.expr, d)
    }
}

fn eval(e: &Expr, d: &Decoded<'_>) -> bool {
    let ports = match d.transport {
        Transport::Tcp(crate::decode::Tcp {
            src_port, dst_port, ..
        })
        | Transport::Udp {
            src_port, dst_port, ..
        } => Some((src_port, dst_port)),
        _ => None,
    };
    let either = |dir: Dir, f: &dyn Fn(bool) -> bool| match dir {
        Dir::Src => f(true),
        Dir::Dst => f(false),
        Dir::Either => f(true) || f(false),
    };
    match e {
        Expr::Or(a, b) => eval(a, d) || eval(b, d),
        Expr::And(a, b) => eval(a, d) && eval(b, d),
        Expr::Not(a) => !eval(a, d),
        Expr::Host(dir, ip) => either(*dir, &|src| (if src { d.src } else { d.dst }) == *ip),
        Expr::Net(dir, net) => either(*dir, &|src| net.contains(if src { d.src } else { d.dst })),
        Expr::Ports(dir, lo, hi) => ports.is_some_and(|(s, t)| {
            either(*dir, &|src| (*lo..=*hi).contains(if src { &s } else { &t }))
        }),
        Expr::Tcp => matches!(d.transport, Transport::Tcp(_)),
        Expr::Udp => matches!(d.transport, Transport::Udp { .. }),
        Expr::Ip => d.src.is_ipv4(),
        Expr::Ip6 => d.src.is_ipv6(),
        Expr::Vlan(id) => match id {
            Some(id) => d.vlan == Some(*id),
            None => d.vlan.is_some(),
        },
    }
}

struct Parser<'w> {
    words: &'w [&'w str],
    at: usize,
    depth: usize,
}

type Parsed = Result<Expr, (String, usize)>;

impl<'w> Parser<'w> {
    fn peek(&self) -> Option<&'w str> {
        self.words.get(self.at).copied()
    }

    fn next(&mut self) -> Option<&'w str> {
        let w = self.words.get(self.at).copied();
        self.at += 1;
        w
    }

    /// An error at the word read last.
    fn fail<T>(&self, what: impl Into<String>) -> Result<T, (String, usize)> {
        Err((what.into(), self.at.min(self.words.len()).saturating_sub(1)))
    }

    fn or(&mut self) -> Parsed {
        let mut e = self.and()?;
        while self.peek() == Some("or") {
            self.at += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Parsed {
        let mut e = self.not()?;
        loop {
            match self.peek() {
                Some("and") => {
                    self.at += 1;
                    e = Expr::And(Box::new(e), Box::new(self.not()?));
                }
                // pcap-filter: juxtaposed primitives (`tcp port 1`) are joined by `and`.
                Some(w) if w != "or" && w != ")" => {
                    e = Expr::And(Box::new(e), Box::new(self.not()?));
                }
                _ => return Ok(e),
            }
        }
    }

    fn not(&mut self) -> Parsed {
        if self.peek() == Some("not") {
            self.at += 1;
            self.nested(|p| p.not()).map(|e| Expr::Not(Box::new(e)))
        } else {
            self.primary()
        }
    }

    /// Bounds the nesting depth: a hostile expression cannot exhaust the stack.
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> Parsed) -> Parsed {
        if self.depth >= 32 {
            return self.fail("nested more than 32 deep");
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn primary(&mut self) -> Parsed {
        let Some(w) = self.next() else {
            return self.fail("expression ends early");
        };
        let dir = match w {
            "src" => Some(Dir::Src),
            "dst" => Some(Dir::Dst),
            _ => None,
        };
        let w = if dir.is_some() {
            match self.next() {
                Some(w) => w,
                None => return self.fail("expected host, net, port or portrange"),
            }
        } else {
            w
        };
        let dir = dir.unwrap_or(Dir::Either);
        match w {
            "(" => {
                let e = self.nested(|p| p.or())?;
                if self.next() != Some(")") {
                    return self.fail("expected )");
                }
                Ok(e)
            }
            "host" => {
                let v = self.value()?;
                v.parse()
                    .map(|ip| Expr::Host(dir, ip))
                    .or_else(|_| self.fail(format!("{v:?} is not an IP address")))
            }
            "net" => {
                let v = self.value()?;
                IpNetwork::parse(v)
                    .map(|n| Expr::Net(dir, n))
                    .or_else(|e| self.fail(e.to_string()))
            }
            "port" => {
                let v = self.value()?;
                let p = self.port(v)?;
                Ok(Expr::Ports(dir, p, p))
            }
            "portrange" => {
                let v = self.value()?;
                let Some((a, b)) = v.split_once('-') else {
                    return self.fail(format!("{v:?} is not a range LOW-HIGH"));
                };
                let (a, b) = (self.port(a)?, self.port(b)?);
                if a > b {
                    return self.fail(format!("{v:?}: the range is empty"));
                }
                Ok(Expr::Ports(dir, a, b))
            }
            _ if !matches!(dir, Dir::Either) => self.fail(format!(
                "expected host, net, port or portrange after src/dst, not {w:?}"
            )),
            "tcp" => Ok(Expr::Tcp),
            "udp" => Ok(Expr::Udp),
            "ip" => Ok(Expr::Ip),
            "ip6" => Ok(Expr::Ip6),
            "vlan" => match self.peek().and_then(|v| v.parse::<u16>().ok()) {
                Some(id) if id < 4096 => {
                    self.at += 1;
                    Ok(Expr::Vlan(Some(id)))
                }
                _ => Ok(Expr::Vlan(None)),
            },
            other => self.fail(format!("unknown or unsupported primitive {other:?}")),
        }
    }

    fn value(&mut self) -> Result<&'w str, (String, usize)> {
        match self.next() {
            Some(v) if !matches!(v, "(" | ")" | "and" | "or" | "not") => Ok(v),
            _ => self.fail("expected a value"),
        }
    }

    fn port(&self, v: &str) -> Result<u16, (String, usize)> {
        v.parse()
            .or_else(|_| self.fail(format!("{v:?} is not a port number")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Tcp;

    fn tcp(src: &str, sp: u16, dst: &str, dp: u16) -> Decoded<'static> {
        Decoded {
            src_mac: None,
            dst_mac: None,
            vlan: None,
            vlans: 0,
            sent_by_capture_host: false,
            cooked: None,
            reassembled: false,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ttl: 64,
            host_drop: None,
            transport: Transport::Tcp(Tcp {
                src_port: sp,
                dst_port: dp,
                ..Tcp::default()
            }),
            ip_len: 40,
        }
    }

    fn pass(f: &str, d: &Decoded<'_>) -> bool {
        Filter::parse(f).unwrap().matches(d)
    }

    #[test]
    fn primitives_and_combinations_match_as_pcap_filter_says() {
        let d = tcp("127.0.0.2", 40000, "127.0.0.3", 2575);
        for (f, want) in [
            ("tcp port 2575", true),
            ("tcp and port 2575", true),
            ("udp port 2575", false),
            ("port 40000", true),
            ("dst port 40000", false),
            ("src port 40000 && dst port 2575", true),
            ("host 127.0.0.3", true),
            ("src host 127.0.0.3", false),
            ("net 127.0.0.0/8 and not port 22", true),
            ("portrange 2570-2580", true),
            ("port 22 or (host 127.0.0.2 and tcp)", true),
            ("!tcp", false),
            ("ip and not ip6", true),
            ("vlan", false),
            ("tcp port 104 or tcp port 11112", false),
        ] {
            assert_eq!(pass(f, &d), want, "{f}");
        }
    }

    #[test]
    fn what_is_not_a_filter_is_a_located_error() {
        for f in [
            "",
            "port",
            "port http",
            "host 999.1.1.1",
            "net 10.0.0.0/40",
            "portrange 9-1",
            "(tcp",
            "tcp)",
            "src tcp",
            "ether host 00:11:22:33:44:55",
            "and",
        ] {
            assert!(Filter::parse(f).is_err(), "{f:?} parsed");
        }
        let deep = "(".repeat(40) + "tcp" + &")".repeat(40);
        assert!(Filter::parse(&deep).is_err());
        let long = vec!["tcp"; 300].join(" and ");
        assert!(Filter::parse(&long).is_err());
    }
}
