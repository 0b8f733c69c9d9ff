//! SMB parser tests: messages laid out as MS-CIFS and MS-SMB2 show them (the
//! SMB1 NEGOTIATE is the one EternalBlue scanners send), split at every byte,
//! compounded, streamed, and broken.

use super::*;
use proptest::prelude::*;

fn run(limits: Limits, chunks: &[&[u8]]) -> Vec<String> {
    let mut p = SmbParser::new(limits);
    let mut ev = Vec::new();
    for c in chunks {
        p.feed(c, &mut |e| ev.push(format!("{e:?}")));
        assert!(p.buffered() <= limits.max_buffered_bytes);
    }
    ev
}

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

fn s(e: SmbEvent<'_>) -> String {
    format!("{e:?}")
}

fn msg(version: SmbVersion, command: u16) -> String {
    s(SmbEvent::Message { version, command })
}

fn negotiate(version: SmbVersion, dialects: &[Dialect<'_>], is_response: bool) -> String {
    s(SmbEvent::Negotiate {
        version,
        dialects: dialects.iter().copied().collect(),
        is_response,
    })
}

fn malformed(e: SmbError) -> String {
    s(SmbEvent::Malformed(e))
}

/// A session message (RFC 1002 4.3.1, 24-bit length as on port 445).
fn nbss(payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut v = vec![0, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    v.extend_from_slice(payload);
    v
}

/// An SMB1 header (MS-CIFS 2.2.3.1).
fn smb1_header(command: u8, reply: bool) -> Vec<u8> {
    let mut h = b"\xffSMB".to_vec();
    h.push(command);
    h.extend_from_slice(&[0; 4]); // Status
    h.push(if reply { 0x98 } else { 0x18 }); // Flags
    h.extend_from_slice(&[0x01, 0x28]); // Flags2
    h.extend_from_slice(&[0; 2 + 8 + 2]); // PIDHigh, SecurityFeatures, Reserved
    h.extend_from_slice(&[0, 0, 0x4b, 0x2f, 0, 0, 0xc5, 0]); // TID, PIDLow, UID, MID
    assert_eq!(h.len(), 32);
    h
}

/// An SMB1 NEGOTIATE request (MS-CIFS 2.2.4.52.1).
fn smb1_negotiate(dialects: &[&[u8]]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for d in dialects {
        bytes.push(0x02);
        bytes.extend_from_slice(d);
        bytes.push(0);
    }
    let mut m = smb1_header(0x72, false);
    m.push(0); // WordCount
    m.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    m.extend_from_slice(&bytes);
    m
}

const ETERNALBLUE_DIALECTS: &[&[u8]] = &[
    b"PC NETWORK PROGRAM 1.0",
    b"LANMAN1.0",
    b"Windows for Workgroups 3.1a",
    b"LM1.2X002",
    b"LANMAN2.1",
    b"NT LM 0.12",
];

/// An SMB2 header (MS-SMB2 2.2.1.2).
fn smb2_header(command: u16, response: bool, next: u32) -> Vec<u8> {
    let mut h = b"\xfeSMB".to_vec();
    h.extend_from_slice(&64u16.to_le_bytes());
    h.extend_from_slice(&[0; 2 + 4]); // CreditCharge, Status
    h.extend_from_slice(&command.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&u32::from(response).to_le_bytes());
    h.extend_from_slice(&next.to_le_bytes());
    h.extend_from_slice(&[0; 8 + 4 + 4 + 8 + 16]); // MessageId .. Signature
    assert_eq!(h.len(), 64);
    h
}

/// An SMB2 NEGOTIATE request (MS-SMB2 2.2.3) with negotiate contexts after it.
fn smb2_negotiate(dialects: &[u16]) -> Vec<u8> {
    let mut m = smb2_header(0, false, 0);
    m.extend_from_slice(&36u16.to_le_bytes());
    m.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
    m.extend_from_slice(&[1, 0, 0, 0, 0x7f, 0, 0, 0]); // SecurityMode, Reserved, Capabilities
    m.extend_from_slice(&[0xab; 16]); // ClientGuid
    m.extend_from_slice(&[0x70, 0, 0, 0, 2, 0, 0, 0]); // NegotiateContextOffset/Count
    for d in dialects {
        m.extend_from_slice(&d.to_le_bytes());
    }
    m.extend_from_slice(&[0x01, 0x00, 0x26, 0x00, 0, 0, 0, 0, 1, 0, 0x20, 0, 1, 0]);
    m.extend_from_slice(&[0x5a; 32]);
    m
}

/// An SMB2 NEGOTIATE response (MS-SMB2 2.2.4) with a security blob.
fn smb2_negotiate_response(dialect: u16) -> Vec<u8> {
    let mut m = smb2_header(0, true, 0);
    m.extend_from_slice(&65u16.to_le_bytes());
    m.extend_from_slice(&1u16.to_le_bytes());
    m.extend_from_slice(&dialect.to_le_bytes());
    m.extend_from_slice(&[0; 58]);
    m.extend_from_slice(&[0x60; 120]);
    m
}

#[test]
fn eternalblue_style_smb1_negotiate_and_response() {
    let mut data = nbss(&smb1_negotiate(ETERNALBLUE_DIALECTS));
    let want_req = vec![
        msg(SmbVersion::Smb1, 0x72),
        negotiate(
            SmbVersion::Smb1,
            &ETERNALBLUE_DIALECTS
                .iter()
                .map(|d| Dialect::Name(d))
                .collect::<Vec<_>>(),
            false,
        ),
    ];
    assert_eq!(ev(&data), want_req);
    // The server's answer, WordCount 17, DialectIndex 5 (NT LM 0.12).
    let mut resp = smb1_header(0x72, true);
    resp.push(17);
    resp.extend_from_slice(&5u16.to_le_bytes());
    resp.extend_from_slice(&[0; 32]);
    resp.extend_from_slice(&0u16.to_le_bytes());
    data = nbss(&resp);
    assert_eq!(
        ev(&data),
        vec![
            msg(SmbVersion::Smb1, 0x72),
            negotiate(SmbVersion::Smb1, &[Dialect::Index(5)], true)
        ]
    );
    // An error response (WordCount 0) is a message without dialects.
    let mut resp = smb1_header(0x72, true);
    resp.extend_from_slice(&[0, 0, 0]);
    assert_eq!(ev(&nbss(&resp)), vec![msg(SmbVersion::Smb1, 0x72)]);
}

#[test]
fn smb2_negotiate_request_and_response_then_other_messages() {
    let mut data = nbss(&smb2_negotiate(&[0x0202, 0x0210, 0x0300, 0x0302, 0x0311]));
    data.extend(nbss(&smb2_header(1, false, 0))); // SESSION_SETUP
    data.extend(nbss(&smb1_header(0x73, false))); // SMB1 SESSION_SETUP_ANDX
    assert_eq!(
        ev(&data),
        vec![
            msg(SmbVersion::Smb2, 0),
            negotiate(
                SmbVersion::Smb2,
                &[0x0202, 0x0210, 0x0300, 0x0302, 0x0311].map(Dialect::Revision),
                false
            ),
            msg(SmbVersion::Smb2, 1),
            msg(SmbVersion::Smb1, 0x73),
        ]
    );
    assert_eq!(
        ev(&nbss(&smb2_negotiate_response(0x0311))),
        vec![
            msg(SmbVersion::Smb2, 0),
            negotiate(SmbVersion::Smb2, &[Dialect::Revision(0x0311)], true)
        ]
    );
    // An error response to NEGOTIATE (StructureSize 9).
    let mut err = smb2_header(0, true, 0);
    err.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ev(&nbss(&err)), vec![msg(SmbVersion::Smb2, 0)]);
}

#[test]
fn netbios_session_packets_are_skipped() {
    // Port 139: session request with called/calling names, keep-alive, then SMB.
    let mut data = vec![0x81, 0, 0, 68];
    data.extend_from_slice(&[0x20; 68]);
    data.extend_from_slice(&[0x85, 0, 0, 0]);
    data.extend(nbss(&smb1_negotiate(&[b"NT LM 0.12"])));
    data.extend_from_slice(&[0, 0, 0, 0]); // empty session message
    assert_eq!(
        ev(&data),
        vec![
            msg(SmbVersion::Smb1, 0x72),
            negotiate(SmbVersion::Smb1, &[Dialect::Name(b"NT LM 0.12")], false)
        ]
    );
}

#[test]
fn compounded_smb2_requests_are_each_reported() {
    // CREATE + READ + CLOSE, related compound (MS-SMB2 3.2.4.1.4).
    let mut c = smb2_header(5, false, 72);
    c.extend_from_slice(&[0; 8]);
    c.extend(smb2_header(8, false, 80));
    c.extend_from_slice(&[0; 16]);
    c.extend(smb2_header(6, false, 0));
    c.extend_from_slice(&[0; 24]);
    assert_eq!(
        ev(&nbss(&c)),
        vec![
            msg(SmbVersion::Smb2, 5),
            msg(SmbVersion::Smb2, 8),
            msg(SmbVersion::Smb2, 6)
        ]
    );
    // A NextCommand that is not 8-aligned or points past the message.
    let mut c = smb2_header(5, false, 70);
    c.extend_from_slice(&[0; 16]);
    assert_eq!(
        ev(&nbss(&c)),
        vec![
            msg(SmbVersion::Smb2, 5),
            malformed(SmbError::Invalid {
                what: "SMB2 NextCommand"
            })
        ]
    );
    // A compounded member that is not SMB2.
    let mut c = smb2_header(5, false, 64);
    c.extend(smb1_header(0x72, false));
    assert_eq!(
        ev(&nbss(&c)),
        vec![
            msg(SmbVersion::Smb2, 5),
            malformed(SmbError::Invalid {
                what: "SMB2 compounded message protocol id"
            })
        ]
    );
}

#[test]
fn transforms_are_reported() {
    let mut enc = b"\xfdSMB".to_vec();
    enc.extend_from_slice(&[0x11; 80]);
    let mut comp = b"\xfcSMB".to_vec();
    comp.extend_from_slice(&[0x22; 40]);
    let mut data = nbss(&enc);
    data.extend(nbss(&comp));
    assert_eq!(
        ev(&data),
        vec![
            s(SmbEvent::Transform { encrypted: true }),
            s(SmbEvent::Transform { encrypted: false })
        ]
    );
}

#[test]
fn not_smb_stops() {
    assert_eq!(ev(b"GET / HTTP/1.1\r\n\r\n"), vec![s(SmbEvent::NotSmb)]);
    assert_eq!(
        ev(&[
            nbss(b"\x16\x03\x01\x00\x10hello"),
            nbss(&smb2_header(1, false, 0))
        ]
        .concat()),
        vec![s(SmbEvent::NotSmb)]
    );
    assert_eq!(ev(&nbss(b"ab")), vec![s(SmbEvent::NotSmb)]);
}

#[test]
fn broken_messages_are_reported_and_skipped() {
    let cases: Vec<(Vec<u8>, Vec<String>)> = vec![
        (
            b"\xffSMB\x72".to_vec(),
            vec![malformed(SmbError::Truncated {
                what: "SMB1 header",
            })],
        ),
        (
            smb1_header(0x72, false),
            vec![
                msg(SmbVersion::Smb1, 0x72),
                malformed(SmbError::Truncated {
                    what: "SMB1 WordCount",
                }),
            ],
        ),
        (
            {
                let mut m = smb1_negotiate(&[b"NT LM 0.12"]);
                m.truncate(m.len() - 3);
                m
            },
            vec![
                msg(SmbVersion::Smb1, 0x72),
                malformed(SmbError::Truncated {
                    what: "SMB1 NEGOTIATE dialects",
                }),
            ],
        ),
        (
            {
                let mut m = smb1_negotiate(&[b"NT LM 0.12"]);
                m[35] = 0x03;
                m
            },
            vec![
                msg(SmbVersion::Smb1, 0x72),
                malformed(SmbError::Invalid {
                    what: "SMB1 NEGOTIATE dialect list",
                }),
            ],
        ),
        (
            {
                let mut m = smb1_negotiate(&[b"NT LM 0.12"]);
                m.pop();
                let bc = (m.len() - 35) as u16;
                m[33..35].copy_from_slice(&bc.to_le_bytes());
                m
            },
            vec![
                msg(SmbVersion::Smb1, 0x72),
                malformed(SmbError::Invalid {
                    what: "SMB1 NEGOTIATE dialect list",
                }),
            ],
        ),
        (
            smb1_negotiate(&[&b"a"[..]; 65]),
            vec![
                msg(SmbVersion::Smb1, 0x72),
                malformed(SmbError::TooManyDialects { limit: 64 }),
            ],
        ),
        (
            smb2_negotiate(&[0x0202; 65]),
            vec![
                msg(SmbVersion::Smb2, 0),
                malformed(SmbError::TooManyDialects { limit: 64 }),
            ],
        ),
        (
            {
                let mut m = smb2_negotiate(&[0x0202, 0x0210]);
                m[64] = 35;
                m
            },
            vec![
                msg(SmbVersion::Smb2, 0),
                malformed(SmbError::Invalid {
                    what: "SMB2 NEGOTIATE StructureSize",
                }),
            ],
        ),
        (
            {
                let mut m = smb2_negotiate(&[0x0202, 0x0210]);
                m[66] = 40;
                m.truncate(110);
                m
            },
            vec![
                msg(SmbVersion::Smb2, 0),
                malformed(SmbError::Truncated {
                    what: "SMB2 NEGOTIATE dialects",
                }),
            ],
        ),
        (
            {
                let mut m = smb2_header(1, false, 0);
                m[4] = 65;
                m
            },
            vec![malformed(SmbError::Invalid {
                what: "SMB2 header StructureSize",
            })],
        ),
        (
            smb2_header(0, false, 0),
            vec![
                msg(SmbVersion::Smb2, 0),
                malformed(SmbError::Truncated {
                    what: "SMB2 NEGOTIATE request",
                }),
            ],
        ),
    ];
    for (m, want) in cases {
        // The framing holds, so the next message is still read.
        let mut data = nbss(&m);
        data.extend(nbss(&smb2_header(3, false, 0)));
        let mut want = want;
        want.push(msg(SmbVersion::Smb2, 3));
        assert_eq!(ev(&data), want, "{m:02x?}");
    }
}

#[test]
fn buffer_limit_bites_the_same_way_however_split() {
    let limits = Limits {
        max_buffered_bytes: 80,
        max_dialects: 64,
    };
    let data = nbss(&smb1_negotiate(ETERNALBLUE_DIALECTS));
    assert_eq!(
        events(limits, &data),
        vec![
            msg(SmbVersion::Smb1, 0x72),
            malformed(SmbError::TooLargeToBuffer {
                what: "SMB1 NEGOTIATE dialects",
                needed: data.len() - 4,
                limit: 80
            })
        ]
    );
}

#[test]
fn large_messages_stream_past_and_a_gap_resyncs() {
    // An SMB2 WRITE of 1 MiB, then a CLOSE.
    let mut write = smb2_header(9, false, 0);
    write.extend(std::iter::repeat_n(0x41u8, 1 << 20));
    let mut data = nbss(&write);
    data.extend(nbss(&smb2_header(6, false, 0)));
    let limits = Limits {
        max_buffered_bytes: 128,
        max_dialects: 8,
    };
    let want = vec![msg(SmbVersion::Smb2, 9), msg(SmbVersion::Smb2, 6)];
    let chunks: Vec<&[u8]> = data.chunks(1448).collect();
    assert_eq!(run(limits, &chunks), want);

    // Lose 10 kB in the middle of the WRITE: the CLOSE is found again.
    let mut p = SmbParser::new(limits);
    let mut got = Vec::new();
    p.feed(&data[..5000], &mut |e| got.push(s(e)));
    p.gap();
    p.feed(&data[15_000..], &mut |e| got.push(s(e)));
    assert_eq!(got, want);

    // Resync right on a boundary, one byte at a time, SMB1 this time.
    let mut p = SmbParser::new(limits);
    let mut got = Vec::new();
    p.feed(&data[..100], &mut |e| got.push(s(e)));
    p.gap();
    for b in nbss(&smb1_negotiate(&[b"NT LM 0.12"])) {
        p.feed(&[b], &mut |e| got.push(s(e)));
    }
    assert_eq!(
        got,
        vec![
            msg(SmbVersion::Smb2, 9),
            msg(SmbVersion::Smb1, 0x72),
            negotiate(SmbVersion::Smb1, &[Dialect::Name(b"NT LM 0.12")], false)
        ]
    );
}

#[test]
fn gap_after_not_smb_stays_stopped() {
    let mut p = SmbParser::new(Limits::default());
    let mut got = Vec::new();
    p.feed(b"SSH-2.0-x\r\n", &mut |e| got.push(s(e)));
    p.gap();
    p.feed(&nbss(&smb2_header(1, false, 0)), &mut |e| got.push(s(e)));
    assert_eq!(got, vec![s(SmbEvent::NotSmb)]);
}

proptest! {
    #[test]
    fn any_bytes_any_split_same_events_bounded(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        max in 0usize..200,
        framed in any::<bool>(),
    ) {
        let limits = Limits { max_buffered_bytes: max, max_dialects: 4 };
        // Framed: give the garbage a valid session header and an SMB id, so the
        // message parsers see it.
        let data = if framed {
            let mut m = if data.first().is_some_and(|b| b & 1 == 0) { b"\xfeSMB".to_vec() } else { b"\xffSMB".to_vec() };
            m.extend_from_slice(&data);
            nbss(&m)
        } else {
            data
        };
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
        let mut p = SmbParser::new(limits);
        for c in &chunks {
            p.feed(c, &mut |_| {});
            p.gap();
            prop_assert!(p.buffered() <= max);
        }
    }

    #[test]
    fn smb1_dialects_round_trip(
        dialects in proptest::collection::vec(proptest::collection::vec(1u8..=255, 0..30), 0..20),
        chunk in 1usize..64,
    ) {
        let refs: Vec<&[u8]> = dialects.iter().map(Vec::as_slice).collect();
        let data = nbss(&smb1_negotiate(&refs));
        let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
        let want: Vec<Dialect<'_>> = refs.iter().map(|d| Dialect::Name(d)).collect();
        prop_assert_eq!(
            run(Limits::default(), &chunks),
            vec![msg(SmbVersion::Smb1, 0x72), negotiate(SmbVersion::Smb1, &want, false)]
        );
    }

    #[test]
    fn smb2_dialects_round_trip(
        dialects in proptest::collection::vec(any::<u16>(), 0..64),
        chunk in 1usize..64,
    ) {
        let data = nbss(&smb2_negotiate(&dialects));
        let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
        let want: Vec<Dialect<'_>> = dialects.iter().copied().map(Dialect::Revision).collect();
        prop_assert_eq!(
            run(Limits::default(), &chunks),
            vec![msg(SmbVersion::Smb2, 0), negotiate(SmbVersion::Smb2, &want, false)]
        );
    }
}

#[test]
fn dialect_names() {
    assert_eq!(
        Dialect::Name(b"NT LM 0.12").name().as_deref(),
        Some("NT LM 0.12")
    );
    assert_eq!(Dialect::Revision(0x0210).name().as_deref(), Some("SMB 2.1"));
    assert_eq!(
        Dialect::Revision(0x0311).name().as_deref(),
        Some("SMB 3.1.1")
    );
    assert_eq!(
        Dialect::Revision(0x0999).name().as_deref(),
        Some("SMB2 0x0999")
    );
    assert_eq!(Dialect::Index(0).name(), None);
}
