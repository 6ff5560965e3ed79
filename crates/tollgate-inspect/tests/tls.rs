//! The TLS ClientHello parser on real and hand-built hellos: rustls's (TLS 1.2 and 1.3), the
//! RFC 8448 test vector, Chrome-like hellos with GREASE, ECH and a post-quantum key share; every
//! TCP split point, fragmentation over several records, and one test per `Malformed` variant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::{
    HelloBuilder, Xorshift, alpn_body, check_every_split, ext, find, handshake_message, hex, names, records,
    rfc8448_record, rustls_hello, rustls_tls12_hello, rustls_tls13_hello, server_name_body, u8_prefixed, u16_prefixed,
    unwrap_records,
};
use tollgate_inspect::identity::{AppProtocol, Ech, Identity, Malformed, NameSource};
use tollgate_inspect::{Progress, inspect};

fn sni(identity: &Identity) -> Vec<u8> {
    assert!(identity.names.len() <= 1, "a ClientHello has one name at most: {identity:?}");
    match identity.names.primary() {
        Some((NameSource::TlsSni, name)) => name.as_bytes().to_vec(),
        Some(other) => panic!("not an SNI: {other:?}"),
        None => Vec::new(),
    }
}

/// The identity and progress of a whole input.
fn done(data: &[u8]) -> Identity {
    let inspection = inspect(data);
    assert_eq!(inspection.progress, Progress::Done, "{inspection:?}");
    inspection.identity
}

// ---------------------------------------------------------------------------------------------
// Real hellos

#[test]
fn rustls_tls13_hello_with_alpn() {
    let data = rustls_tls13_hello("www.example.com");
    let identity = check_every_split(&data);
    assert_eq!(identity.protocol, AppProtocol::Tls);
    assert_eq!(sni(&identity), b"www.example.com");
    assert_eq!(identity.alpn.first(), b"h2");
    assert_eq!(identity.alpn.offered, 2);
    assert!(identity.tls.offers_tls13);
    assert_eq!(identity.tls.legacy_version, 0x0303);
    assert!(!identity.tls.grease, "rustls sends no GREASE");
    assert_eq!(identity.tls.ech, Ech::None);
    assert_eq!(identity.malformed, None);
}

#[test]
fn rustls_tls12_only_hello() {
    let data = rustls_tls12_hello("api.example.org");
    let identity = check_every_split(&data);
    assert_eq!(sni(&identity), b"api.example.org");
    assert!(!identity.tls.offers_tls13);
    assert_eq!(identity.alpn.offered, 0);
    assert_eq!(identity.alpn.first(), b"");
    assert_eq!(identity.malformed, None);
}

#[test]
fn rustls_uppercase_sni_is_folded() {
    let data = rustls_tls13_hello("WWW.Example.COM");
    // rustls sends the name in the case it was given.
    assert!(find(&data, b"WWW.Example.COM").is_some());
    assert_eq!(sni(&done(&data)), b"www.example.com");
}

#[test]
fn uppercase_sni_on_the_wire_is_folded() {
    let data = HelloBuilder::minimal().with(ext::SERVER_NAME, server_name_body(&[b"MiXeD.Example.COM"])).record();
    assert_eq!(sni(&check_every_split(&data)), b"mixed.example.com");
}

#[test]
fn trailing_dot_sni_is_dropped() {
    // rustls strips a trailing dot before it sends the SNI (RFC 6066 §3 has none), so the hello
    // with the dot on the wire is built by hand; both must give the same name.
    let from_rustls = rustls_tls13_hello("example.com.");
    assert!(find(&from_rustls, b"example.com.").is_none());
    assert_eq!(sni(&done(&from_rustls)), b"example.com");
    let by_hand = HelloBuilder::minimal().with(ext::SERVER_NAME, server_name_body(&[b"Example.COM."])).record();
    assert!(find(&by_hand, b"Example.COM.").is_some());
    assert_eq!(sni(&check_every_split(&by_hand)), b"example.com");
}

#[test]
fn punycode_idn_sni() {
    let data = rustls_tls13_hello("xn--bcher-kva.example");
    let identity = check_every_split(&data);
    assert_eq!(sni(&identity), b"xn--bcher-kva.example");
    assert!(identity.names.primary().unwrap().1.is_valid_dns());
}

#[test]
fn rfc8448_simple_1rtt_client_hello() {
    let data = rfc8448_record();
    assert_eq!(data.len(), 5 + 196);
    let identity = check_every_split(&data);
    assert_eq!(sni(&identity), b"server");
    assert!(identity.tls.offers_tls13);
    assert_eq!(identity.tls.legacy_version, 0x0303);
    assert_eq!(identity.alpn.offered, 0);
    assert!(!identity.tls.grease);
    assert_eq!(identity.malformed, None);
}

#[test]
fn chrome_like_hellos_with_grease_ech_and_a_pq_key_share() {
    for seed in 1..=8 {
        let hello = HelloBuilder::chrome_like(b"www.google.com", seed);
        let data = hello.record();
        assert!((1700..2000).contains(&data.len()), "{} bytes", data.len());
        let identity = if seed <= 2 { check_every_split(&data) } else { done(&data) };
        assert_eq!(sni(&identity), b"www.google.com", "seed {seed}");
        assert!(identity.tls.grease);
        assert!(identity.tls.offers_tls13);
        assert_eq!(identity.tls.ech, Ech::Outer);
        assert_eq!(identity.alpn.first(), b"h2");
        assert_eq!(identity.alpn.offered, 2);
        assert_eq!(identity.malformed, None, "seed {seed}");
    }
}

// ---------------------------------------------------------------------------------------------
// Record fragmentation and TCP splits

/// Sorted, distinct split points inside `len`.
fn split_points(rng: &mut Xorshift, len: usize, count: usize) -> Vec<usize> {
    let mut points: Vec<usize> = (0..count).map(|_| 1 + rng.below(len - 1)).collect();
    points.sort_unstable();
    points.dedup();
    points
}

#[test]
fn a_hello_fragmented_over_two_to_five_records_reads_the_same() {
    let inputs = [
        unwrap_records(&rustls_tls13_hello("fragmented.example")),
        hex(common::RFC8448_CLIENT_HELLO),
        HelloBuilder::chrome_like(b"fragmented.example", 3).message(),
    ];
    let mut rng = Xorshift(0x5eed);
    for message in &inputs {
        let whole = done(&records(message, &[]));
        for round in 0..200 {
            let count = 1 + round % 4;
            let splits = split_points(&mut rng, message.len(), count);
            let fragmented = records(message, &splits);
            let identity = if round < 4 { check_every_split(&fragmented) } else { done(&fragmented) };
            assert_eq!(identity, whole, "splits {splits:?}");
        }
    }
}

#[test]
fn a_record_boundary_inside_every_field_of_a_small_hello() {
    let message = hex(common::RFC8448_CLIENT_HELLO);
    let whole = done(&records(&message, &[]));
    for split in 1..message.len() {
        assert_eq!(done(&records(&message, &[split])), whole, "split at {split}");
        if split + 1 < message.len() {
            assert_eq!(done(&records(&message, &[split, split + 1])), whole, "one-byte record at {split}");
        }
    }
}

#[test]
fn sni_after_a_large_key_share_is_reported_once_it_arrives() {
    // key_share first (X25519MLKEM768 + x25519, ~1.25 KB), then server_name: the SNI lies beyond a
    // 1460-byte first segment.
    let mut rng = Xorshift(7);
    let mut shares = 0x11ec_u16.to_be_bytes().to_vec();
    shares.extend_from_slice(&u16_prefixed(&rng.bytes(1216)));
    shares.extend_from_slice(&0x001d_u16.to_be_bytes());
    shares.extend_from_slice(&u16_prefixed(&rng.bytes(32)));
    let data = HelloBuilder::minimal()
        .with(ext::KEY_SHARE, u16_prefixed(&shares))
        .with(ext::PADDING, vec![0; 300])
        .with(ext::SERVER_NAME, server_name_body(&[b"late.example"]))
        .with(ext::ALPN, alpn_body(&[b"http/1.1"]))
        .record();
    let sni_end = find(&data, b"late.example").unwrap() + b"late.example".len();
    assert!(sni_end > 1460);
    assert!(inspect(&data[..1460]).identity.names.is_empty());
    let at_sni = inspect(&data[..sni_end]);
    assert!(matches!(at_sni.progress, Progress::NeedMore { .. }));
    assert_eq!(sni(&at_sni.identity), b"late.example");
    assert_eq!(sni(&check_every_split(&data)), b"late.example");
}

#[test]
fn sni_inside_the_driver_bound_is_reported_though_the_hello_goes_on() {
    // The driver stops at 4096 bytes; a 6 KB hello with its SNI early must still name the flow.
    let data = HelloBuilder::minimal()
        .with(ext::SERVER_NAME, server_name_body(&[b"early.example"]))
        .with(ext::PADDING, vec![0; 6000])
        .record();
    let bounded = inspect(&data[..4096]);
    assert_eq!(bounded.progress, Progress::NeedMore { at_least: data.len() });
    assert_eq!(sni(&bounded.identity), b"early.example");
}

#[test]
fn alpn_and_sni_split_over_records_are_gathered() {
    let long_id = [b'p'; 40];
    let message = HelloBuilder::minimal()
        .with(ext::SERVER_NAME, server_name_body(&[b"Split.Name.Example"]))
        .with(ext::ALPN, alpn_body(&[&long_id, b"h2"]))
        .message();
    let name_at = find(&message, b"Split.Name.Example").unwrap();
    let id_at = find(&message, &long_id).unwrap();
    let data = records(&message, &[name_at + 3, name_at + 4, id_at + 20]);
    let identity = check_every_split(&data);
    assert_eq!(sni(&identity), b"split.name.example");
    assert_eq!(identity.alpn.first(), &long_id[..32]);
    assert!(identity.alpn.truncated);
    assert_eq!(identity.alpn.offered, 2);
}

#[test]
fn a_long_sni_keeps_its_tail_also_when_split() {
    let mut name = vec![b'a'; 280];
    name.extend_from_slice(b".Evil.Example");
    let message = HelloBuilder::minimal().with(ext::SERVER_NAME, server_name_body(&[&name])).message();
    let name_at = find(&message, &name).unwrap();
    for splits in [vec![], vec![name_at + 1], vec![name_at + 100, name_at + 290]] {
        let identity = done(&records(&message, &splits));
        let (_, host) = identity.names.primary().unwrap();
        assert!(host.is_truncated());
        assert!(host.is_below(b"evil.example"));
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes that are valid but unusual

#[test]
fn an_absent_extensions_block_is_a_complete_hello() {
    let mut hello = HelloBuilder::minimal();
    hello.extensions = None;
    let identity = check_every_split(&hello.record());
    assert!(identity.names.is_empty());
    assert_eq!(identity.malformed, None);
}

#[test]
fn grease_in_suites_only_or_extensions_only() {
    let mut suites_only = HelloBuilder::minimal();
    suites_only.cipher_suites.insert(0, 0x7a7a);
    assert!(done(&suites_only.record()).tls.grease);
    let extensions_only = HelloBuilder::minimal().with(0xdada, Vec::new());
    assert!(done(&extensions_only.record()).tls.grease);
    assert!(!done(&HelloBuilder::minimal().record()).tls.grease);
}

#[test]
fn ech_types() {
    for (body, expected) in
        [(vec![0, 0, 1], Ech::Outer), (vec![1], Ech::Inner), (vec![7, 1], Ech::Unknown), (vec![], Ech::Unknown)]
    {
        assert_eq!(done(&HelloBuilder::minimal().with(ext::ECH, body).record()).tls.ech, expected);
    }
}

#[test]
fn ssl3_record_version_and_session_id_are_read() {
    let mut hello = HelloBuilder::minimal().with(ext::SERVER_NAME, server_name_body(&[b"old.example"]));
    hello.session_id = vec![9; 32];
    hello.legacy_version = 0x0300;
    let mut data = hello.record();
    data[2] = 0;
    let identity = done(&data);
    assert_eq!(identity.tls.legacy_version, 0x0300);
    assert_eq!(sni(&identity), b"old.example");
}

#[test]
fn bytes_after_the_hello_are_not_read() {
    let mut data = rfc8448_record();
    let whole = done(&data);
    data.extend_from_slice(&[23, 3, 3, 0, 5, 1, 2, 3, 4, 5]);
    assert_eq!(done(&data), whole);
}

// ---------------------------------------------------------------------------------------------
// One test per Malformed variant (and the names read before the problem are kept)

fn malformed(data: &[u8]) -> (Option<Malformed>, Vec<u8>) {
    let identity = done(data);
    (identity.malformed, sni(&identity))
}

#[test]
fn malformed_tls_record() {
    let message = HelloBuilder::minimal()
        .with(ext::SERVER_NAME, server_name_body(&[b"kept.example"]))
        .with(ext::PADDING, vec![0; 8])
        .message();
    // A second fragment in an application-data record: the SNI in the first is kept.
    let split = message.len() - 2;
    let mut data = records(&message, &[split]);
    let second = split + 5;
    data[second] = 23;
    assert_eq!(malformed(&data), (Some(Malformed::TlsRecord), b"kept.example".to_vec()));
    // Empty record, oversized record, major version 2, in the first record.
    for header in [[22, 3, 1, 0, 0], [22, 3, 1, 0x48, 0x01], [22, 2, 0, 0, 10]] {
        let mut data = header.to_vec();
        data.extend_from_slice(&message);
        assert_eq!(malformed(&data), (Some(Malformed::TlsRecord), Vec::new()), "{header:?}");
    }
    // The largest allowed record length is accepted (the hello ends inside the record).
    let mut data = vec![22, 3, 1, 0x48, 0x00];
    data.extend_from_slice(&message);
    assert_eq!(malformed(&data), (None, b"kept.example".to_vec()));
}

#[test]
fn malformed_tls_handshake() {
    // A ServerHello where a ClientHello belongs.
    let mut message = HelloBuilder::minimal().message();
    message[0] = 2;
    assert_eq!(malformed(&records(&message, &[])).0, Some(Malformed::TlsHandshake));
    // Lengths shorter than any ClientHello, or longer than any.
    for length in [[0, 0, 0], [0, 0, 40], [0x02, 0x02, 0x00], [0xff, 0xff, 0xff]] {
        let mut message = vec![1];
        message.extend_from_slice(&length);
        message.extend_from_slice(&[0; 60]);
        assert_eq!(malformed(&records(&message, &[])).0, Some(Malformed::TlsHandshake), "{length:?}");
    }
}

#[test]
fn malformed_tls_client_hello() {
    let sni_hello = || HelloBuilder::minimal().with(ext::SERVER_NAME, server_name_body(&[b"a.example"]));
    let mut long_session = sni_hello();
    long_session.session_id = vec![0; 33];
    let mut odd_suites = sni_hello();
    odd_suites.cipher_suites = vec![];
    let odd_suites_body = {
        let mut body = odd_suites.body();
        // cipher_suites length 3 with 3 bytes.
        body[35..37].copy_from_slice(&[0, 3]);
        body.insert(37, 0x13);
        body.insert(37, 0x01);
        body.insert(37, 0x13);
        body
    };
    let mut no_suites = sni_hello();
    no_suites.cipher_suites = vec![];
    let mut no_compression = sni_hello();
    no_compression.compression_methods = vec![];
    for (what, data) in [
        ("session id of 33", long_session.record()),
        ("odd cipher suites", records(&handshake_message(&odd_suites_body), &[])),
        ("no cipher suites", no_suites.record()),
        ("no compression methods", no_compression.record()),
    ] {
        assert_eq!(malformed(&data), (Some(Malformed::TlsClientHello), Vec::new()), "{what}");
    }

    // Overruns of the ClientHello body: the cipher suites, the extensions block.
    let mut body = sni_hello().body();
    body[35..37].copy_from_slice(&[0xff, 0xfe]);
    assert_eq!(malformed(&records(&handshake_message(&body), &[])).0, Some(Malformed::TlsClientHello));
    let mut body = sni_hello().body();
    let block_at = 2 + 32 + 1 + 4 + 2;
    let block_len = u16::from_be_bytes([body[block_at], body[block_at + 1]]);
    body[block_at..block_at + 2].copy_from_slice(&(block_len + 1).to_be_bytes());
    assert_eq!(malformed(&records(&handshake_message(&body), &[])).0, Some(Malformed::TlsClientHello));
    // A single byte where the extensions block would start.
    let mut hello = sni_hello();
    hello.extensions = None;
    let mut body = hello.body();
    body.push(0);
    assert_eq!(malformed(&records(&handshake_message(&body), &[])).0, Some(Malformed::TlsClientHello));
    // Bytes after the extensions block: read to the end, the SNI kept, then reported.
    let mut body = sni_hello().body();
    body.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        malformed(&records(&handshake_message(&body), &[])),
        (Some(Malformed::TlsClientHello), b"a.example".to_vec())
    );
}

#[test]
fn malformed_tls_extension() {
    let sni = server_name_body(&[b"first.example"]);
    // An extension that overruns the block, after the SNI: the SNI is kept.
    let mut body =
        HelloBuilder::minimal().with(ext::SERVER_NAME, sni.clone()).with(ext::ALPN, alpn_body(&[b"h2"])).body();
    let alpn_len_at = body.len() - alpn_body(&[b"h2"]).len() - 2;
    body[alpn_len_at..alpn_len_at + 2].copy_from_slice(&[0, 99]);
    assert_eq!(
        malformed(&records(&handshake_message(&body), &[])),
        (Some(Malformed::TlsExtension), b"first.example".to_vec())
    );
    // Three stray bytes at the end of the block (too few for an extension header).
    let mut hello = HelloBuilder::minimal().with(ext::SERVER_NAME, sni.clone());
    let extensions = hello.extensions.take().unwrap();
    let mut block = Vec::new();
    for (extension_type, data) in &extensions {
        block.extend_from_slice(&extension_type.to_be_bytes());
        block.extend_from_slice(&u16_prefixed(data));
    }
    block.extend_from_slice(&[0, 0, 0]);
    hello.extensions = None;
    let mut body = hello.body();
    body.extend_from_slice(&u16_prefixed(&block));
    assert_eq!(
        malformed(&records(&handshake_message(&body), &[])),
        (Some(Malformed::TlsExtension), b"first.example".to_vec())
    );
    // Inconsistent lengths inside extensions are noted; the framing is intact so reading goes on.
    let mut short_list = sni.clone();
    short_list[1] -= 1; // server_name_list shorter than the extension
    let cases: [(u16, Vec<u8>); 5] = [
        (ext::SERVER_NAME, short_list),
        (ext::ALPN, u16_prefixed(&[0, 2, b'h', b'2'])),
        (ext::ALPN, u16_prefixed(&[])),
        (ext::SUPPORTED_VERSIONS, u8_prefixed(&[3, 4, 3])),
        (ext::SERVER_NAME, vec![0]),
    ];
    for (extension_type, body) in cases {
        let data = HelloBuilder::minimal()
            .with(extension_type, body.clone())
            .with(ext::SUPPORTED_VERSIONS, u8_prefixed(&[3, 4]))
            .record();
        let identity = done(&data);
        assert_eq!(identity.malformed, Some(Malformed::TlsExtension), "{extension_type}: {body:?}");
    }
    // The SNI in a list that is shorter than its extension is still read.
    let mut short_list = server_name_body(&[b"still.example"]);
    short_list.push(0);
    let data = HelloBuilder::minimal().with(ext::SERVER_NAME, short_list).record();
    assert_eq!(malformed(&data), (Some(Malformed::TlsExtension), b"still.example".to_vec()));
}

#[test]
fn malformed_tls_duplicate_extension() {
    let data = HelloBuilder::minimal()
        .with(ext::SERVER_NAME, server_name_body(&[b"first.example"]))
        .with(ext::SERVER_NAME, server_name_body(&[b"second.example"]))
        .record();
    assert_eq!(malformed(&data), (Some(Malformed::TlsDuplicateExtension), b"first.example".to_vec()));
    // An unknown type twice; and the second ALPN does not replace the first.
    let data = HelloBuilder::minimal()
        .with(0x1234, vec![1])
        .with(ext::ALPN, alpn_body(&[b"h2"]))
        .with(0x1234, vec![2])
        .with(ext::ALPN, alpn_body(&[b"other"]))
        .record();
    let identity = check_every_split(&data);
    assert_eq!(identity.malformed, Some(Malformed::TlsDuplicateExtension));
    assert_eq!(identity.alpn.first(), b"h2");
}

#[test]
fn malformed_tls_server_name() {
    let two = HelloBuilder::minimal().with(ext::SERVER_NAME, server_name_body(&[b"one.example", b"two.example"]));
    assert_eq!(malformed(&two.record()), (Some(Malformed::TlsServerName), b"one.example".to_vec()));
    let empty = HelloBuilder::minimal().with(ext::SERVER_NAME, server_name_body(&[b""]));
    assert_eq!(malformed(&empty.record()), (Some(Malformed::TlsServerName), Vec::new()));
    // An empty (or all-dots) decoy first does not hide the real name.
    let decoy = HelloBuilder::minimal().with(ext::SERVER_NAME, server_name_body(&[b"..", b"real.example"]));
    assert_eq!(malformed(&decoy.record()), (Some(Malformed::TlsServerName), b"real.example".to_vec()));
    let empty_list = HelloBuilder::minimal().with(ext::SERVER_NAME, u16_prefixed(&[]));
    assert_eq!(malformed(&empty_list.record()).0, Some(Malformed::TlsServerName));
    // Other name types are stepped over.
    let mut list = vec![7];
    list.extend_from_slice(&u16_prefixed(b"opaque"));
    list.push(0);
    list.extend_from_slice(&u16_prefixed(b"host.example"));
    let other_type = HelloBuilder::minimal().with(ext::SERVER_NAME, u16_prefixed(&list));
    assert_eq!(malformed(&other_type.record()), (None, b"host.example".to_vec()));
}

// ---------------------------------------------------------------------------------------------
// Corruption

#[test]
fn every_single_byte_corruption_of_real_hellos_is_handled() {
    for data in
        [rustls_tls13_hello("corrupt.example"), rfc8448_record(), HelloBuilder::chrome_like(b"c.example", 5).record()]
    {
        for at in 0..data.len() {
            for replacement in [0x00, 0xff, data[at] ^ 0x01, data[at].wrapping_add(0x80)] {
                let mut corrupted = data.clone();
                corrupted[at] = replacement;
                let inspection = inspect(&corrupted);
                if let Progress::NeedMore { at_least } = inspection.progress {
                    assert!(at_least > corrupted.len());
                }
                assert!(inspection.identity.names.len() <= 1);
            }
        }
    }
}

#[test]
fn rustls_hello_for_an_ip_address_has_no_sni() {
    let data = rustls_hello(&[&rustls::version::TLS13], &[], "192.0.2.1");
    let identity = done(&data);
    assert!(identity.names.is_empty());
    assert_eq!(identity.malformed, None);
    assert!(names(&identity).is_empty());
}
