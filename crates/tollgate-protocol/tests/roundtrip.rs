//! Every message encodes and decodes back to what was encoded, and the writers never write a
//! partial record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use std::net::IpAddr;

use common::*;
use proptest::prelude::*;
use tollgate_core::stream::FlowEvent;
use tollgate_core::{PendId, Verdict};
use tollgate_inspect::identity::{HttpFacts, NameSource, Names};
use tollgate_inspect::name::{HostName, PatternKind};
use tollgate_protocol::{
    BatchWriter, CAP_ALL, FLAG_PATH_TRUNCATED, HelloReply, HelloRequest, MAX_APP_PATH_UNITS, MAX_PENDED_RECORD_LEN,
    MAX_STREAM_EVENT_RECORD_LEN, PENDED_FIXED_LEN, ProtocolError, STREAM_EVENT_FIXED_LEN, StreamEventWriter,
    VerdictResult, VerdictWriter, blocklist_len, decode_blocklist, decode_config, decode_hello_reply,
    decode_hello_request, decode_pended_batch, decode_stats, decode_stream_events, decode_verdict_batch,
    decode_verdict_results, encode_blocklist, encode_config, encode_hello_reply, encode_hello_request, encode_stats,
    respond_to_verdicts, stream_event_len,
};

fn check_record(record: &tollgate_protocol::PendedRecord<'_>, c: &OwnedConn) {
    assert_eq!(record.id, PendId::from_raw(c.id));
    assert_eq!(record.layer, c.layer);
    assert_eq!(record.protocol, c.protocol);
    assert_eq!(record.direction, c.direction);
    assert_eq!(record.local_address, c.local);
    assert_eq!(record.remote_address, c.remote);
    assert_eq!(record.local_port, c.local_port);
    assert_eq!(record.remote_port, c.remote_port);
    assert_eq!(record.process_id, c.process_id);
    assert_eq!(record.pended_at.0, c.pended_at);
    assert!(!record.path_truncated);
    assert!(record.app_path.eq_units(&c.path));
    let mut buf = vec![0u16; c.path.len()];
    let back = record.to_pended_connection(&mut buf).unwrap();
    assert_eq!(back.facts.app_path, &c.path[..]);
    assert_eq!(back.id, PendId::from_raw(c.id));
    assert_eq!(record.app_path.to_string_lossy(), String::from_utf16_lossy(&c.path));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pended_batch_round_trips(conns in proptest::collection::vec(conn(), 0..8)) {
        let bytes = encode_pended(&conns);
        prop_assert_eq!(bytes.len() % 8, 0);
        let batch = decode_pended_batch(&bytes).unwrap();
        prop_assert_eq!(batch.len(), conns.len());
        let records: Vec<_> = batch.iter().collect();
        prop_assert_eq!(records.len(), conns.len());
        for (record, c) in records.iter().zip(&conns) {
            check_record(record, c);
            prop_assert_eq!(record.encoded_len(), (PENDED_FIXED_LEN + 2 * c.path.len()).div_ceil(8) * 8);
        }
        prop_assert_eq!(reencode(Kind::Pended, &bytes).unwrap(), bytes);
    }

    /// Whatever room is left, a push either appends a whole record or changes nothing: the bytes
    /// after the message are never touched, and the message holds exactly the accepted prefix.
    #[test]
    fn batch_writer_never_writes_partially(
        conns in proptest::collection::vec(conn_with_path(300), 1..10),
        size in 0usize..3000,
        max_records in 0u32..12,
    ) {
        let mut buf = vec![0xA5u8; size];
        let Ok(mut writer) = BatchWriter::with_max_records(&mut buf, max_records) else {
            prop_assert!(size < 16);
            return Ok(());
        };
        let mut accepted = Vec::new();
        for c in &conns {
            let before = writer.message_len();
            match writer.push(&c.as_pended()) {
                Ok(()) => accepted.push(c),
                Err(ProtocolError::BufferTooSmall { .. }) => prop_assert_eq!(writer.message_len(), before),
                Err(ProtocolError::TooManyRecords { .. }) => prop_assert_eq!(accepted.len(), max_records as usize),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        let len = writer.finish();
        prop_assert!(buf[len..].iter().all(|&b| b == 0xA5));
        // A refused record left no trace: the message holds exactly the accepted ones, in order.
        let batch = decode_pended_batch(&buf[..len]).unwrap();
        prop_assert_eq!(batch.len(), accepted.len());
        for (record, c) in batch.iter().zip(accepted) {
            check_record(&record, c);
        }
    }

    #[test]
    fn long_paths_keep_their_end(c in conn_with_path(3000)) {
        let bytes = encode_pended(std::slice::from_ref(&c));
        let batch = decode_pended_batch(&bytes).unwrap();
        let record = batch.iter().next().unwrap();
        let max = usize::from(MAX_APP_PATH_UNITS);
        if c.path.len() > max {
            prop_assert!(record.path_truncated);
            prop_assert!(record.app_path.eq_units(&c.path[c.path.len() - max..]));
            prop_assert_eq!(bytes.len(), 16 + MAX_PENDED_RECORD_LEN);
        } else {
            prop_assert!(!record.path_truncated);
            prop_assert!(record.app_path.eq_units(&c.path));
        }
        prop_assert_eq!(reencode(Kind::Pended, &bytes).unwrap(), bytes);
    }

    #[test]
    fn verdict_batch_round_trips(entries in proptest::collection::vec(verdict_entry(), 0..64)) {
        let bytes = encode_verdicts(&entries);
        prop_assert_eq!(bytes.len(), 16 + 16 * entries.len());
        let batch = decode_verdict_batch(&bytes).unwrap();
        prop_assert_eq!(batch.iter().collect::<Vec<_>>(), entries);
    }

    #[test]
    fn verdict_results_round_trip(outcomes in proptest::collection::vec(outcome(), 0..64)) {
        let bytes = encode_results(&outcomes);
        let results = decode_verdict_results(&bytes).unwrap();
        prop_assert_eq!(results.iter().collect::<Vec<_>>(), outcomes);
    }

    /// The in-place exchange: every verdict is applied once, in order, and its result lands where
    /// it was; the reply decodes to exactly those results.
    #[test]
    fn verdicts_answered_in_place(
        entries in proptest::collection::vec(verdict_entry(), 0..64),
        codes in proptest::collection::vec(verdict_result(), 64),
        slack in 0usize..64,
    ) {
        let request = encode_verdicts(&entries);
        let mut system_buffer = request.clone();
        system_buffer.resize(request.len() + slack, 0xEE);
        let mut applied = Vec::new();
        let len = respond_to_verdicts(&mut system_buffer, request.len(), request.len() + slack, |id, verdict| {
            applied.push((id, verdict));
            codes[applied.len() - 1]
        })
        .unwrap();
        prop_assert_eq!(len, request.len());
        prop_assert_eq!(applied, entries.iter().map(|e| (e.id, e.verdict)).collect::<Vec<_>>());
        let results = decode_verdict_results(&system_buffer[..len]).unwrap();
        let got: Vec<_> = results.iter().collect();
        prop_assert_eq!(got.len(), entries.len());
        for ((outcome, entry), code) in got.iter().zip(&entries).zip(&codes) {
            prop_assert_eq!(outcome.id, entry.id);
            prop_assert_eq!(outcome.result, *code);
        }
        prop_assert!(system_buffer[len..].iter().all(|&b| b == 0xEE));
    }

    #[test]
    fn stats_round_trip(s in stats(), st in stream_stats(), rejected in any::<u64>()) {
        let device = tollgate_protocol::DeviceStats { rejected_ioctls: rejected };
        let bytes = with(512, |b| encode_stats(&s, &st, &device, b));
        prop_assert_eq!(bytes.len(), tollgate_protocol::STATS_MESSAGE_LEN);
        prop_assert_eq!(decode_stats(&bytes).unwrap(), (s, st, device));
    }

    /// Every field of every event comes back (IPv4 and IPv6, 0 to 2 names, truncated names,
    /// every enum value), records are 8-aligned and sized as documented, and the decoded events
    /// re-encode to the same bytes.
    #[test]
    fn stream_events_round_trip(events in proptest::collection::vec(flow_event(), 0..6)) {
        let bytes = encode_events(&events);
        prop_assert_eq!(bytes.len() % 8, 0);
        let expected_len: usize = 16 + events.iter().map(|e| {
            let names: usize = e.identity.names.iter().map(|(_, n)| 4 + n.as_bytes().len()).sum();
            (STREAM_EVENT_FIXED_LEN + names).div_ceil(8) * 8
        }).sum::<usize>();
        prop_assert_eq!(bytes.len(), expected_len);
        for e in &events {
            prop_assert!(stream_event_len(e) <= MAX_STREAM_EVENT_RECORD_LEN);
        }
        let batch = decode_stream_events(&bytes).unwrap();
        prop_assert_eq!(batch.len(), events.len());
        let decoded: Vec<FlowEvent> = batch.iter().collect();
        prop_assert_eq!(&decoded, &events);
        prop_assert_eq!(reencode(Kind::StreamEvents, &bytes).unwrap(), bytes);
    }

    /// Whatever room is left, a push appends a whole event or nothing.
    #[test]
    fn stream_event_writer_never_writes_partially(
        events in proptest::collection::vec(flow_event(), 1..8),
        size in 0usize..2500,
        max_records in 0u32..10,
    ) {
        let mut buf = vec![0xA5u8; size];
        let Ok(mut writer) = StreamEventWriter::with_max_records(&mut buf, max_records) else {
            prop_assert!(size < 16);
            return Ok(());
        };
        let mut accepted = Vec::new();
        for e in &events {
            let before = writer.message_len();
            match writer.push(e) {
                Ok(()) => accepted.push(*e),
                Err(ProtocolError::BufferTooSmall { .. }) => prop_assert_eq!(writer.message_len(), before),
                Err(ProtocolError::TooManyRecords { .. }) => prop_assert_eq!(accepted.len(), max_records as usize),
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(writer.is_empty(), accepted.is_empty());
        let len = writer.finish();
        prop_assert!(buf[len..].iter().all(|&b| b == 0xA5));
        let decoded: Vec<FlowEvent> = decode_stream_events(&buf[..len]).unwrap().iter().collect();
        prop_assert_eq!(decoded, accepted);
    }

    /// Any pattern set: the convenience sorts and deduplicates, the driver's view yields exactly the
    /// sorted unique patterns (twice, without allocating), `blocklist_len` sizes the message, and
    /// the allocation-free encoder makes the same bytes from the sorted list.
    #[test]
    fn blocklist_round_trips(list in pattern_list(40)) {
        let bytes = encode_patterns(&list);
        let expected = sorted_unique(&list);
        let as_slices: Vec<(PatternKind, &[u8])> = expected.iter().map(|(k, n)| (*k, n.as_bytes())).collect();
        prop_assert_eq!(bytes.len(), blocklist_len(as_slices.iter().copied()));
        prop_assert_eq!(bytes.len() % 8, 0);
        let decoded = decode_blocklist(&bytes).unwrap();
        prop_assert_eq!(decoded.len(), expected.len());
        prop_assert_eq!(decoded.is_empty(), expected.is_empty());
        prop_assert_eq!(decoded.iter().collect::<Vec<_>>(), as_slices.clone());
        prop_assert!(decoded.iter().eq(decoded.iter()));
        let mut out = vec![0u8; bytes.len()];
        let len = encode_blocklist(as_slices.iter().copied(), &mut out).unwrap();
        prop_assert_eq!(&out[..len], &bytes[..]);
        prop_assert_eq!(reencode(Kind::Blocklist, &bytes).unwrap(), bytes);
    }

    /// The allocation-free encoder refuses any list that is not strictly increasing, naming the
    /// first pattern out of place.
    #[test]
    fn blocklist_encoder_requires_wire_order(list in pattern_list(12), swap in any::<(prop::sample::Index, prop::sample::Index)>()) {
        let mut patterns = sorted_unique(&list);
        prop_assume!(patterns.len() >= 2);
        let (a, b) = (swap.0.index(patterns.len()), swap.1.index(patterns.len()));
        prop_assume!(a != b);
        patterns.swap(a, b);
        let first_bad = a.min(b) + 1;
        let mut out = vec![0u8; 16 + 256 * patterns.len()];
        let result = encode_blocklist(patterns.iter().map(|(k, n)| (*k, n.as_bytes())), &mut out);
        prop_assert!(
            matches!(result, Err(ProtocolError::UnsortedPatterns { index }) if index as usize == first_bad),
            "{:?}", result
        );
    }

    #[test]
    fn config_round_trips(c in valid_config()) {
        let bytes = with(64, |b| encode_config(&c, b));
        prop_assert_eq!(bytes.len(), tollgate_protocol::CONFIG_MESSAGE_LEN);
        prop_assert_eq!(decode_config(&bytes).unwrap(), c);
    }

    #[test]
    fn hello_round_trips(request in hello_request(), reply in hello_reply()) {
        let bytes = with(64, |b| encode_hello_request(&request, b));
        prop_assert_eq!(decode_hello_request(&bytes).unwrap(), request);
        let bytes = with(64, |b| encode_hello_reply(&reply, b));
        prop_assert_eq!(decode_hello_reply(&bytes).unwrap(), reply);
    }

    /// Negotiation picks the highest common version, and the driver's answer always encodes.
    #[test]
    fn negotiation(request in hello_request(), dmin in 1u16..10, span in 0u16..10) {
        let dmax = dmin + span;
        let chosen = request.negotiate(dmin, dmax);
        let common: Vec<u16> = (dmin..=dmax).filter(|v| (request.min_version..=request.max_version).contains(v)).collect();
        prop_assert_eq!(chosen, common.last().copied());
        let reply = HelloReply::answer(&request, tollgate_protocol::DriverLimits::PROTOCOL);
        let bytes = with(64, |b| encode_hello_reply(&reply, b));
        prop_assert_eq!(decode_hello_reply(&bytes).unwrap(), reply);
    }
}

#[test]
fn current_request_negotiates_current_version() {
    let reply = HelloReply::answer(&HelloRequest::CURRENT, tollgate_protocol::DriverLimits::PROTOCOL);
    assert_eq!(reply.negotiated(), Ok(tollgate_protocol::PROTOCOL_VERSION));
    assert_eq!(tollgate_protocol::PROTOCOL_VERSION, 2);
    assert_eq!(reply.capabilities, CAP_ALL);
    assert_eq!(CAP_ALL, tollgate_protocol::CAP_STREAM_EVENTS | tollgate_protocol::CAP_DOMAIN_BLOCKLIST);
}

#[test]
fn mixed_families_are_sent_as_mapped_ipv6() {
    let mut c = OwnedConn {
        id: 7,
        layer: tollgate_core::PendLayer::AuthConnect,
        protocol: 6,
        direction: tollgate_core::Direction::Outbound,
        local: "10.1.2.3".parse().unwrap(),
        local_port: 5000,
        remote: "2001:db8::1".parse().unwrap(),
        remote_port: 443,
        process_id: 4,
        pended_at: 99,
        path: "\\device\\x.exe".encode_utf16().collect(),
    };
    let bytes = encode_pended(std::slice::from_ref(&c));
    assert_eq!(bytes[16 + 11], 6);
    let record = decode_pended_batch(&bytes).unwrap().iter().next().unwrap();
    assert_eq!(record.local_address, IpAddr::V6("::ffff:10.1.2.3".parse().unwrap()));
    assert_eq!(record.remote_address, c.remote);
    // And a v4 pair stays family 4, in network byte order in the first four bytes.
    c.remote = "192.0.2.1".parse().unwrap();
    let bytes = encode_pended(std::slice::from_ref(&c));
    assert_eq!(bytes[16 + 11], 4);
    assert_eq!(&bytes[16 + 12..16 + 28], &[10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&bytes[16 + 28..16 + 32], &[192, 0, 2, 1]);
    assert_eq!(&bytes[16 + 44..16 + 48], &[0x88, 0x13, 0xBB, 0x01]);
}

/// A golden message: the byte layout documented in the module docs, spelled out.
#[test]
fn golden_verdict_batch() {
    let mut buf = [0xFFu8; 48];
    let mut writer = VerdictWriter::new(&mut buf, 8).unwrap();
    writer
        .push(tollgate_protocol::VerdictEntry { id: PendId::from_raw(0x0102_0304_0506_0708), verdict: Verdict::Permit })
        .unwrap();
    writer.push(tollgate_protocol::VerdictEntry { id: PendId::from_raw(1), verdict: Verdict::Block }).unwrap();
    assert_eq!(writer.finish(), 48);
    #[rustfmt::skip]
    let expected: [u8; 48] = [
        b'T', b'L', b'G', b'T', 1, 0, 4, 0, 48, 0, 0, 0, 2, 0, 0, 0,
        8, 7, 6, 5, 4, 3, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0,
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(buf, expected);
}

#[test]
fn verdict_result_mirrors_core_errors() {
    use tollgate_core::VerdictError;
    for (result, code) in [
        (Ok(()), 0u8),
        (Err(VerdictError::UnknownId), 1),
        (Err(VerdictError::LateVerdict), 2),
        (Err(VerdictError::BeingResolved), 3),
        (Err(VerdictError::Unloading), 4),
    ] {
        let wire = VerdictResult::from(result);
        assert_eq!(wire.to_u8(), code);
        assert_eq!(VerdictResult::from_u8(code), Ok(wire));
        assert_eq!(wire.into_result(), result);
    }
}

#[test]
fn record_flag_is_bit_zero() {
    assert_eq!(FLAG_PATH_TRUNCATED, 1);
}

/// Each enum value travels as its documented code (`codes_round_trip` in the crate checks the
/// inverse), spelled out on one record.
#[test]
fn stream_event_codes_are_documented() {
    let mut e = sample_event();
    e.kind = tollgate_core::stream::FlowEventKind::Closed;
    e.end = tollgate_core::stream::InspectionEnd::Overlapped;
    e.verdict = tollgate_core::stream::StreamVerdict::Dropped;
    e.identity.protocol = tollgate_inspect::identity::AppProtocol::Other;
    e.endpoints.direction = tollgate_core::Direction::Inbound;
    e.identity.tls.ech = tollgate_inspect::identity::Ech::Unknown;
    e.identity.malformed = Some(tollgate_inspect::identity::Malformed::HttpConflictingHost);
    e.identity.alpn.truncated = true;
    let bytes = encode_events(&[e]);
    let r = &bytes[16..];
    assert_eq!(&r[0..8], &0x0000_0002_0000_0007_u64.to_le_bytes());
    assert_eq!(&r[8..16], &[1, 5, 1, 3, 6, 1, 4, 0x0F]);
    assert_eq!(&r[16..20], &[10, 0, 0, 2]);
    assert_eq!(&r[20..32], &[0; 12]);
    assert_eq!(&r[32..36], &[93, 184, 216, 34]);
    assert_eq!(&r[48..56], &[0x50, 0xC3, 0xBB, 0x01, 0x03, 0x03, 3, 9]);
    assert_eq!(&r[56..64], &4242_u64.to_le_bytes());
    assert_eq!(&r[64..72], &1000_u64.to_le_bytes());
    assert_eq!(&r[72..80], &900_u64.to_le_bytes());
    assert_eq!(&r[80..88], &950_u64.to_le_bytes());
    assert_eq!(&r[88..96], &517_u64.to_le_bytes());
    assert_eq!(&r[104..112], &1_u64.to_le_bytes());
    assert_eq!(&r[120..136], &[0; 16]); // no HTTP method
    assert_eq!(&r[136..144], &[0, 2, 2, 1, 0, 0, 0, 0]); // minor, ALPN len, offered, 1 name, reserved
    assert_eq!(&r[144..146], b"h2");
    assert_eq!(&r[146..176], &[0; 30]);
    assert_eq!(&r[176..180], &[1, 0, 15, 0]); // SNI, not truncated, 15 bytes
    assert_eq!(&r[180..195], b"www.example.com");
    assert_eq!(r.len(), 200);
    assert_eq!(&r[195..], &[0; 5]);
    assert_eq!(decode_stream_events(&bytes).unwrap().iter().next(), Some(e));
}

/// A golden blocklist: the byte layout documented in the module docs, spelled out.
#[test]
fn golden_blocklist() {
    let patterns: [(PatternKind, &[u8]); 3] =
        [(PatternKind::Exact, b"a.test"), (PatternKind::Exact, b"b.test"), (PatternKind::Below, b"ads.example")];
    let mut buf = [0xFFu8; 48];
    assert_eq!(blocklist_len(patterns), 48);
    assert_eq!(encode_blocklist(patterns, &mut buf), Ok(48));
    #[rustfmt::skip]
    let expected: [u8; 48] = [
        b'T', b'L', b'G', b'T', 2, 0, 9, 0, 48, 0, 0, 0, 3, 0, 0, 0,
        0, 6, b'a', b'.', b't', b'e', b's', b't',
        0, 6, b'b', b'.', b't', b'e', b's', b't',
        1, 11, b'a', b'd', b's', b'.', b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0, 0, 0,
    ];
    assert_eq!(buf, expected);
    let list = decode_blocklist(&buf).unwrap();
    assert!(list.iter().eq(patterns));
    // Count 0 is valid: it clears the list.
    let empty = with(16, |b| encode_blocklist([], b));
    assert_eq!(empty.len(), 16);
    assert!(decode_blocklist(&empty).unwrap().is_empty());
}

/// The driver keeps names over 255 bytes as their tail; the record says so, and the decoded name is
/// the same truncated `HostName`.
#[test]
fn truncated_names_round_trip() {
    let mut long = vec![b'a'; 400];
    long[380..].copy_from_slice(b".evil.example.test..");
    let name = HostName::from_wire(&long);
    assert!(name.is_truncated());
    let mut e = sample_event();
    let mut names = Names::default();
    names.push(NameSource::HttpAuthority, name);
    names.push(NameSource::HttpHost, HostName::from_wire(b"short.test"));
    e.identity.names = names;
    e.identity.http = HttpFacts { method: *b"CONNECT\0\0\0\0\0\0\0\0", method_len: 7, minor_version: 1 };
    let bytes = encode_events(&[e]);
    assert_eq!(bytes.len(), 16 + (176 + 4 + 255 + 4 + 10usize).div_ceil(8) * 8);
    assert_eq!(&bytes[16 + 176..16 + 180], &[3, 1, 255, 0]);
    let decoded = decode_stream_events(&bytes).unwrap().iter().next().unwrap();
    assert_eq!(decoded, e);
    let (_, kept) = decoded.identity.names.primary().unwrap();
    assert!(kept.is_truncated() && kept.is_below(b"example.test"));
}

/// What the protocol sends in its one form only: a method length over 15 is cut to 15, method
/// bytes after the length are zeroed, mixed address families become IPv6.
#[test]
fn non_canonical_events_are_sent_in_the_one_form() {
    let mut e = sample_event();
    e.identity.http = HttpFacts { method: *b"GETXXXXXXXXXXXX", method_len: 3, minor_version: 0 };
    let decoded = decode_stream_events(&encode_events(&[e])).unwrap().iter().next().unwrap();
    assert_eq!(&decoded.identity.http.method, b"GET\0\0\0\0\0\0\0\0\0\0\0\0");
    e.identity.http.method_len = 200;
    let decoded = decode_stream_events(&encode_events(&[e])).unwrap().iter().next().unwrap();
    assert_eq!(decoded.identity.http.method_len, 15);
    e.endpoints.remote_address = "2001:db8::1".parse().unwrap();
    let decoded = decode_stream_events(&encode_events(&[e])).unwrap().iter().next().unwrap();
    assert_eq!(decoded.endpoints.local_address, "::ffff:10.0.0.2".parse::<IpAddr>().unwrap());
}
