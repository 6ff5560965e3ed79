//! Strategies and helpers shared by the protocol tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs, dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use tollgate_core::{
    ConnectionFacts, Direction, PendId, PendLayer, PendedConnection, RuntimeConfig, StatsSnapshot, Ticks, Verdict,
};
use tollgate_protocol::{
    BatchWriter, DriverLimits, HelloReply, HelloRequest, MAX_PEND_TIMEOUT, MIN_PEND_TIMEOUT, ProtocolError,
    VerdictEntry, VerdictOutcome, VerdictResult, VerdictResultWriter, decode_config, decode_hello_reply,
    decode_hello_request, decode_pended_batch, decode_stats, decode_verdict_batch, decode_verdict_results,
    encode_config, encode_hello_reply, encode_hello_request, encode_stats, encode_verdict_batch,
};

/// An owned pended connection (the core's type borrows its path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedConn {
    pub id: u64,
    pub layer: PendLayer,
    pub protocol: u8,
    pub direction: Direction,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub process_id: u64,
    pub pended_at: u64,
    pub path: Vec<u16>,
}

impl OwnedConn {
    pub fn as_pended(&self) -> PendedConnection<'_> {
        PendedConnection {
            id: PendId::from_raw(self.id),
            facts: ConnectionFacts {
                layer: self.layer,
                protocol: self.protocol,
                direction: self.direction,
                local_address: self.local,
                local_port: self.local_port,
                remote_address: self.remote,
                remote_port: self.remote_port,
                process_id: self.process_id,
                app_path: &self.path,
            },
            pended_at: Ticks(self.pended_at),
        }
    }
}

pub fn layer() -> impl Strategy<Value = PendLayer> {
    prop_oneof![Just(PendLayer::ResourceAssignment), Just(PendLayer::AuthConnect)]
}

pub fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Outbound), Just(Direction::Inbound)]
}

pub fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![Just(Verdict::Permit), Just(Verdict::Block)]
}

pub fn verdict_result() -> impl Strategy<Value = VerdictResult> {
    prop_oneof![
        Just(VerdictResult::Accepted),
        Just(VerdictResult::UnknownId),
        Just(VerdictResult::LateVerdict),
        Just(VerdictResult::BeingResolved),
        Just(VerdictResult::Unloading),
    ]
}

/// A pair of addresses of one family (what WFP produces).
pub fn address_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(l, r)| (IpAddr::V4(Ipv4Addr::from(l)), IpAddr::V4(Ipv4Addr::from(r)))),
        (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(l, r)| (IpAddr::V6(Ipv6Addr::from(l)), IpAddr::V6(Ipv6Addr::from(r)))),
    ]
}

/// Paths up to `max` units, any u16 (unpaired surrogates included: NT paths are not UTF-16-valid
/// by guarantee).
pub fn path(max: usize) -> impl Strategy<Value = Vec<u16>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u16>(), 0..=64),
        1 => proptest::collection::vec(any::<u16>(), 0..=max),
    ]
}

pub fn conn_with_path(max_path: usize) -> impl Strategy<Value = OwnedConn> {
    (
        any::<u64>(),
        layer(),
        any::<u8>(),
        direction(),
        address_pair(),
        any::<u16>(),
        any::<u16>(),
        any::<u64>(),
        any::<u64>(),
        path(max_path),
    )
        .prop_map(
            |(
                id,
                layer,
                protocol,
                direction,
                (local, remote),
                local_port,
                remote_port,
                process_id,
                pended_at,
                path,
            )| {
                OwnedConn {
                    id,
                    layer,
                    protocol,
                    direction,
                    local,
                    local_port,
                    remote,
                    remote_port,
                    process_id,
                    pended_at,
                    path,
                }
            },
        )
}

/// Connections whose paths fit a record untruncated.
pub fn conn() -> impl Strategy<Value = OwnedConn> {
    conn_with_path(usize::from(tollgate_protocol::MAX_APP_PATH_UNITS))
}

pub fn verdict_entry() -> impl Strategy<Value = VerdictEntry> {
    (any::<u64>(), verdict()).prop_map(|(id, verdict)| VerdictEntry { id: PendId::from_raw(id), verdict })
}

pub fn outcome() -> impl Strategy<Value = VerdictOutcome> {
    (any::<u64>(), verdict_result()).prop_map(|(id, result)| VerdictOutcome { id: PendId::from_raw(id), result })
}

pub fn stats() -> impl Strategy<Value = StatsSnapshot> {
    (any::<[u64; 18]>(), any::<[u32; 4]>()).prop_map(|(c, g)| StatsSnapshot {
        pended: c[0],
        completed_by_verdict: c[1],
        completed_by_teardown: c[2],
        completed_by_timeout: c[3],
        completed_by_cleanup: c[4],
        completed_by_unload: c[5],
        reauth_hits: c[6],
        reauth_misses: c[7],
        inline_no_service: c[8],
        inline_unloading: c[9],
        inline_cap_reached: c[10],
        inline_alloc_failed: c[11],
        inline_pend_failed: c[12],
        rejected_verdicts: c[13],
        teardowns_waited: c[14],
        teardown_spins: c[15],
        teardown_gave_up: c[16],
        closures_completed: c[17],
        peak_entries: g[0],
        live_entries: g[1],
        pended_now: g[2],
        cached_verdicts: g[3],
    })
}

pub fn valid_config() -> impl Strategy<Value = RuntimeConfig> {
    (verdict(), MIN_PEND_TIMEOUT.0..=MAX_PEND_TIMEOUT.0, 1..=u32::MAX).prop_map(
        |(default_verdict, timeout, max_pended)| RuntimeConfig {
            default_verdict,
            pend_timeout: Ticks(timeout),
            max_pended,
        },
    )
}

pub fn hello_request() -> impl Strategy<Value = HelloRequest> {
    (1..=u16::MAX, any::<u16>()).prop_map(|(a, b)| {
        let (min_version, max_version) = if a <= b { (a, b) } else { (b.max(1), a) };
        HelloRequest { min_version, max_version }
    })
}

pub fn hello_reply() -> impl Strategy<Value = HelloReply> {
    (
        hello_request(),
        any::<bool>(),
        0..=tollgate_protocol::MAX_APP_PATH_UNITS,
        0..=tollgate_protocol::MAX_BATCH_RECORDS,
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(range, none, max_app_path_units, max_batch_records, max_message_len, capabilities)| {
            HelloReply {
                selected_version: if none { 0 } else { range.max_version },
                min_version: range.min_version,
                max_version: range.max_version,
                limits: DriverLimits { max_app_path_units, max_batch_records, max_message_len },
                capabilities,
            }
        })
}

pub fn encode_pended(conns: &[OwnedConn]) -> Vec<u8> {
    let mut buf = vec![0u8; 16 + conns.len() * tollgate_protocol::MAX_PENDED_RECORD_LEN];
    let mut writer = BatchWriter::new(&mut buf).unwrap();
    for c in conns {
        writer.push(&c.as_pended()).unwrap();
    }
    let len = writer.finish();
    buf.truncate(len);
    buf
}

pub fn encode_verdicts(entries: &[VerdictEntry]) -> Vec<u8> {
    let mut buf = vec![0u8; 16 + 16 * entries.len()];
    let len = encode_verdict_batch(entries, &mut buf).unwrap();
    buf.truncate(len);
    buf
}

pub fn encode_results(outcomes: &[VerdictOutcome]) -> Vec<u8> {
    let mut buf = vec![0u8; 16 + 16 * outcomes.len()];
    let mut writer = VerdictResultWriter::new(&mut buf).unwrap();
    for o in outcomes {
        writer.push(*o).unwrap();
    }
    let len = writer.finish();
    buf.truncate(len);
    buf
}

pub fn with<E>(size: usize, encode: impl FnOnce(&mut [u8]) -> Result<usize, E>) -> Vec<u8>
where
    E: std::fmt::Debug,
{
    let mut buf = vec![0u8; size];
    let len = encode(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// The message kinds, each with a decode-then-re-encode function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    HelloRequest,
    HelloReply,
    Pended,
    Verdicts,
    Results,
    Stats,
    Config,
}

pub const KINDS: [Kind; 7] =
    [Kind::HelloRequest, Kind::HelloReply, Kind::Pended, Kind::Verdicts, Kind::Results, Kind::Stats, Kind::Config];

/// Parses `bytes` as `kind` and encodes what it got again.
pub fn reencode(kind: Kind, bytes: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut out = vec![0u8; bytes.len().max(256) * 2];
    let len = match kind {
        Kind::HelloRequest => encode_hello_request(&decode_hello_request(bytes)?, &mut out)?,
        Kind::HelloReply => encode_hello_reply(&decode_hello_reply(bytes)?, &mut out)?,
        Kind::Pended => {
            let batch = decode_pended_batch(bytes)?;
            let mut writer = BatchWriter::new(&mut out)?;
            for record in &batch {
                writer.push_record(&record)?;
            }
            assert_eq!(writer.count() as usize, batch.len());
            writer.finish()
        }
        Kind::Verdicts => {
            let batch = decode_verdict_batch(bytes)?;
            let entries: Vec<_> = batch.iter().collect();
            assert_eq!(entries.len(), batch.len());
            encode_verdict_batch(&entries, &mut out)?
        }
        Kind::Results => {
            let results = decode_verdict_results(bytes)?;
            let mut writer = VerdictResultWriter::new(&mut out)?;
            for o in &results {
                writer.push(o)?;
            }
            writer.finish()
        }
        Kind::Stats => encode_stats(&decode_stats(bytes)?, &mut out)?,
        Kind::Config => encode_config(&decode_config(bytes)?, &mut out)?,
    };
    out.truncate(len);
    Ok(out)
}

/// Runs every parser on `bytes` (none may panic) and returns how many accepted it.
pub fn parse_all(bytes: &[u8]) -> usize {
    let mut accepted = 0;
    accepted += usize::from(decode_hello_request(bytes).is_ok());
    accepted += usize::from(decode_hello_reply(bytes).is_ok());
    if let Ok(batch) = decode_pended_batch(bytes) {
        // Walk the borrowed views too: the iterator and the path helpers must not panic either.
        let mut path = vec![0u16; usize::from(tollgate_protocol::MAX_APP_PATH_UNITS)];
        for record in &batch {
            let _ = record.to_pended_connection(&mut path).unwrap();
            let _ = record.app_path.to_string_lossy();
        }
        accepted += 1;
    }
    if let Ok(batch) = decode_verdict_batch(bytes) {
        assert_eq!(batch.iter().count(), batch.len());
        accepted += 1;
    }
    if let Ok(results) = decode_verdict_results(bytes) {
        assert_eq!(results.iter().count(), results.len());
        accepted += 1;
    }
    accepted += usize::from(decode_stats(bytes).is_ok());
    accepted += usize::from(decode_config(bytes).is_ok());
    accepted += usize::from(tollgate_protocol::peek_header(bytes).is_ok());
    accepted
}

pub fn put_u16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// A valid message of any kind.
pub fn any_message() -> impl Strategy<Value = (Kind, Vec<u8>)> {
    prop_oneof![
        hello_request().prop_map(|r| (Kind::HelloRequest, with(64, |b| encode_hello_request(&r, b)))),
        hello_reply().prop_map(|r| (Kind::HelloReply, with(64, |b| encode_hello_reply(&r, b)))),
        proptest::collection::vec(conn_with_path(40), 0..5).prop_map(|c| (Kind::Pended, encode_pended(&c))),
        proptest::collection::vec(verdict_entry(), 0..6).prop_map(|v| (Kind::Verdicts, encode_verdicts(&v))),
        proptest::collection::vec(outcome(), 0..6).prop_map(|o| (Kind::Results, encode_results(&o))),
        stats().prop_map(|s| (Kind::Stats, with(256, |b| encode_stats(&s, b)))),
        valid_config().prop_map(|c| (Kind::Config, with(64, |b| encode_config(&c, b)))),
    ]
}
