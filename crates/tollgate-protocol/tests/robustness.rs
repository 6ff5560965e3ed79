//! Hostile input (S9): no parser panics on any bytes, and every single-byte mutation or truncation
//! of a valid message is either rejected or decodes to something that re-encodes to exactly the
//! mutated bytes — there is no second encoding of any message, so nothing "almost valid" slips
//! through with a different meaning than its bytes say.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use common::*;
use proptest::prelude::*;
use tollgate_core::stream::{FlowEvent, FlowId, InspectionEnd};
use tollgate_inspect::identity::{Alpn, AppProtocol, HttpFacts, NameSource, Names};
use tollgate_inspect::name::{HostName, PatternKind};
use tollgate_protocol::{HEADER_LEN, MAGIC, MessageKind, respond_to_verdicts};

/// Arbitrary bytes, biased towards ones with a plausible header (the kind's own layout version) so
/// the parsers get past it.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        (1u16..=9, 0u32..4, proptest::collection::vec(any::<u8>(), 0..600)).prop_map(|(kind, count, body)| {
            let total = (HEADER_LEN + body.len()) as u32;
            let version = MessageKind::from_u16(kind).map_or(1, MessageKind::version);
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&MAGIC);
            bytes.extend_from_slice(&version.to_le_bytes());
            bytes.extend_from_slice(&kind.to_le_bytes());
            bytes.extend_from_slice(&total.to_le_bytes());
            bytes.extend_from_slice(&count.to_le_bytes());
            bytes.extend_from_slice(&body);
            bytes
        }),
    ]
}

fn check_mutant(kind: Kind, mutant: &[u8]) -> Result<(), TestCaseError> {
    parse_all(mutant);
    if let Ok(again) = reencode(kind, mutant) {
        prop_assert_eq!(again.as_slice(), mutant, "a mutant of {:?} decoded to a different message", kind);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in hostile_bytes()) {
        parse_all(&bytes);
        for kind in KINDS {
            if let Ok(again) = reencode(kind, &bytes) {
                prop_assert_eq!(again, bytes.clone());
            }
        }
        // The in-place verdict exchange, with any claimed lengths.
        let input_len = bytes.len();
        let mut system_buffer = bytes.clone();
        let mut calls = 0usize;
        let _ = respond_to_verdicts(&mut system_buffer, input_len, input_len, |_, _| {
            calls += 1;
            tollgate_protocol::VerdictResult::Accepted
        });
        let _ = respond_to_verdicts(&mut system_buffer, input_len + 8, 0, |_, _| tollgate_protocol::VerdictResult::Accepted);
    }

    #[test]
    fn single_byte_mutations_are_rejected_or_canonical(
        (kind, message) in any_message(),
        index in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut mutant = message.clone();
        let at = index.index(mutant.len());
        mutant[at] = value;
        check_mutant(kind, &mutant)?;
    }

    #[test]
    fn truncations_and_extensions_are_rejected((kind, message) in any_message(), cut in any::<prop::sample::Index>(), extra in proptest::collection::vec(any::<u8>(), 1..24)) {
        let len = cut.index(message.len());
        prop_assert!(reencode(kind, &message[..len]).is_err());
        parse_all(&message[..len]);
        let mut longer = message.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(reencode(kind, &longer).is_err());
        parse_all(&longer);
    }

    /// The in-place exchange applies nothing unless the whole batch is valid.
    #[test]
    fn malformed_verdict_batches_apply_nothing(
        entries in proptest::collection::vec(verdict_entry(), 1..16),
        index in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut request = encode_verdicts(&entries);
        let at = index.index(request.len());
        request[at] = value;
        let valid = tollgate_protocol::decode_verdict_batch(&request).is_ok();
        let mut calls = 0usize;
        let len = request.len();
        let outcome = respond_to_verdicts(&mut request, len, len, |_, _| {
            calls += 1;
            tollgate_protocol::VerdictResult::Accepted
        });
        prop_assert_eq!(outcome.is_ok(), valid);
        prop_assert_eq!(calls, if valid { entries.len() } else { 0 });
    }
}

/// Exhaustive for one sample of each kind: every byte position, every bit flip, plus every value
/// of every byte of the short fixed messages.
#[test]
fn exhaustive_bit_flips() {
    let conns = vec![
        OwnedConn {
            id: 0x1234_5678_0000_0001,
            layer: tollgate_core::PendLayer::AuthConnect,
            protocol: 6,
            direction: tollgate_core::Direction::Outbound,
            local: "10.0.0.2".parse().unwrap(),
            local_port: 50000,
            remote: "93.184.216.34".parse().unwrap(),
            remote_port: 443,
            process_id: 4242,
            pended_at: 123_456_789,
            path: "\\device\\harddiskvolume3\\app.exe".encode_utf16().collect(),
        },
        OwnedConn {
            id: 2,
            layer: tollgate_core::PendLayer::ResourceAssignment,
            protocol: 17,
            direction: tollgate_core::Direction::Inbound,
            local: "fe80::1".parse().unwrap(),
            local_port: 53,
            remote: "::".parse().unwrap(),
            remote_port: 0,
            process_id: 8,
            pended_at: 5,
            path: vec![0xD800, 0x41],
        },
    ];
    let entries = [
        tollgate_protocol::VerdictEntry {
            id: tollgate_core::PendId::from_raw(9),
            verdict: tollgate_core::Verdict::Permit,
        },
        tollgate_protocol::VerdictEntry {
            id: tollgate_core::PendId::from_raw(u64::MAX),
            verdict: tollgate_core::Verdict::Block,
        },
    ];
    let outcomes = [tollgate_protocol::VerdictOutcome {
        id: tollgate_core::PendId::from_raw(3),
        result: tollgate_protocol::VerdictResult::LateVerdict,
    }];
    let samples: Vec<(Kind, Vec<u8>)> = vec![
        (
            Kind::HelloRequest,
            with(64, |b| tollgate_protocol::encode_hello_request(&tollgate_protocol::HelloRequest::CURRENT, b)),
        ),
        (
            Kind::HelloReply,
            with(64, |b| {
                tollgate_protocol::encode_hello_reply(
                    &tollgate_protocol::HelloReply::answer(
                        &tollgate_protocol::HelloRequest::CURRENT,
                        tollgate_protocol::DriverLimits::PROTOCOL,
                    ),
                    b,
                )
            }),
        ),
        (Kind::Pended, encode_pended(&conns)),
        (Kind::Pended, encode_pended(&[])),
        (Kind::Verdicts, encode_verdicts(&entries)),
        (Kind::Results, encode_results(&outcomes)),
        (
            Kind::Stats,
            with(512, |b| {
                tollgate_protocol::encode_stats(
                    &tollgate_core::StatsSnapshot::default(),
                    &tollgate_core::stream::StreamStats::default(),
                    &tollgate_protocol::DeviceStats::default(),
                    b,
                )
            }),
        ),
        (Kind::Config, with(64, |b| tollgate_protocol::encode_config(&tollgate_core::RuntimeConfig::default(), b))),
        (Kind::StreamEvents, encode_events(&sample_events())),
        (Kind::StreamEvents, encode_events(&[])),
        (Kind::Blocklist, encode_patterns(&sample_patterns())),
        (Kind::Blocklist, encode_patterns(&[])),
    ];
    for (kind, message) in &samples {
        assert_eq!(&reencode(*kind, message).unwrap(), message);
        for at in 0..message.len() {
            let values: Vec<u8> = if message.len() <= 64 {
                (0..=255).collect()
            } else {
                (0..8).map(|bit| message[at] ^ (1 << bit)).collect()
            };
            for value in values {
                let mut mutant = message.clone();
                mutant[at] = value;
                check_mutant(*kind, &mutant).unwrap();
            }
        }
        for len in 0..message.len() {
            assert!(reencode(*kind, &message[..len]).is_err(), "{kind:?} truncated to {len} accepted");
        }
    }
}

/// Two events between them covering both families, 0 and 2 names, a truncated name, HTTP facts
/// and every optional part.
fn sample_events() -> Vec<FlowEvent> {
    let plain = sample_event();
    let mut long = vec![b'x'; 300];
    long[290..].copy_from_slice(b".b.example");
    let mut names = Names::default();
    names.push(NameSource::HttpAuthority, HostName::from_wire(&long));
    names.push(NameSource::HttpHost, HostName::from_wire(b"A.b.Example"));
    let mut http = sample_event();
    http.flow = FlowId::from_raw(9);
    http.endpoints.local_address = "fe80::1".parse().unwrap();
    http.endpoints.remote_address = "2001:db8::2".parse().unwrap();
    http.identity.protocol = AppProtocol::Http;
    http.identity.names = names;
    http.identity.alpn = Alpn::default();
    http.identity.http = HttpFacts { method: *b"CONNECT\0\0\0\0\0\0\0\0", method_len: 7, minor_version: 1 };
    http.identity.malformed = Some(tollgate_inspect::identity::Malformed::HttpHeader);
    http.end = InspectionEnd::Bounded;
    http.counters.first_data_at = None;
    let mut bare = sample_event();
    bare.identity = tollgate_inspect::identity::Identity::default();
    vec![plain, http, bare]
}

fn sample_patterns() -> Vec<(PatternKind, String)> {
    [(PatternKind::Below, "ads.example"), (PatternKind::Exact, "a.test"), (PatternKind::Exact, "b-1.test")]
        .into_iter()
        .map(|(k, n)| (k, n.to_string()))
        .collect()
}

/// The new kinds, exhaustively: every value of every byte of a stream-event batch (both families,
/// 0 and 2 names, a truncated one) and of a blocklist is rejected or re-encodes to itself; every
/// truncation is rejected.
#[test]
fn exhaustive_byte_values_stream_events_and_blocklist() {
    let samples =
        [(Kind::StreamEvents, encode_events(&sample_events())), (Kind::Blocklist, encode_patterns(&sample_patterns()))];
    for (kind, message) in &samples {
        assert_eq!(&reencode(*kind, message).unwrap(), message);
        let mut accepted = 0usize;
        for at in 0..message.len() {
            for value in 0..=255u8 {
                let mut mutant = message.clone();
                mutant[at] = value;
                parse_all(&mutant);
                if let Ok(again) = reencode(*kind, &mutant) {
                    assert_eq!(again, mutant, "a mutant of {kind:?} at {at} = {value} decoded to a different message");
                    accepted += usize::from(value != message[at]);
                }
            }
        }
        // Some mutants are other valid messages (a different counter, a different name byte);
        // the point is that each of them re-encoded to itself.
        assert!(accepted > 0);
        for len in 0..message.len() {
            assert!(reencode(*kind, &message[..len]).is_err(), "{kind:?} truncated to {len} accepted");
        }
    }
}
