//! One test per [`ProtocolError`] variant: a concrete malformed buffer that produces it, and the
//! NTSTATUS the driver would complete the request with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use common::*;
use tollgate_core::stream::StreamStats;
use tollgate_core::{PendId, RuntimeConfig, StatsSnapshot, Ticks, Verdict};
use tollgate_inspect::name::{NameError, PatternKind};
use tollgate_protocol::error::*;
use tollgate_protocol::ioctl::{FILE_READ_DATA, FILE_WRITE_DATA, METHOD_BUFFERED};
use tollgate_protocol::*;

fn sample_conn(path_units: usize) -> OwnedConn {
    OwnedConn {
        id: 1,
        layer: tollgate_core::PendLayer::AuthConnect,
        protocol: 6,
        direction: tollgate_core::Direction::Outbound,
        local: "10.0.0.1".parse().unwrap(),
        local_port: 1,
        remote: "10.0.0.2".parse().unwrap(),
        remote_port: 2,
        process_id: 3,
        pended_at: 4,
        path: vec![0x61; path_units],
    }
}

fn stats_msg() -> Vec<u8> {
    with(264, |b| encode_stats(&StatsSnapshot::default(), &StreamStats::default(), &DeviceStats::default(), b))
}

/// A one-event batch (IPv4, one 15-byte SNI `www.example.com`, ALPN `h2`) whose record starts at
/// offset 16; its name header is at `R + 176`, its bytes at `R + 180..R + 195`, padding to `R + 200`.
fn events_msg() -> Vec<u8> {
    encode_events(&[sample_event()])
}

/// A blocklist built from raw (kind, name) records, with no checks, padded as the layout says.
fn raw_blocklist(records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&MAGIC);
    m.extend_from_slice(&2u16.to_le_bytes());
    m.extend_from_slice(&9u16.to_le_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (kind, name) in records {
        m.push(*kind);
        m.push(name.len() as u8);
        m.extend_from_slice(name);
        while m.len() % 8 != 0 {
            m.push(0);
        }
    }
    let total = m.len() as u32;
    put_u32(&mut m, 8, total);
    m
}

fn blocklist_msg() -> Vec<u8> {
    raw_blocklist(&[(0, b"a.test"), (0, b"b-1.test"), (1, b"ads.example")])
}

fn config_msg() -> Vec<u8> {
    with(64, |b| encode_config(&RuntimeConfig::default(), b))
}

/// A one-record pended batch whose record starts at offset 16.
fn pended_msg(path_units: usize) -> Vec<u8> {
    encode_pended(&[sample_conn(path_units)])
}

const R: usize = HEADER_LEN; // offset of the first record

#[test]
fn too_short() {
    let e = decode_stats(&[0u8; 10]).unwrap_err();
    assert_eq!(e, ProtocolError::TooShort { needed: 16, actual: 10 });
    assert_eq!(e.ntstatus(), STATUS_INVALID_BUFFER_SIZE);
    // A batch that announces two records but holds one (its total length is consistent).
    let mut m = pended_msg(3);
    put_u32(&mut m, 12, 2);
    assert!(matches!(decode_pended_batch(&m), Err(ProtocolError::TooShort { .. })));
    let mut m = events_msg();
    put_u32(&mut m, 12, 2);
    assert!(matches!(decode_stream_events(&m), Err(ProtocolError::TooShort { .. })));
    let mut m = blocklist_msg();
    put_u32(&mut m, 12, 4);
    assert!(matches!(decode_blocklist(&m), Err(ProtocolError::TooShort { .. })));
    // The in-place exchange told that the input is longer than the buffer.
    let mut buf = encode_verdicts(&[]);
    assert_eq!(
        respond_to_verdicts(&mut buf, 17, 17, |_, _| VerdictResult::Accepted),
        Err(ProtocolError::TooShort { needed: 17, actual: 16 })
    );
}

#[test]
fn buffer_too_small() {
    let mut small = [0u8; 100];
    let e = encode_stats(&StatsSnapshot::default(), &StreamStats::default(), &DeviceStats::default(), &mut small)
        .unwrap_err();
    assert_eq!(e, ProtocolError::BufferTooSmall { needed: STATS_MESSAGE_LEN, available: 100 });
    assert_eq!(e.ntstatus(), STATUS_BUFFER_TOO_SMALL);
    assert!(small.iter().all(|&b| b == 0), "nothing written on failure");
    assert!(matches!(BatchWriter::new(&mut [0u8; 8]), Err(ProtocolError::BufferTooSmall { .. })));
    let mut buf = [0u8; 16 + 72];
    let mut w = BatchWriter::new(&mut buf).unwrap();
    let c = sample_conn(1);
    assert!(matches!(w.push(&c.as_pended()), Err(ProtocolError::BufferTooSmall { needed: 96, available: 88 })));
    assert!(matches!(
        encode_config(&RuntimeConfig::default(), &mut [0u8; 31]),
        Err(ProtocolError::BufferTooSmall { .. })
    ));
    assert!(matches!(
        Ioctl::GetPended.check_lengths(0, MIN_GET_PENDED_OUTPUT - 1),
        Err(ProtocolError::BufferTooSmall { .. })
    ));
    assert!(matches!(Ioctl::SubmitVerdicts.check_lengths(48, 47), Err(ProtocolError::BufferTooSmall { .. })));
    assert_eq!(
        Ioctl::GetStreamEvents.check_lengths(0, MIN_GET_STREAM_EVENTS_OUTPUT - 1),
        Err(ProtocolError::BufferTooSmall { needed: MIN_GET_STREAM_EVENTS_OUTPUT, available: 711 })
    );
    // A stream event that does not fit is refused whole; the writer stays usable.
    let mut buf = [0u8; 16 + 199];
    let mut w = StreamEventWriter::new(&mut buf).unwrap();
    assert_eq!(w.push(&sample_event()), Err(ProtocolError::BufferTooSmall { needed: 216, available: 215 }));
    assert!(w.is_empty());
    assert_eq!(w.finish(), 16);
    // A blocklist buffer sized one byte short.
    let patterns: [(PatternKind, &[u8]); 1] = [(PatternKind::Exact, b"a.test")];
    assert_eq!(blocklist_len(patterns), 24);
    assert!(matches!(encode_blocklist(patterns, &mut [0u8; 23]), Err(ProtocolError::BufferTooSmall { .. })));
    // In place: an output buffer shorter than the input is refused before any verdict is applied.
    let request = encode_verdicts(&[VerdictEntry { id: PendId::from_raw(1), verdict: Verdict::Permit }]);
    let mut sys = request.clone();
    let mut calls = 0;
    let e = respond_to_verdicts(&mut sys, request.len(), 16, |_, _| {
        calls += 1;
        VerdictResult::Accepted
    });
    assert_eq!(e, Err(ProtocolError::BufferTooSmall { needed: 32, available: 16 }));
    assert_eq!(calls, 0);
}

#[test]
fn unexpected_input() {
    let e = Ioctl::GetStats.check_lengths(4, 1000).unwrap_err();
    assert_eq!(e, ProtocolError::UnexpectedInput { len: 4 });
    assert_eq!(e.ntstatus(), STATUS_INVALID_BUFFER_SIZE);
    assert!(Ioctl::GetPended.check_lengths(0, MIN_GET_PENDED_OUTPUT).is_ok());
    assert!(Ioctl::SetConfig.check_lengths(CONFIG_MESSAGE_LEN, 0).is_ok());
    assert_eq!(Ioctl::GetStreamEvents.check_lengths(16, 4096), Err(ProtocolError::UnexpectedInput { len: 16 }));
    assert!(Ioctl::GetStreamEvents.check_lengths(0, MIN_GET_STREAM_EVENTS_OUTPUT).is_ok());
    assert!(Ioctl::PushBlocklist.check_lengths(MAX_BLOCKLIST_MESSAGE_LEN, 0).is_ok());
}

#[test]
fn bad_magic() {
    let mut m = stats_msg();
    m[0] = b'X';
    let e = decode_stats(&m).unwrap_err();
    assert_eq!(e, ProtocolError::BadMagic);
    assert_eq!(e.ntstatus(), STATUS_INVALID_PARAMETER);
}

#[test]
fn unsupported_version() {
    let mut m = config_msg();
    put_u16(&mut m, 4, 2);
    let e = decode_config(&m).unwrap_err();
    assert_eq!(e, ProtocolError::UnsupportedVersion { found: 2, supported: 1 });
    assert_eq!(e.ntstatus(), STATUS_REVISION_MISMATCH);
    // HELLO's layout is frozen at 1 too.
    let mut m = with(64, |b| encode_hello_request(&HelloRequest { min_version: 1, max_version: 7 }, b));
    put_u16(&mut m, 4, 0);
    assert_eq!(decode_hello_request(&m), Err(ProtocolError::UnsupportedVersion { found: 0, supported: 1 }));
    // A service that finds no common version.
    let reply = HelloReply::answer(&HelloRequest { min_version: 5, max_version: 9 }, DriverLimits::PROTOCOL);
    assert_eq!(reply.selected_version, 0);
    assert_eq!(reply.negotiated(), Err(ProtocolError::UnsupportedVersion { found: 2, supported: PROTOCOL_VERSION }));
    // Nor does a version-1 driver speak to this service: HELLO says so.
    let old = HelloRequest { min_version: 1, max_version: 1 };
    assert_eq!(HelloReply::answer(&old, DriverLimits::PROTOCOL).selected_version, 0);
    // Stats are at layout version 2 since protocol version 2: a version-1 stats message (the old
    // 160-byte body) is refused by its version, before its length.
    let mut m = stats_msg();
    put_u16(&mut m, 4, 1);
    assert_eq!(decode_stats(&m), Err(ProtocolError::UnsupportedVersion { found: 1, supported: 2 }));
    m.truncate(16 + 160);
    put_u32(&mut m, 8, 176);
    assert_eq!(decode_stats(&m), Err(ProtocolError::UnsupportedVersion { found: 1, supported: 2 }));
    // The new kinds are at version 2 too; the others stay at 1.
    for (decode, mut m) in [
        (decode_stream_events_ok as fn(&[u8]) -> Result<(), ProtocolError>, events_msg()),
        (decode_blocklist_ok, blocklist_msg()),
    ] {
        put_u16(&mut m, 4, 1);
        assert_eq!(decode(&m), Err(ProtocolError::UnsupportedVersion { found: 1, supported: 2 }));
    }
    assert_eq!(MessageKind::PendedBatch.version(), 1);
    assert_eq!(MessageKind::Stats.version(), 2);
    assert_eq!(MessageKind::HelloReply.version(), HELLO_VERSION);
}

#[test]
fn bad_version_range() {
    let e = encode_hello_request(&HelloRequest { min_version: 3, max_version: 2 }, &mut [0u8; 64]).unwrap_err();
    assert_eq!(e, ProtocolError::BadVersionRange { min: 3, max: 2 });
    assert_eq!(e.ntstatus(), STATUS_UNKNOWN_REVISION);
    let mut m = with(64, |b| encode_hello_request(&HelloRequest::CURRENT, b));
    put_u16(&mut m, 16, 0);
    assert_eq!(decode_hello_request(&m), Err(ProtocolError::BadVersionRange { min: 0, max: 2 }));
    // A reply whose selected version is outside the driver's own range.
    let mut m =
        with(64, |b| encode_hello_reply(&HelloReply::answer(&HelloRequest::CURRENT, DriverLimits::PROTOCOL), b));
    put_u16(&mut m, 16, 3);
    assert_eq!(decode_hello_reply(&m), Err(ProtocolError::BadVersionRange { min: 2, max: 2 }));
}

#[test]
fn wrong_kind() {
    let e = decode_stats(&config_msg()).unwrap_err();
    assert_eq!(e, ProtocolError::WrongKind { expected: 6, found: 7 });
    assert_eq!(e.ntstatus(), STATUS_INVALID_PARAMETER_MIX);
    // Results are not verdicts (the in-place exchange must not eat its own reply).
    let results = encode_results(&[]);
    assert_eq!(decode_verdict_batch(&results).unwrap_err(), ProtocolError::WrongKind { expected: 4, found: 5 });
    // The two new kinds are each other's wrong kind.
    assert_eq!(decode_blocklist(&events_msg()).unwrap_err(), ProtocolError::WrongKind { expected: 9, found: 8 });
    assert_eq!(decode_stream_events(&blocklist_msg()).unwrap_err(), ProtocolError::WrongKind { expected: 8, found: 9 });
}

#[test]
fn unsupported_kind() {
    for kind in [0u16, 10, 11, 0xFFFF] {
        let mut m = stats_msg();
        put_u16(&mut m, 6, kind);
        let e = decode_stats(&m).unwrap_err();
        assert_eq!(e, ProtocolError::UnsupportedKind { found: kind });
        assert_eq!(e.ntstatus(), STATUS_NOT_SUPPORTED);
        assert_eq!(peek_header(&m), Err(e));
    }
    // Since protocol version 2 no kind is reserved.
    assert!(!MessageKind::StreamEvents.is_reserved() && !MessageKind::DomainBlocklist.is_reserved());
    assert_eq!(peek_header(&events_msg()).map(|h| h.kind), Ok(MessageKind::StreamEvents));
    assert_eq!(peek_header(&blocklist_msg()).map(|h| h.kind), Ok(MessageKind::DomainBlocklist));
}

#[test]
fn unknown_and_reserved_ioctls() {
    let e = Ioctl::from_code(0x0022_0000).unwrap_err();
    assert_eq!(e, ProtocolError::UnknownIoctl { code: 0x0022_0000 });
    assert_eq!(e.ntstatus(), STATUS_INVALID_DEVICE_REQUEST);
    // Since protocol version 2 no code is reserved: the two that were are implemented.
    assert_eq!(Ioctl::from_code(IOCTL_TOLLGATE_GET_STREAM_EVENTS), Ok(Ioctl::GetStreamEvents));
    assert_eq!(Ioctl::from_code(IOCTL_TOLLGATE_PUSH_BLOCKLIST), Ok(Ioctl::PushBlocklist));
    assert_eq!(ProtocolError::ReservedIoctl { code: 0x8A7E_E020 }.ntstatus(), STATUS_NOT_IMPLEMENTED);
    // The next function code is nobody's.
    assert!(matches!(
        Ioctl::from_code(ctl_code(FILE_DEVICE_TOLLGATE, 0x808, 0, 3)),
        Err(ProtocolError::UnknownIoctl { .. })
    ));
    // The same function with another method or access is not ours.
    let other_method = ctl_code(FILE_DEVICE_TOLLGATE, 0x800, 3, FILE_READ_DATA | FILE_WRITE_DATA);
    assert!(matches!(Ioctl::from_code(other_method), Err(ProtocolError::UnknownIoctl { .. })));
}

#[test]
fn ioctl_codes() {
    // CTL_CODE(0x8A7E, 0x800, METHOD_BUFFERED, FILE_READ_DATA | FILE_WRITE_DATA), by hand.
    assert_eq!(IOCTL_TOLLGATE_HELLO, (0x8A7E << 16) | (3 << 14) | (0x800 << 2));
    assert_eq!(ctl_code(0x22, 0x800, METHOD_BUFFERED, 0), 0x0022_2000); // a well-known FILE_DEVICE_UNKNOWN code
    let mut seen = std::collections::HashSet::new();
    for ioctl in Ioctl::ALL {
        assert_eq!(Ioctl::from_code(ioctl.code()), Ok(ioctl));
        assert_eq!(ioctl.code() & 3, METHOD_BUFFERED);
        assert_eq!((ioctl.code() >> 14) & 3, FILE_READ_DATA | FILE_WRITE_DATA);
        assert_eq!(ioctl.code() >> 16, FILE_DEVICE_TOLLGATE);
        assert!(seen.insert(ioctl.code()));
        assert!(ioctl.request_kind().is_some() || ioctl.reply_kind().is_some());
    }
    assert_eq!(Ioctl::ALL.len(), 8);
    assert_eq!(IOCTL_TOLLGATE_GET_STREAM_EVENTS, (0x8A7E << 16) | (3 << 14) | (0x806 << 2));
    assert_eq!(Ioctl::GetStreamEvents.request_kind(), None);
    assert_eq!(Ioctl::GetStreamEvents.reply_kind(), Some(MessageKind::StreamEvents));
    assert_eq!(Ioctl::PushBlocklist.request_kind(), Some(MessageKind::DomainBlocklist));
    assert_eq!(Ioctl::PushBlocklist.reply_kind(), None);
}

#[test]
fn length_mismatch() {
    let mut m = stats_msg();
    put_u32(&mut m, 8, 265);
    let e = decode_stats(&m).unwrap_err();
    assert_eq!(e, ProtocolError::LengthMismatch { declared: 265, actual: 264 });
    assert_eq!(e.ntstatus(), STATUS_INFO_LENGTH_MISMATCH);
    // Consistent header, but a body of the wrong size for the kind.
    let mut m = config_msg();
    m.extend_from_slice(&[0; 8]);
    put_u32(&mut m, 8, 40);
    assert_eq!(decode_config(&m), Err(ProtocolError::LengthMismatch { declared: 32, actual: 40 }));
    // A verdict batch whose count does not match its records.
    let mut m = encode_verdicts(&[VerdictEntry { id: PendId::from_raw(1), verdict: Verdict::Block }]);
    put_u32(&mut m, 12, 2);
    assert_eq!(decode_verdict_batch(&m).unwrap_err(), ProtocolError::LengthMismatch { declared: 48, actual: 32 });
    // Bytes after the last pended record.
    let mut m = pended_msg(4);
    m.extend_from_slice(&[0; 8]);
    let total = m.len() as u32;
    put_u32(&mut m, 8, total);
    assert_eq!(decode_pended_batch(&m).unwrap_err(), ProtocolError::LengthMismatch { declared: 96, actual: 104 });
    // Bytes after the last stream event, and after the last pattern.
    for (decode, mut m) in [
        (decode_stream_events_ok as fn(&[u8]) -> Result<(), ProtocolError>, events_msg()),
        (decode_blocklist_ok, blocklist_msg()),
    ] {
        let declared = m.len();
        m.extend_from_slice(&[0; 8]);
        let total = m.len() as u32;
        put_u32(&mut m, 8, total);
        assert_eq!(decode(&m), Err(ProtocolError::LengthMismatch { declared, actual: declared + 8 }));
    }
}

fn decode_stream_events_ok(m: &[u8]) -> Result<(), ProtocolError> {
    decode_stream_events(m).map(|_| ())
}

fn decode_blocklist_ok(m: &[u8]) -> Result<(), ProtocolError> {
    decode_blocklist(m).map(|_| ())
}

#[test]
fn count_mismatch() {
    let mut m = stats_msg();
    put_u32(&mut m, 12, 2);
    let e = decode_stats(&m).unwrap_err();
    assert_eq!(e, ProtocolError::CountMismatch { found: 2 });
    assert_eq!(e.ntstatus(), STATUS_INVALID_PARAMETER);
    put_u32(&mut m, 12, 0);
    assert_eq!(decode_stats(&m), Err(ProtocolError::CountMismatch { found: 0 }));
}

#[test]
fn too_many_records() {
    let mut m = encode_verdicts(&[]);
    put_u32(&mut m, 12, MAX_BATCH_RECORDS + 1);
    let e = decode_verdict_batch(&m).unwrap_err();
    assert_eq!(e, ProtocolError::TooManyRecords { count: 1025, max: 1024 });
    assert_eq!(e.ntstatus(), STATUS_IMPLEMENTATION_LIMIT);
    let mut m = pended_msg(0);
    put_u32(&mut m, 12, u32::MAX);
    assert!(matches!(decode_pended_batch(&m), Err(ProtocolError::TooManyRecords { .. })));
    let mut buf = [0u8; 256];
    let mut w = VerdictWriter::new(&mut buf, 2).unwrap();
    let entry = VerdictEntry { id: PendId::from_raw(1), verdict: Verdict::Permit };
    w.push(entry).unwrap();
    w.push(entry).unwrap();
    assert_eq!(w.push(entry), Err(ProtocolError::TooManyRecords { count: 3, max: 2 }));
    assert_eq!(w.finish(), 48);
    // Stream events: the batch limit.
    let mut m = events_msg();
    put_u32(&mut m, 12, MAX_BATCH_RECORDS + 1);
    assert_eq!(decode_stream_events(&m).unwrap_err(), ProtocolError::TooManyRecords { count: 1025, max: 1024 });
    // Blocklist: its own limit, on decode and on encode.
    let mut m = raw_blocklist(&[]);
    put_u32(&mut m, 12, MAX_BLOCKLIST_PATTERNS + 1);
    assert_eq!(decode_blocklist(&m).unwrap_err(), ProtocolError::TooManyRecords { count: 65_537, max: 65_536 });
    let names: Vec<String> = (0..=MAX_BLOCKLIST_PATTERNS).map(|i| format!("{i:06}.t")).collect();
    let patterns = names.iter().map(|n| (PatternKind::Exact, n.as_bytes()));
    let mut out = vec![0u8; blocklist_len(patterns.clone())];
    assert_eq!(
        encode_blocklist(patterns.clone(), &mut out),
        Err(ProtocolError::TooManyRecords { count: 65_537, max: 65_536 })
    );
    assert_eq!(encode_blocklist_to_vec(patterns), Err(ProtocolError::TooManyRecords { count: 65_537, max: 65_536 }));
    // Exactly the limit is fine, and decodes.
    let bytes = encode_blocklist_to_vec(names[1..].iter().map(|n| (PatternKind::Below, n.as_bytes()))).unwrap();
    assert_eq!(decode_blocklist(&bytes).unwrap().len(), 65_536);
}

#[test]
fn bad_enum() {
    let cases: [(usize, u8, EnumField); 3] =
        [(R + 8, 2, EnumField::Layer), (R + 10, 2, EnumField::Direction), (R + 66, 2, EnumField::RecordFlags)];
    for (at, value, field) in cases {
        let mut m = pended_msg(1);
        m[at] = value;
        let e = decode_pended_batch(&m).unwrap_err();
        assert_eq!(e, ProtocolError::BadEnum { field, value });
        assert_eq!(e.ntstatus(), STATUS_INVALID_PARAMETER);
    }
    let mut m = encode_verdicts(&[VerdictEntry { id: PendId::from_raw(1), verdict: Verdict::Block }]);
    m[R + 8] = 2;
    assert_eq!(decode_verdict_batch(&m).unwrap_err(), ProtocolError::BadEnum { field: EnumField::Verdict, value: 2 });
    let mut m = encode_results(&[VerdictOutcome { id: PendId::from_raw(1), result: VerdictResult::Accepted }]);
    m[R + 8] = 5;
    assert_eq!(
        decode_verdict_results(&m).unwrap_err(),
        ProtocolError::BadEnum { field: EnumField::VerdictResult, value: 5 }
    );
    let mut m = config_msg();
    m[R + 12] = 7;
    assert_eq!(decode_config(&m).unwrap_err(), ProtocolError::BadEnum { field: EnumField::Verdict, value: 7 });
    // Every code of a stream event, and its two flag bytes.
    let cases: [(usize, u8, EnumField); 10] = [
        (R + 8, 2, EnumField::FlowEventKind),
        (R + 9, 6, EnumField::InspectionEnd),
        (R + 10, 2, EnumField::StreamVerdict),
        (R + 11, 4, EnumField::AppProtocol),
        (R + 13, 2, EnumField::Direction),
        (R + 15, 0x17, EnumField::EventFlags),
        (R + 54, 4, EnumField::Ech),
        (R + 55, 10, EnumField::Malformed),
        (R + 176, 4, EnumField::NameSource),
        (R + 177, 2, EnumField::NameFlags),
    ];
    for (at, value, field) in cases {
        let mut m = events_msg();
        m[at] = value;
        let e = decode_stream_events(&m).unwrap_err();
        assert_eq!(e, ProtocolError::BadEnum { field, value }, "offset {at}");
        assert_eq!(e.ntstatus(), STATUS_INVALID_PARAMETER);
    }
    // A blocklist pattern's kind.
    let mut m = blocklist_msg();
    m[R] = 2;
    assert_eq!(decode_blocklist(&m).unwrap_err(), ProtocolError::BadEnum { field: EnumField::PatternKind, value: 2 });
    assert_eq!(pattern_kind_from_u8(1), Ok(PatternKind::Below));
    assert_eq!(pattern_kind_to_u8(PatternKind::Exact), 0);
}

#[test]
fn bad_address_family() {
    for value in [0u8, 2, 5, 255] {
        let mut m = pended_msg(1);
        m[R + 11] = value;
        let e = decode_pended_batch(&m).unwrap_err();
        assert_eq!(e, ProtocolError::BadAddressFamily { value });
        assert_eq!(e.ntstatus(), STATUS_INVALID_ADDRESS_COMPONENT);
        let mut m = events_msg();
        m[R + 14] = value;
        assert_eq!(decode_stream_events(&m).unwrap_err(), ProtocolError::BadAddressFamily { value });
    }
}

#[test]
fn path_too_long() {
    let mut m = pended_msg(1024);
    put_u16(&mut m, R + 64, 1025);
    let e = decode_pended_batch(&m).unwrap_err();
    assert_eq!(e, ProtocolError::PathTooLong { units: 1025 });
    assert_eq!(e.ntstatus(), STATUS_NAME_TOO_LONG);
    // A HELLO reply promising longer paths than the protocol carries.
    let mut reply = HelloReply::answer(&HelloRequest::CURRENT, DriverLimits::PROTOCOL);
    reply.limits.max_app_path_units = 1025;
    assert_eq!(encode_hello_reply(&reply, &mut [0u8; 64]), Err(ProtocolError::PathTooLong { units: 1025 }));
}

#[test]
fn non_zero_reserved() {
    // Record reserved bytes, the unused 12 bytes of an IPv4 address, and record padding
    // (a 1-unit path leaves 6 bytes of padding after offset 74).
    for at in [R + 67, R + 71, R + 12 + 4, R + 28 + 15, R + 74, R + 79] {
        let mut m = pended_msg(1);
        m[at] = 1;
        let e = decode_pended_batch(&m).unwrap_err();
        assert_eq!(e, ProtocolError::NonZeroReserved, "offset {at}");
        assert_eq!(e.ntstatus(), STATUS_INVALID_PARAMETER);
    }
    let mut m = encode_verdicts(&[VerdictEntry { id: PendId::from_raw(1), verdict: Verdict::Block }]);
    m[R + 15] = 0x80;
    assert_eq!(decode_verdict_batch(&m).unwrap_err(), ProtocolError::NonZeroReserved);
    let mut m = config_msg();
    m[R + 13] = 1;
    assert_eq!(decode_config(&m), Err(ProtocolError::NonZeroReserved));
    let mut m = with(64, |b| encode_hello_request(&HelloRequest::CURRENT, b));
    m[R + 7] = 1;
    assert_eq!(decode_hello_request(&m), Err(ProtocolError::NonZeroReserved));
    // A stream event: the unused 12 bytes of an IPv4 address, the reserved bytes, HTTP method and
    // ALPN bytes after their lengths, the record's padding.
    for at in [R + 20, R + 47, R + 140, R + 143, R + 120, R + 134, R + 146, R + 175, R + 195, R + 199] {
        let mut m = events_msg();
        m[at] = 1;
        assert_eq!(decode_stream_events(&m).unwrap_err(), ProtocolError::NonZeroReserved, "offset {at}");
    }
    // A first-data time without its flag.
    let mut m = events_msg();
    m[R + 15] &= !EVENT_FLAG_FIRST_DATA;
    assert_eq!(decode_stream_events(&m).unwrap_err(), ProtocolError::NonZeroReserved);
    // A blocklist record's padding ("a.test" is 2 + 6 bytes, "ads.example" 2 + 11 + 3).
    let mut m = blocklist_msg();
    m[R + 8 + 16 + 15] = 1;
    assert_eq!(decode_blocklist(&m).unwrap_err(), ProtocolError::NonZeroReserved);
}

#[test]
fn field_too_long() {
    let cases = [
        (R + 135, 16u16, LengthField::HttpMethod, 15u16),
        (R + 137, 33, LengthField::Alpn, 32),
        (R + 139, 3, LengthField::NameCount, 2),
    ];
    for (at, len, field, max) in cases {
        let mut m = events_msg();
        m[at] = len as u8;
        let e = decode_stream_events(&m).unwrap_err();
        assert_eq!(e, ProtocolError::FieldTooLong { field, len, max });
        assert_eq!(e.ntstatus(), STATUS_NAME_TOO_LONG);
    }
    let mut m = events_msg();
    put_u16(&mut m, R + 178, 256);
    assert_eq!(
        decode_stream_events(&m).unwrap_err(),
        ProtocolError::FieldTooLong { field: LengthField::HostName, len: 256, max: 255 }
    );
}

#[test]
fn bad_host_name() {
    // Uppercase, a trailing dot, marked truncated while shorter than 255 bytes, empty.
    let mut cases: Vec<Vec<u8>> = Vec::new();
    let mut m = events_msg();
    m[R + 180] = b'W';
    cases.push(m);
    let mut m = events_msg();
    m[R + 194] = b'.';
    cases.push(m);
    let mut m = events_msg();
    m[R + 177] = NAME_FLAG_TRUNCATED;
    cases.push(m);
    let mut m = events_msg();
    put_u16(&mut m, R + 178, 0);
    cases.push(m);
    for m in cases {
        let e = decode_stream_events(&m).unwrap_err();
        assert_eq!(e, ProtocolError::BadHostName);
        assert_eq!(e.ntstatus(), STATUS_OBJECT_NAME_INVALID);
    }
    // Non-ASCII bytes and odd dots are kept as they came (the driver never rejects a wire name).
    let mut m = events_msg();
    m[R + 180] = 0xC3;
    m[R + 184] = b'.';
    let event = decode_stream_events(&m).unwrap().iter().next().unwrap();
    assert_eq!(event.identity.names.primary().unwrap().1.as_bytes(), b"\xC3ww..xample.com");
}

#[test]
fn bad_pattern() {
    let cases: [(&[u8], NameError); 5] = [
        (b"A.test", NameError::Uppercase { at: 0 }),
        (b"a..test", NameError::EmptyLabel { at: 2 }),
        (b"-a.test", NameError::HyphenAtLabelEdge { start: 0, len: 2 }),
        (b"a b.test", NameError::BadCharacter { at: 1, byte: b' ' }),
        (b"*.test", NameError::BadCharacter { at: 0, byte: b'*' }),
    ];
    for (name, issue) in cases {
        // The driver's check, on the second record.
        let m = raw_blocklist(&[(0, b"0.test"), (0, name)]);
        let e = decode_blocklist(&m).unwrap_err();
        assert_eq!(e, ProtocolError::BadPattern { index: 1, issue });
        assert_eq!(e.ntstatus(), STATUS_OBJECT_NAME_INVALID);
        // The service's, before a byte is sent: the allocation-free encoder and the convenience
        // (which names the index in the caller's order, before sorting).
        let patterns: [(PatternKind, &[u8]); 3] =
            [(PatternKind::Exact, b"0.test"), (PatternKind::Exact, name), (PatternKind::Below, b"x.test")];
        assert_eq!(encode_blocklist(patterns, &mut [0u8; 256]), Err(e));
        let reversed = [patterns[2], patterns[1], patterns[0]];
        assert_eq!(encode_blocklist_to_vec(reversed), Err(ProtocolError::BadPattern { index: 1, issue }));
    }
    // Empty and over-long names: the length byte allows 0 and 254..=255, the name rules do not.
    let e = decode_blocklist(&raw_blocklist(&[(1, b"")])).unwrap_err();
    assert_eq!(e, ProtocolError::BadPattern { index: 0, issue: NameError::Empty });
    let long = [b'a'; 254];
    let e = decode_blocklist(&raw_blocklist(&[(1, &long)])).unwrap_err();
    assert_eq!(e, ProtocolError::BadPattern { index: 0, issue: NameError::TooLong { len: 254 } });
    assert!(e.to_string().contains("blocklist pattern 0"));
}

#[test]
fn duplicate_pattern() {
    let m = raw_blocklist(&[(0, b"a.test"), (0, b"b.test"), (0, b"b.test")]);
    let e = decode_blocklist(&m).unwrap_err();
    assert_eq!(e, ProtocolError::DuplicatePattern { index: 2 });
    assert_eq!(e.ntstatus(), STATUS_OBJECT_NAME_COLLISION);
    let patterns: [(PatternKind, &[u8]); 2] = [(PatternKind::Below, b"a.test"), (PatternKind::Below, b"a.test")];
    assert_eq!(encode_blocklist(patterns, &mut [0u8; 64]), Err(ProtocolError::DuplicatePattern { index: 1 }));
    // The same name as exact and as below is two patterns, not a duplicate.
    assert!(decode_blocklist(&raw_blocklist(&[(0, b"a.test"), (1, b"a.test")])).is_ok());
    // The convenience deduplicates instead.
    let bytes = encode_blocklist_to_vec(patterns).unwrap();
    assert_eq!(decode_blocklist(&bytes).unwrap().len(), 1);
}

#[test]
fn unsorted_patterns() {
    for records in
        [[(0u8, &b"b.test"[..]), (0, b"a.test")], [(1, b"a.test"), (0, b"z.test")], [(0, b"a.test.x"), (0, b"a.test")]]
    {
        let e = decode_blocklist(&raw_blocklist(&records)).unwrap_err();
        assert_eq!(e, ProtocolError::UnsortedPatterns { index: 1 });
        assert_eq!(e.ntstatus(), STATUS_INVALID_PARAMETER);
        let patterns = records.map(|(kind, name)| (pattern_kind_from_u8(kind).unwrap(), name));
        assert_eq!(encode_blocklist(patterns, &mut [0u8; 64]), Err(e));
        // Sorted, the same patterns are fine.
        assert_eq!(decode_blocklist(&encode_blocklist_to_vec(patterns).unwrap()).unwrap().len(), 2);
    }
    // Byte order, not length order: `a.test` < `a.test.x` < `b`.
    assert!(decode_blocklist(&raw_blocklist(&[(0, b"a.test"), (0, b"a.test.x"), (0, b"b")])).is_ok());
}

#[test]
fn message_too_long() {
    // The driver's first check, from the input length alone.
    let e = Ioctl::PushBlocklist.check_lengths(MAX_BLOCKLIST_MESSAGE_LEN + 1, 0).unwrap_err();
    assert_eq!(e, ProtocolError::MessageTooLong { len: MAX_BLOCKLIST_MESSAGE_LEN + 1, max: MAX_BLOCKLIST_MESSAGE_LEN });
    assert_eq!(e.ntstatus(), STATUS_IMPLEMENTATION_LIMIT);
    // The parser's, on a message whose header agrees with its (too large) length.
    let mut m = raw_blocklist(&[]);
    m.resize(MAX_BLOCKLIST_MESSAGE_LEN + 8, 0);
    let total = m.len() as u32;
    put_u32(&mut m, 8, total);
    assert_eq!(
        decode_blocklist(&m).unwrap_err(),
        ProtocolError::MessageTooLong { len: MAX_BLOCKLIST_MESSAGE_LEN + 8, max: MAX_BLOCKLIST_MESSAGE_LEN }
    );
    // The encoders': 50,000 patterns of 104-byte records (102-byte names) are 5.2 MB.
    let names: Vec<String> = (0..50_000).map(|i| format!("{i:06}.{}.{}", "a".repeat(47), "b".repeat(47))).collect();
    let patterns = names.iter().map(|n| (PatternKind::Exact, n.as_bytes()));
    let mut out = vec![0u8; blocklist_len(patterns.clone())];
    let e = encode_blocklist(patterns.clone(), &mut out).unwrap_err();
    assert_eq!(e, ProtocolError::MessageTooLong { len: 16 + 40_330 * 104, max: MAX_BLOCKLIST_MESSAGE_LEN });
    assert!(matches!(encode_blocklist_to_vec(patterns), Err(ProtocolError::MessageTooLong { .. })));
}

#[test]
fn invalid_config() {
    let base = RuntimeConfig::default();
    let cases = [
        (RuntimeConfig { pend_timeout: Ticks::from_millis(9), ..base }, ConfigIssue::TimeoutTooShort),
        (RuntimeConfig { pend_timeout: Ticks(MIN_PEND_TIMEOUT.0 - 1), ..base }, ConfigIssue::TimeoutTooShort),
        (RuntimeConfig { pend_timeout: Ticks(MAX_PEND_TIMEOUT.0 + 1), ..base }, ConfigIssue::TimeoutTooLong),
        (RuntimeConfig { max_pended: 0, ..base }, ConfigIssue::ZeroCap),
    ];
    for (config, issue) in cases {
        let e = encode_config(&config, &mut [0u8; 64]).unwrap_err();
        assert_eq!(e, ProtocolError::InvalidConfig(issue));
        assert_eq!(e.ntstatus(), STATUS_INVALID_PARAMETER);
        // The driver rejects it too, if a service writes the bytes itself.
        let mut m = config_msg();
        m[R..R + 8].copy_from_slice(&config.pend_timeout.0.to_le_bytes());
        m[R + 8..R + 12].copy_from_slice(&config.max_pended.to_le_bytes());
        assert_eq!(decode_config(&m), Err(e));
    }
    // The bounds themselves are accepted.
    for timeout in [MIN_PEND_TIMEOUT, MAX_PEND_TIMEOUT] {
        let config = RuntimeConfig { pend_timeout: timeout, max_pended: 1, default_verdict: Verdict::Permit };
        assert_eq!(decode_config(&with(64, |b| encode_config(&config, b))), Ok(config));
    }
    assert_eq!(MIN_PEND_TIMEOUT.as_millis(), 10);
    assert_eq!(MAX_PEND_TIMEOUT.as_millis(), 600_000);
}

#[test]
fn every_error_has_an_ntstatus_and_a_message() {
    let all = [
        ProtocolError::TooShort { needed: 1, actual: 0 },
        ProtocolError::BufferTooSmall { needed: 1, available: 0 },
        ProtocolError::UnexpectedInput { len: 1 },
        ProtocolError::BadMagic,
        ProtocolError::UnsupportedVersion { found: 2, supported: 1 },
        ProtocolError::BadVersionRange { min: 2, max: 1 },
        ProtocolError::WrongKind { expected: 1, found: 2 },
        ProtocolError::UnsupportedKind { found: 8 },
        ProtocolError::UnknownIoctl { code: 0 },
        ProtocolError::ReservedIoctl { code: IOCTL_TOLLGATE_PUSH_BLOCKLIST },
        ProtocolError::LengthMismatch { declared: 1, actual: 2 },
        ProtocolError::CountMismatch { found: 0 },
        ProtocolError::TooManyRecords { count: 2, max: 1 },
        ProtocolError::BadEnum { field: EnumField::Layer, value: 9 },
        ProtocolError::BadAddressFamily { value: 9 },
        ProtocolError::PathTooLong { units: 2000 },
        ProtocolError::NonZeroReserved,
        ProtocolError::InvalidConfig(ConfigIssue::ZeroCap),
        ProtocolError::FieldTooLong { field: LengthField::Alpn, len: 33, max: 32 },
        ProtocolError::BadHostName,
        ProtocolError::BadPattern { index: 3, issue: NameError::Empty },
        ProtocolError::DuplicatePattern { index: 1 },
        ProtocolError::UnsortedPatterns { index: 1 },
        ProtocolError::MessageTooLong { len: 5, max: 4 },
    ];
    for e in all {
        // Every one is an error-severity NTSTATUS (top two bits 11).
        assert_eq!((e.ntstatus() as u32) >> 30, 3, "{e:?}");
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(STATUS_BUFFER_TOO_SMALL as u32, 0xC000_0023);
    assert_eq!(STATUS_INVALID_PARAMETER as u32, 0xC000_000D);
    assert_eq!(STATUS_REVISION_MISMATCH as u32, 0xC000_0059);
    assert_eq!(STATUS_INVALID_BUFFER_SIZE as u32, 0xC000_0206);
    assert_eq!(STATUS_NOT_SUPPORTED as u32, 0xC000_00BB);
    assert_eq!(STATUS_INVALID_DEVICE_REQUEST as u32, 0xC000_0010);
    assert_eq!(STATUS_OBJECT_NAME_INVALID as u32, 0xC000_0033);
    assert_eq!(STATUS_OBJECT_NAME_COLLISION as u32, 0xC000_0035);
    assert_eq!(STATUS_NAME_TOO_LONG as u32, 0xC000_0106);
    assert_eq!(STATUS_IMPLEMENTATION_LIMIT as u32, 0xC000_042B);
}

#[test]
fn documented_sizes() {
    assert_eq!(HEADER_LEN, 16);
    assert_eq!(PENDED_FIXED_LEN, 72);
    assert_eq!(MAX_PENDED_RECORD_LEN, 72 + 2048);
    assert_eq!(MIN_GET_PENDED_OUTPUT, 16 + 2120);
    assert_eq!(VERDICT_RECORD_LEN, 16);
    assert_eq!(RESULT_RECORD_LEN, 16);
    assert_eq!(STATS_MESSAGE_LEN, 16 + 248);
    assert_eq!(STREAM_EVENT_FIXED_LEN, 176);
    assert_eq!(STREAM_EVENT_NAME_HEADER_LEN, 4);
    assert_eq!(MAX_EVENT_NAMES, 2);
    assert_eq!(MAX_STREAM_EVENT_RECORD_LEN, 176 + 2 * (4 + 255) + 2);
    assert_eq!(MIN_GET_STREAM_EVENTS_OUTPUT, 16 + 696);
    assert_eq!(MAX_BLOCKLIST_PATTERNS, 65_536);
    assert_eq!(MAX_BLOCKLIST_MESSAGE_LEN, 4 << 20);
    assert_eq!(MAX_BLOCKLIST_RECORD_LEN, 256);
    assert_eq!(BLOCKLIST_RECORD_HEADER_LEN, 2);
    assert_eq!((EVENT_FLAG_FIRST_DATA, EVENT_FLAG_TLS13, EVENT_FLAG_GREASE, EVENT_FLAG_ALPN_TRUNCATED), (1, 2, 4, 8));
    assert_eq!(NAME_FLAG_TRUNCATED, 1);
    assert_eq!(CONFIG_MESSAGE_LEN, 32);
    assert_eq!(HELLO_REQUEST_LEN, 24);
    assert_eq!(HELLO_REPLY_LEN, 40);
    assert_eq!(MAGIC, *b"TLGT");
    // The largest message is now the largest blocklist (a full pended batch is ≈ 2 MiB).
    assert_eq!(DriverLimits::PROTOCOL.max_message_len as usize, MAX_BLOCKLIST_MESSAGE_LEN);
    const { assert!(16 + 1024 * MAX_PENDED_RECORD_LEN < MAX_BLOCKLIST_MESSAGE_LEN) };
}
