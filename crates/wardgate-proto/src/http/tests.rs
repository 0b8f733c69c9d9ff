//! HTTP request parser tests: requests as curl and browsers send them, split at
//! every byte, pipelined, and broken in the ways that matter for framing.

use super::*;
use proptest::prelude::*;

fn run(limits: Limits, chunks: &[&[u8]]) -> Vec<String> {
    let mut p = HttpParser::new(limits);
    let mut ev = Vec::new();
    for c in chunks {
        p.feed(c, &mut |e| ev.push(format!("{e:?}")));
        assert!(p.buffered() <= limits.max_head_bytes);
    }
    ev
}

/// Events for `data` in one chunk, checked against one byte at a time and
/// against every two-piece split.
fn events(limits: Limits, data: &[u8]) -> Vec<String> {
    let want = run(limits, &[data]);
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(run(limits, &bytes), want, "one byte at a time");
    for i in 0..=data.len() {
        let (a, b) = data.split_at(i);
        assert_eq!(run(limits, &[a, b]), want, "split at {i}");
    }
    want
}

fn ev(data: &[u8]) -> Vec<String> {
    events(Limits::default(), data)
}

fn s(e: HttpEvent<'_>) -> String {
    format!("{e:?}")
}

fn req<'a>(
    method: &'a [u8],
    target: &'a [u8],
    host: Option<&'a [u8]>,
    basic: Option<BasicAuth<'a>>,
    user_agent: Option<&'a [u8]>,
) -> String {
    s(HttpEvent::Request {
        method,
        target,
        host,
        basic,
        user_agent,
    })
}

fn b64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                o.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                o.push('=');
            }
        }
    }
    o
}

#[test]
fn basic_credentials_host_and_user_agent() {
    // RFC 7617 section 2's example.
    let data = b"GET /infusion/status HTTP/1.1\r\nHost: pump-17.ward3\r\nUser-Agent: curl/8.5.0\r\nAuthorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\nAccept: */*\r\n\r\n";
    assert_eq!(
        ev(data),
        vec![req(
            b"GET",
            b"/infusion/status",
            Some(b"pump-17.ward3"),
            Some(BasicAuth::Credentials {
                user: b"Aladdin",
                password: b"open sesame"
            }),
            Some(b"curl/8.5.0"),
        )]
    );
}

#[test]
fn header_names_and_scheme_are_case_insensitive() {
    let data = b"GET / HTTP/1.0\nhOsT:   h  \nauthorization: bAsIc   YWRtaW46YWRtaW4=  \n\n";
    assert_eq!(
        ev(data),
        vec![req(
            b"GET",
            b"/",
            Some(b"h"),
            Some(BasicAuth::Credentials {
                user: b"admin",
                password: b"admin"
            }),
            None
        )]
    );
}

#[test]
fn bad_basic_tokens_say_so_and_other_schemes_are_ignored() {
    for token in ["!!!!", "YWRtaW4=", "Y", "YW=Rt", "YWRtaW46YWRtaW4==="] {
        let data = format!("GET / HTTP/1.1\r\nAuthorization: Basic {token}\r\n\r\n");
        assert_eq!(
            ev(data.as_bytes()),
            vec![req(b"GET", b"/", None, Some(BasicAuth::Malformed), None)],
            "{token}"
        );
    }
    let data = b"GET / HTTP/1.1\r\nAuthorization: Bearer abc.def\r\nAuthorization: Basicx\r\n\r\n";
    assert_eq!(ev(data), vec![req(b"GET", b"/", None, None, None)]);
    // Unpadded base64 is accepted; an empty password is a password.
    let data = b"GET / HTTP/1.1\r\nAuthorization: Basic cm9vdDo\r\n\r\n";
    assert_eq!(
        ev(data),
        vec![req(
            b"GET",
            b"/",
            None,
            Some(BasicAuth::Credentials {
                user: b"root",
                password: b""
            }),
            None
        )]
    );
}

#[test]
fn bodies_are_skipped_and_pipelined_requests_follow() {
    let mut data = Vec::new();
    data.extend_from_slice(
        b"\r\n\r\nPOST /api HTTP/1.1\r\nContent-Length: 20\r\n\r\nGET /not HTTP/1.1\r\n\r\n",
    );
    data.extend_from_slice(
        b"PUT /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
    );
    data.extend_from_slice(
        b"5;ext=1\r\nGET /\r\nA ; x\r\n0123456789\r\n0\r\nX-Trailer: GET / HTTP/1.1\r\n\r\n",
    );
    data.extend_from_slice(b"HEAD /last HTTP/1.1\r\nContent-Length: 0, 0\r\n\r\n");
    assert_eq!(
        ev(&data),
        vec![
            req(b"POST", b"/api", None, None, None),
            req(b"PUT", b"/c", None, None, None),
            req(b"HEAD", b"/last", None, None, None),
        ]
    );
}

#[test]
fn not_http_stops() {
    let tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03GET / HTTP/1.1\r\n\r\n";
    assert_eq!(ev(tls), vec![s(HttpEvent::NotHttp)]);
    assert_eq!(
        ev(b"SSH-2.0-OpenSSH_9.6\r\nGET / HTTP/1.1\r\n\r\n"),
        vec![s(HttpEvent::NotHttp)]
    );
    assert_eq!(
        ev(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        vec![s(HttpEvent::NotHttp)]
    );
    assert_eq!(ev(b"GET /\r\n\r\n"), vec![s(HttpEvent::NotHttp)]);
    // After a good request.
    assert_eq!(
        ev(b"GET / HTTP/1.1\r\n\r\n\x00\x01\x02GET / HTTP/1.1\r\n\r\n"),
        vec![req(b"GET", b"/", None, None, None), s(HttpEvent::NotHttp)]
    );
    // Reported as soon as the first bytes rule HTTP out.
    assert_eq!(
        run(Limits::default(), &[b"\x16"]),
        vec![s(HttpEvent::NotHttp)]
    );
}

#[test]
fn upgrade_then_other_protocol_ends_quietly() {
    let data = b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    assert_eq!(ev(data), vec![req(b"GET", b"/ws", Some(b"h"), None, None)]);
    // A refused upgrade: the client carries on with HTTP.
    let data = b"GET /ws HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
    assert_eq!(
        ev(data),
        vec![
            req(b"GET", b"/ws", None, None, None),
            req(b"GET", b"/next", None, None, None)
        ]
    );
    let data = b"CONNECT pacs:443 HTTP/1.1\r\nHost: pacs:443\r\n\r\n\x16\x03\x01";
    assert_eq!(
        ev(data),
        vec![req(b"CONNECT", b"pacs:443", Some(b"pacs:443"), None, None)]
    );
}

#[test]
fn oversized_head_is_reported_then_the_next_request_is_found() {
    let limits = Limits {
        max_head_bytes: 64,
        max_chunk_line_bytes: 16,
    };
    let mut data = b"GET / HTTP/1.1\r\nCookie: ".to_vec();
    data.extend(std::iter::repeat_n(b'a', 100));
    data.extend_from_slice(b"\r\nX: GET /no HTTP/1.1x\r\n\r\nGET /yes HTTP/1.1\r\n\r\n");
    assert_eq!(
        events(limits, &data),
        vec![
            s(HttpEvent::HeadTooLarge { limit: 64 }),
            req(b"GET", b"/yes", None, None, None)
        ]
    );
    // Exactly at the limit is fine.
    let mut data = b"GET / HTTP/1.1\r\nX: ".to_vec();
    data.extend(std::iter::repeat_n(b'a', 64 - data.len() - 4));
    data.extend_from_slice(b"\r\n\r\n");
    assert_eq!(data.len(), 64);
    assert_eq!(
        events(limits, &data),
        vec![req(b"GET", b"/", None, None, None)]
    );
    // One byte more is too large, however it is split.
    let mut data = b"GET / HTTP/1.1\r\nX: ".to_vec();
    data.extend(std::iter::repeat_n(b'a', 65 - data.len() - 4));
    data.extend_from_slice(b"\r\n\r\nGET /n HTTP/1.1\r\n\r\n");
    assert_eq!(
        events(limits, &data),
        vec![
            s(HttpEvent::HeadTooLarge { limit: 64 }),
            req(b"GET", b"/n", None, None, None)
        ]
    );
}

#[test]
fn broken_framing_is_reported_then_the_next_request_is_found() {
    let cases: &[(&[u8], &str)] = &[
        (b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello", "invalid or conflicting Content-Length"),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "invalid or conflicting Content-Length"),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "invalid or conflicting Content-Length"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "Transfer-Encoding without final chunked"),
        (b"POST / HTTP/1.1\r\nHost : x\r\n\r\n", "invalid header field name"),
        (b"POST / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", "obsolete line folding"),
        (b"POST / HTTP/1.1\r\nnocolon\r\n\r\n", "header line without a colon"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size is not hexadecimal"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "chunk size missing"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", "chunk data not followed by CRLF"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n", "chunk size overflows"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", "chunk-size line over the limit"),
    ];
    let limits = Limits {
        max_head_bytes: 1024,
        max_chunk_line_bytes: 32,
    };
    for (head, what) in cases {
        let mut data = head.to_vec();
        data.extend_from_slice(b"\r\nGET /next HTTP/1.1\r\n\r\n");
        assert_eq!(
            events(limits, &data),
            vec![
                req(b"POST", b"/", None, None, None),
                s(HttpEvent::Malformed { what }),
                req(b"GET", b"/next", None, None, None)
            ],
            "{}",
            String::from_utf8_lossy(head)
        );
    }
}

#[test]
fn oversized_trailers_are_reported() {
    let limits = Limits {
        max_head_bytes: 48,
        max_chunk_line_bytes: 16,
    };
    let mut data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: ".to_vec();
    data.extend(std::iter::repeat_n(b'b', 60));
    data.extend_from_slice(b"\r\n\r\nGET /n HTTP/1.1\r\n\r\n");
    assert_eq!(
        events(limits, &data),
        vec![
            req(b"POST", b"/", None, None, None),
            s(HttpEvent::HeadTooLarge { limit: 48 }),
            req(b"GET", b"/n", None, None, None)
        ]
    );
}

#[test]
fn gap_in_a_body_resyncs_on_the_next_request_line() {
    let mut p = HttpParser::new(Limits::default());
    let mut got = Vec::new();
    p.feed(
        b"POST /upload HTTP/1.1\r\nContent-Length: 100000\r\n\r\nsome body",
        &mut |e| got.push(s(e)),
    );
    p.gap();
    p.feed(
        b"more body\r\nGET /x HTTP/1.1\r\nAuthorization: Basic dTpw\r\n\r\n",
        &mut |e| got.push(s(e)),
    );
    // A gap that ends on a request boundary loses nothing.
    p.gap();
    p.feed(b"GET /y HTTP/1.1\r\n\r\n", &mut |e| got.push(s(e)));
    assert_eq!(
        got,
        vec![
            req(b"POST", b"/upload", None, None, None),
            req(
                b"GET",
                b"/x",
                None,
                Some(BasicAuth::Credentials {
                    user: b"u",
                    password: b"p"
                }),
                None
            ),
            req(b"GET", b"/y", None, None, None),
        ]
    );
}

#[test]
fn gap_after_not_http_stays_stopped() {
    let mut p = HttpParser::new(Limits::default());
    let mut got = Vec::new();
    p.feed(b"\x16\x03", &mut |e| got.push(s(e)));
    p.gap();
    p.feed(b"GET / HTTP/1.1\r\n\r\n", &mut |e| got.push(s(e)));
    assert_eq!(got, vec![s(HttpEvent::NotHttp)]);
}

#[test]
fn base64_decoder() {
    let mut out = Vec::new();
    for (input, want) in [
        (&b""[..], Some(&b""[..])),
        (b"Zg==", Some(b"f")),
        (b"Zm8=", Some(b"fo")),
        (b"Zm9v", Some(b"foo")),
        (b"Zm9vYg", Some(b"foob")),
        (b"Zm9vYmE=", Some(b"fooba")),
        (b"Zm9vYmFy", Some(b"foobar")),
        (b"Zm9vY", None),
        (b"Zm=9", None),
        (b"Zg=", None),
        (b"Zm9v YmFy", None),
    ] {
        let ok = decode_base64(input, &mut out);
        assert_eq!(
            ok.then_some(&out[..]),
            want,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

proptest! {
    #[test]
    fn any_bytes_any_split_same_events_bounded(
        data in proptest::collection::vec(any::<u8>(), 0..500),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        max in 8usize..128,
    ) {
        let limits = Limits { max_head_bytes: max, max_chunk_line_bytes: 8 };
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
        let mut p = HttpParser::new(limits);
        for c in &chunks {
            p.feed(c, &mut |_| {});
            p.gap();
            prop_assert!(p.buffered() <= max);
        }
    }

    #[test]
    fn http_like_streams_any_split_same_events(
        parts in proptest::collection::vec(prop_oneof![
            Just(&b"GET / HTTP/1.1\r\n"[..]),
            Just(&b"Content-Length: 3\r\n"[..]),
            Just(&b"Transfer-Encoding: chunked\r\n"[..]),
            Just(&b"Authorization: Basic YTpi\r\n"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"3\r\nabc\r\n"[..]),
            Just(&b"0\r\n"[..]),
            Just(&b"abc"[..]),
        ], 0..30),
        cut in any::<usize>(),
    ) {
        let data: Vec<u8> = parts.concat();
        let limits = Limits { max_head_bytes: 96, max_chunk_line_bytes: 8 };
        let want = run(limits, &[&data]);
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        prop_assert_eq!(run(limits, &bytes), want.clone());
        let (a, b) = data.split_at(cut % (data.len() + 1));
        prop_assert_eq!(run(limits, &[a, b]), want);
    }

    #[test]
    fn basic_credentials_round_trip(
        user in proptest::collection::vec(any::<u8>().prop_filter("no colon", |b| *b != b':'), 0..40),
        password in proptest::collection::vec(any::<u8>(), 0..40),
        method in "[A-Z]{1,8}",
        target in "/[!-~]{0,30}",
    ) {
        let mut cred = user.clone();
        cred.push(b':');
        cred.extend_from_slice(&password);
        let data = format!("{method} {target} HTTP/1.1\r\nAuthorization: Basic {}\r\n\r\n", b64(&cred));
        prop_assert_eq!(
            ev(data.as_bytes()),
            vec![req(method.as_bytes(), target.as_bytes(), None,
                Some(BasicAuth::Credentials { user: &user, password: &password }), None)]
        );
    }
}

#[test]
fn server_banner_of_the_first_response() {
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nserver:  Apache/2.4.41 (Ubuntu) \r\n\r\nokHTTP/1.1 200 OK\r\nServer: other\r\n\r\n";
    // Whole, and split at every byte.
    for split in 0..resp.len() {
        let mut b = ServerBanner::new();
        let (a, c) = resp.split_at(split);
        let got: Vec<String> = [b.feed(a), b.feed(c)].into_iter().flatten().collect();
        assert_eq!(got, ["Apache/2.4.41 (Ubuntu)"], "split at {split}");
        assert!(b.is_done());
        assert_eq!(b.buffered(), 0);
    }
    // No Server field, not HTTP, a gap first: nothing.
    assert_eq!(ServerBanner::new().feed(b"HTTP/1.0 404 x\n\n"), None);
    let mut b = ServerBanner::new();
    assert_eq!(b.feed(b"SSH-2.0-OpenSSH\r\n\r\nServer: x\r\n\r\n"), None);
    assert!(b.is_done());
    let mut b = ServerBanner::new();
    b.feed(b"HTTP/1.1 200 OK\r\n");
    b.gap();
    assert_eq!(b.feed(b"Server: x\r\n\r\n"), None);
    // A head over the limit ends it.
    let mut b = ServerBanner::new();
    b.feed(b"HTTP/1.1 200 OK\r\n");
    for _ in 0..1000 {
        assert_eq!(b.feed(b"X-Pad: aaaaaaaaaaaaaaaaaaaaa\r\n"), None);
        assert!(b.buffered() <= ServerBanner::MAX_HEAD_BYTES);
    }
    assert!(b.is_done());
}

proptest! {
    #[test]
    fn server_banner_never_panics_and_stays_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..8),
        prefix in any::<bool>(),
    ) {
        let mut b = ServerBanner::new();
        if prefix {
            b.feed(b"HTTP/1.1 200 OK\r\n");
        }
        let mut found = 0;
        for c in &chunks {
            found += usize::from(b.feed(c).is_some());
            prop_assert!(b.buffered() <= ServerBanner::MAX_HEAD_BYTES);
        }
        prop_assert!(found <= 1);
    }
}
