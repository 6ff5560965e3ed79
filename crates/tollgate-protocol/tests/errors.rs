//! One test per [`ProtocolError`] variant: a concrete malformed buffer that produces it, and the
//! NTSTATUS the driver would complete the request with.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use common::*;
use tollgate_core::{PendId, RuntimeConfig, StatsSnapshot, Ticks, Verdict};
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
    with(256, |b| encode_stats(&StatsSnapshot::default(), b))
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
    let e = encode_stats(&StatsSnapshot::default(), &mut small).unwrap_err();
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
    assert_eq!(reply.negotiated(), Err(ProtocolError::UnsupportedVersion { found: 1, supported: PROTOCOL_VERSION }));
}

#[test]
fn bad_version_range() {
    let e = encode_hello_request(&HelloRequest { min_version: 3, max_version: 2 }, &mut [0u8; 64]).unwrap_err();
    assert_eq!(e, ProtocolError::BadVersionRange { min: 3, max: 2 });
    assert_eq!(e.ntstatus(), STATUS_UNKNOWN_REVISION);
    let mut m = with(64, |b| encode_hello_request(&HelloRequest::CURRENT, b));
    put_u16(&mut m, 16, 0);
    assert_eq!(decode_hello_request(&m), Err(ProtocolError::BadVersionRange { min: 0, max: 1 }));
    // A reply whose selected version is outside the driver's own range.
    let mut m =
        with(64, |b| encode_hello_reply(&HelloReply::answer(&HelloRequest::CURRENT, DriverLimits::PROTOCOL), b));
    put_u16(&mut m, 16, 2);
    assert_eq!(decode_hello_reply(&m), Err(ProtocolError::BadVersionRange { min: 1, max: 1 }));
}

#[test]
fn wrong_kind() {
    let e = decode_stats(&config_msg()).unwrap_err();
    assert_eq!(e, ProtocolError::WrongKind { expected: 6, found: 7 });
    assert_eq!(e.ntstatus(), STATUS_INVALID_PARAMETER_MIX);
    // Results are not verdicts (the in-place exchange must not eat its own reply).
    let results = encode_results(&[]);
    assert_eq!(decode_verdict_batch(&results).unwrap_err(), ProtocolError::WrongKind { expected: 4, found: 5 });
}

#[test]
fn unsupported_kind() {
    for kind in [0u16, 8, 9, 10, 0xFFFF] {
        let mut m = stats_msg();
        put_u16(&mut m, 6, kind);
        let e = decode_stats(&m).unwrap_err();
        assert_eq!(e, ProtocolError::UnsupportedKind { found: kind });
        assert_eq!(e.ntstatus(), STATUS_NOT_SUPPORTED);
        assert_eq!(peek_header(&m), Err(e));
    }
    assert!(MessageKind::StreamEvents.is_reserved() && MessageKind::DomainBlocklist.is_reserved());
}

#[test]
fn unknown_and_reserved_ioctls() {
    let e = Ioctl::from_code(0x0022_0000).unwrap_err();
    assert_eq!(e, ProtocolError::UnknownIoctl { code: 0x0022_0000 });
    assert_eq!(e.ntstatus(), STATUS_INVALID_DEVICE_REQUEST);
    for code in [IOCTL_TOLLGATE_GET_STREAM_EVENTS, IOCTL_TOLLGATE_PUSH_BLOCKLIST] {
        let e = Ioctl::from_code(code).unwrap_err();
        assert_eq!(e, ProtocolError::ReservedIoctl { code });
        assert_eq!(e.ntstatus(), STATUS_NOT_IMPLEMENTED);
    }
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
}

#[test]
fn length_mismatch() {
    let mut m = stats_msg();
    put_u32(&mut m, 8, 177);
    let e = decode_stats(&m).unwrap_err();
    assert_eq!(e, ProtocolError::LengthMismatch { declared: 177, actual: 176 });
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
}

#[test]
fn bad_address_family() {
    for value in [0u8, 2, 5, 255] {
        let mut m = pended_msg(1);
        m[R + 11] = value;
        let e = decode_pended_batch(&m).unwrap_err();
        assert_eq!(e, ProtocolError::BadAddressFamily { value });
        assert_eq!(e.ntstatus(), STATUS_INVALID_ADDRESS_COMPONENT);
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
}

#[test]
fn documented_sizes() {
    assert_eq!(HEADER_LEN, 16);
    assert_eq!(PENDED_FIXED_LEN, 72);
    assert_eq!(MAX_PENDED_RECORD_LEN, 72 + 2048);
    assert_eq!(MIN_GET_PENDED_OUTPUT, 16 + 2120);
    assert_eq!(VERDICT_RECORD_LEN, 16);
    assert_eq!(RESULT_RECORD_LEN, 16);
    assert_eq!(STATS_MESSAGE_LEN, 16 + 160);
    assert_eq!(CONFIG_MESSAGE_LEN, 32);
    assert_eq!(HELLO_REQUEST_LEN, 24);
    assert_eq!(HELLO_REPLY_LEN, 40);
    assert_eq!(MAGIC, *b"TLGT");
    assert_eq!(DriverLimits::PROTOCOL.max_message_len as usize, 16 + 1024 * MAX_PENDED_RECORD_LEN);
}
