//! TLS handshake reader tests: a real certificate (rcgen) in a TLS 1.2 server
//! flight and a ClientHello with SNI, split at every byte; arbitrary bytes.

use super::*;
use proptest::prelude::*;

fn record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty, 3, 3];
    r.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut h = vec![ty];
    h.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    h.extend_from_slice(body);
    h
}

fn u24(n: usize) -> [u8; 3] {
    let b = u32::try_from(n).unwrap().to_be_bytes();
    [b[1], b[2], b[3]]
}

fn cert_der(cn: &str) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec!["pacs.example".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_after = rcgen::date_time_ymd(2031, 1, 31);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn server_flight(der: &[u8]) -> Vec<u8> {
    let mut list = Vec::new();
    list.extend_from_slice(&u24(der.len()));
    list.extend_from_slice(der);
    let mut body = u24(list.len()).to_vec();
    body.extend_from_slice(&list);
    let mut hs = handshake(2, &[3, 3, 0, 0]); // a ServerHello (not read)
    hs.extend(handshake(11, &body));
    hs.extend(handshake(14, &[]));
    // Split over two records, as servers do with long chains.
    let (a, b) = hs.split_at(hs.len() / 2);
    let mut out = record(22, a);
    out.extend(record(22, b));
    out.extend(record(20, &[1]));
    out
}

fn client_hello(sni: &[u8]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    let mut name = vec![0];
    name.extend_from_slice(&u16::try_from(sni.len()).unwrap().to_be_bytes());
    name.extend_from_slice(sni);
    let mut list = u16::try_from(name.len()).unwrap().to_be_bytes().to_vec();
    list.extend(name);
    let mut exts = vec![0, 0x0b, 0, 2, 1, 0]; // ec_point_formats first
    exts.extend_from_slice(&[0, 0]);
    exts.extend_from_slice(&u16::try_from(list.len()).unwrap().to_be_bytes());
    exts.extend(list);
    body.extend_from_slice(&u16::try_from(exts.len()).unwrap().to_be_bytes());
    body.extend(exts);
    record(22, &handshake(1, &body))
}

fn events(chunks: &[&[u8]]) -> Vec<String> {
    let mut p = TlsParser::new(Limits::default());
    let mut ev = Vec::new();
    for c in chunks {
        p.feed(c, &mut |e| {
            ev.push(match e {
                TlsEvent::ClientHello { sni } => {
                    format!("sni={}", String::from_utf8_lossy(sni.unwrap_or(b"-")))
                }
                TlsEvent::Certificate(c) => c.map_or("bad certificate".into(), |c| c.label()),
                TlsEvent::NotTls => "not tls".into(),
            })
        });
        assert!(p.buffered() <= Limits::default().max_handshake_bytes + MAX_FRAGMENT + 5);
    }
    ev
}

#[test]
fn certificate_in_a_tls12_server_flight() {
    let flight = server_flight(&cert_der("PACS-01 Storage"));
    let want = ["subject=PACS-01 Storage issuer=PACS-01 Storage not_after=2031-01-31T00:00:00Z"];
    assert_eq!(events(&[&flight]), want);
    for split in 0..flight.len() {
        let (a, b) = flight.split_at(split);
        assert_eq!(events(&[a, b]), want, "split at {split}");
    }
    let one_at_a_time: Vec<&[u8]> = flight.chunks(1).collect();
    assert_eq!(events(&one_at_a_time), want);
}

#[test]
fn client_hello_server_name() {
    let hello = client_hello(b"pacs.example");
    assert_eq!(events(&[&hello]), ["sni=pacs.example"]);
    for split in 0..hello.len() {
        let (a, b) = hello.split_at(split);
        assert_eq!(events(&[a, b]), ["sni=pacs.example"]);
    }
}

#[test]
fn not_tls_encrypted_and_gaps_stop() {
    assert_eq!(events(&[b"GET / HTTP/1.1\r\n\r\n"]), ["not tls"]);
    // Application data (TLS 1.3's encrypted flight) ends it.
    let mut s = record(23, &[0; 40]);
    s.extend(server_flight(&cert_der("x")));
    assert!(events(&[&s]).is_empty());
    let mut p = TlsParser::new(Limits::default());
    p.feed(&client_hello(b"a")[..10], &mut |_| {});
    p.gap();
    assert!(p.is_done());
    assert_eq!(p.buffered(), 0);
}

#[test]
fn der_times_and_strings() {
    assert_eq!(
        time(0x17, b"491231235959Z").as_deref(),
        Some("2049-12-31T23:59:59Z")
    );
    assert_eq!(
        time(0x17, b"500101000000Z").as_deref(),
        Some("1950-01-01T00:00:00Z")
    );
    assert_eq!(
        time(0x18, b"20310131120000Z").as_deref(),
        Some("2031-01-31T12:00:00Z")
    );
    assert_eq!(time(0x17, b"4912312359x9Z"), None);
    assert_eq!(
        directory_string(0x1e, &[0, b'h', 0, b'i']).as_deref(),
        Some("hi")
    );
    assert_eq!(directory_string(0x0c, b"a\nb").as_deref(), Some("a?b"));
    assert_eq!(certificate_summary(b"\x30\x03\x02\x01\x00"), None);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..8),
        tls_start in any::<bool>(),
    ) {
        let mut p = TlsParser::new(Limits { max_handshake_bytes: 4096 });
        if tls_start {
            p.feed(&[22, 3, 3], &mut |_| {});
        }
        for c in &chunks {
            p.feed(c, &mut |_| {});
            prop_assert!(p.buffered() <= 4096 + MAX_FRAGMENT + 5);
        }
        let _ = certificate_summary(&chunks.concat());
    }

    #[test]
    fn mutated_certificates_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        thread_local!(static DER: Vec<u8> = cert_der("mutant"));
        let mut der = DER.with(Clone::clone);
        for (i, b) in flips {
            let n = der.len();
            der[i % n] = b;
        }
        let _ = certificate_summary(&der);
        let _ = events(&[&server_flight(&der)]);
    }
}
