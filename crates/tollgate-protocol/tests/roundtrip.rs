//! Every message encodes and decodes back to what was encoded, and the writers never write a
//! partial record.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use std::net::IpAddr;

use common::*;
use proptest::prelude::*;
use tollgate_core::{PendId, Verdict};
use tollgate_protocol::{
    BatchWriter, FLAG_PATH_TRUNCATED, HelloReply, HelloRequest, MAX_APP_PATH_UNITS, MAX_PENDED_RECORD_LEN,
    PENDED_FIXED_LEN, ProtocolError, VerdictResult, VerdictWriter, decode_config, decode_hello_reply,
    decode_hello_request, decode_pended_batch, decode_stats, decode_verdict_batch, decode_verdict_results,
    encode_config, encode_hello_reply, encode_hello_request, encode_stats, respond_to_verdicts,
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
    fn stats_round_trip(s in stats()) {
        let bytes = with(256, |b| encode_stats(&s, b));
        prop_assert_eq!(bytes.len(), tollgate_protocol::STATS_MESSAGE_LEN);
        prop_assert_eq!(decode_stats(&bytes).unwrap(), s);
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
    assert_eq!(reply.capabilities, 0);
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
