//! Strategies and helpers shared by the protocol tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs, dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use tollgate_core::stream::{
    FlowCounters, FlowEndpoints, FlowEvent, FlowEventKind, FlowId, InspectionEnd, StreamStats, StreamVerdict,
};
use tollgate_core::{
    ConnectionFacts, Direction, PendId, PendLayer, PendedConnection, RuntimeConfig, StatsSnapshot, Ticks, Verdict,
};
use tollgate_inspect::identity::{Alpn, AppProtocol, Ech, HttpFacts, Identity, Malformed, NameSource, Names, TlsFacts};
use tollgate_inspect::name::{HostName, PatternKind};
use tollgate_protocol::{
    BatchWriter, DriverLimits, HelloReply, HelloRequest, MAX_PEND_TIMEOUT, MIN_PEND_TIMEOUT, ProtocolError,
    StreamEventWriter, VerdictEntry, VerdictOutcome, VerdictResult, VerdictResultWriter, decode_blocklist,
    decode_config, decode_hello_reply, decode_hello_request, decode_pended_batch, decode_stats, decode_stream_events,
    decode_verdict_batch, decode_verdict_results, encode_blocklist, encode_blocklist_to_vec, encode_config,
    encode_hello_reply, encode_hello_request, encode_stats, encode_verdict_batch,
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

pub fn stream_stats() -> impl Strategy<Value = StreamStats> {
    any::<[u64; 10]>().prop_map(|c| StreamStats {
        flows_tracked: c[0],
        flows_live: c[1],
        flows_untracked: c[2],
        flows_named: c[3],
        flows_dropped: c[4],
        flows_no_buffer: c[5],
        flows_bounded: c[6],
        events_lost: c[7],
        blocklist_patterns: c[8],
        blocklist_generation: c[9],
    })
}

// ------------------------------------------------------------------ stream events

pub fn event_kind() -> impl Strategy<Value = FlowEventKind> {
    prop_oneof![Just(FlowEventKind::Identified), Just(FlowEventKind::Closed)]
}

pub fn inspection_end() -> impl Strategy<Value = InspectionEnd> {
    prop_oneof![
        Just(InspectionEnd::Unfinished),
        Just(InspectionEnd::Complete),
        Just(InspectionEnd::Bounded),
        Just(InspectionEnd::Disconnected),
        Just(InspectionEnd::NoBuffer),
        Just(InspectionEnd::Overlapped),
    ]
}

pub fn stream_verdict() -> impl Strategy<Value = StreamVerdict> {
    prop_oneof![Just(StreamVerdict::Permitted), Just(StreamVerdict::Dropped)]
}

pub fn app_protocol() -> impl Strategy<Value = AppProtocol> {
    prop_oneof![Just(AppProtocol::Unknown), Just(AppProtocol::Tls), Just(AppProtocol::Http), Just(AppProtocol::Other)]
}

pub fn ech() -> impl Strategy<Value = Ech> {
    prop_oneof![Just(Ech::None), Just(Ech::Outer), Just(Ech::Inner), Just(Ech::Unknown)]
}

pub const ALL_MALFORMED: [Malformed; 9] = [
    Malformed::TlsRecord,
    Malformed::TlsHandshake,
    Malformed::TlsClientHello,
    Malformed::TlsExtension,
    Malformed::TlsDuplicateExtension,
    Malformed::TlsServerName,
    Malformed::HttpRequestLine,
    Malformed::HttpHeader,
    Malformed::HttpConflictingHost,
];

pub fn malformed() -> impl Strategy<Value = Option<Malformed>> {
    prop_oneof![Just(None), proptest::sample::select(&ALL_MALFORMED[..]).prop_map(Some)]
}

pub fn name_source() -> impl Strategy<Value = NameSource> {
    prop_oneof![
        Just(NameSource::None),
        Just(NameSource::TlsSni),
        Just(NameSource::HttpHost),
        Just(NameSource::HttpAuthority),
    ]
}

/// Names as the parsers keep them: ordinary ones, any bytes (non-ASCII, odd dots), and names over
/// 255 bytes (truncated to their tail). Never empty (`Names::push` refuses empty names).
pub fn host_name() -> impl Strategy<Value = HostName> {
    prop_oneof![
        4 => "[a-zA-Z0-9_-]{1,20}(\\.[a-zA-Z0-9_-]{1,20}){0,4}\\.?".prop_map(|s| HostName::from_wire(s.as_bytes())),
        2 => proptest::collection::vec(any::<u8>(), 1..=255).prop_map(|b| HostName::from_wire(&b)),
        1 => proptest::collection::vec(any::<u8>(), 256..400).prop_map(|b| HostName::from_wire(&b)),
    ]
    .prop_filter("empty after normalization", |name| !name.is_empty())
}

pub fn names() -> impl Strategy<Value = Names> {
    proptest::collection::vec((name_source(), host_name()), 0..=Names::CAPACITY).prop_map(|list| {
        let mut names = Names::default();
        for (source, name) in list {
            assert!(names.push(source, name));
        }
        names
    })
}

pub fn alpn() -> impl Strategy<Value = Alpn> {
    (proptest::collection::vec(any::<u8>(), 0..40), any::<u8>(), any::<bool>()).prop_map(|(id, offered, truncated)| {
        let mut alpn = Alpn::new(&id, offered);
        alpn.truncated = truncated;
        alpn
    })
}

/// HTTP facts as the parser makes them: method bytes after the length are zero.
pub fn http_facts() -> impl Strategy<Value = HttpFacts> {
    (proptest::collection::vec(any::<u8>(), 0..=15), any::<u8>()).prop_map(|(m, minor_version)| {
        let mut method = [0u8; 15];
        method[..m.len()].copy_from_slice(&m);
        HttpFacts { method, method_len: m.len() as u8, minor_version }
    })
}

pub fn tls_facts() -> impl Strategy<Value = TlsFacts> {
    (any::<u16>(), any::<bool>(), any::<bool>(), ech())
        .prop_map(|(legacy_version, offers_tls13, grease, ech)| TlsFacts { legacy_version, offers_tls13, grease, ech })
}

pub fn identity() -> impl Strategy<Value = Identity> {
    (app_protocol(), names(), alpn(), tls_facts(), http_facts(), malformed()).prop_map(
        |(protocol, names, alpn, tls, http, malformed)| Identity { protocol, names, alpn, tls, http, malformed },
    )
}

pub fn endpoints() -> impl Strategy<Value = FlowEndpoints> {
    (any::<u8>(), direction(), address_pair(), any::<u16>(), any::<u16>(), any::<u64>()).prop_map(
        |(ip_protocol, direction, (local_address, remote_address), local_port, remote_port, process_id)| {
            FlowEndpoints { ip_protocol, direction, local_address, local_port, remote_address, remote_port, process_id }
        },
    )
}

pub fn counters() -> impl Strategy<Value = FlowCounters> {
    (any::<[u64; 4]>(), any::<u64>(), proptest::option::of(any::<u64>())).prop_map(|(c, established, first)| {
        FlowCounters {
            bytes_out: c[0],
            bytes_in: c[1],
            segments_out: c[2],
            segments_in: c[3],
            established_at: Ticks(established),
            first_data_at: first.map(Ticks),
        }
    })
}

pub fn flow_event() -> impl Strategy<Value = FlowEvent> {
    (event_kind(), any::<u64>(), any::<u64>(), endpoints(), identity(), inspection_end(), stream_verdict(), counters())
        .prop_map(|(kind, flow, at, endpoints, identity, end, verdict, counters)| FlowEvent {
            kind,
            flow: FlowId::from_raw(flow),
            at: Ticks(at),
            endpoints,
            identity,
            end,
            verdict,
            counters,
        })
}

pub fn encode_events(events: &[FlowEvent]) -> Vec<u8> {
    let mut buf = vec![0u8; 16 + events.len() * tollgate_protocol::MAX_STREAM_EVENT_RECORD_LEN];
    let mut writer = StreamEventWriter::new(&mut buf).unwrap();
    for event in events {
        writer.push(event).unwrap();
    }
    let len = writer.finish();
    buf.truncate(len);
    buf
}

/// A plain event: IPv4, an SNI, `h2`.
pub fn sample_event() -> FlowEvent {
    let mut names = Names::default();
    names.push(NameSource::TlsSni, HostName::from_wire(b"www.example.com"));
    FlowEvent {
        kind: FlowEventKind::Identified,
        flow: FlowId::from_raw(0x0000_0002_0000_0007),
        at: Ticks(1_000),
        endpoints: FlowEndpoints {
            ip_protocol: 6,
            direction: Direction::Outbound,
            local_address: "10.0.0.2".parse().unwrap(),
            local_port: 50_000,
            remote_address: "93.184.216.34".parse().unwrap(),
            remote_port: 443,
            process_id: 4242,
        },
        identity: Identity {
            protocol: AppProtocol::Tls,
            names,
            alpn: Alpn::new(b"h2", 2),
            tls: TlsFacts { legacy_version: 0x0303, offers_tls13: true, grease: true, ech: Ech::None },
            http: HttpFacts::default(),
            malformed: None,
        },
        end: InspectionEnd::Complete,
        verdict: StreamVerdict::Permitted,
        counters: FlowCounters {
            bytes_out: 517,
            bytes_in: 0,
            segments_out: 1,
            segments_in: 0,
            established_at: Ticks(900),
            first_data_at: Some(Ticks(950)),
        },
    }
}

// ------------------------------------------------------------------ blocklist

/// Canonical pattern names: lowercase labels of letters, digits, `_` and inner `-`.
pub fn pattern_name() -> impl Strategy<Value = String> {
    let label = "[a-z0-9_]([a-z0-9_-]{0,10}[a-z0-9_])?";
    prop_oneof![
        6 => proptest::collection::vec(label, 1..5).prop_map(|labels| labels.join(".")),
        1 => proptest::collection::vec("[a-z]{63}", 1..5).prop_map(|labels| {
            let mut name = labels.join(".");
            name.truncate(253);
            name.trim_end_matches('.').to_string()
        }),
    ]
}

pub fn pattern_kind() -> impl Strategy<Value = PatternKind> {
    prop_oneof![Just(PatternKind::Exact), Just(PatternKind::Below)]
}

/// Patterns in any order, with duplicates.
pub fn pattern_list(max: usize) -> impl Strategy<Value = Vec<(PatternKind, String)>> {
    proptest::collection::vec((pattern_kind(), pattern_name()), 0..=max).prop_flat_map(|list| {
        // Repeat some entries, so deduplication is exercised.
        let len = list.len();
        (Just(list), proptest::collection::vec(any::<prop::sample::Index>(), 0..=len.min(3))).prop_map(
            |(mut list, repeats)| {
                if !list.is_empty() {
                    for index in repeats {
                        let entry = list[index.index(list.len())].clone();
                        list.push(entry);
                    }
                }
                list
            },
        )
    })
}

/// The wire order and uniqueness the blocklist requires.
pub fn sorted_unique(list: &[(PatternKind, String)]) -> Vec<(PatternKind, String)> {
    let mut sorted = list.to_vec();
    sorted.sort_by(|a, b| (a.0 as u8, a.1.as_bytes()).cmp(&(b.0 as u8, b.1.as_bytes())));
    sorted.dedup();
    sorted
}

pub fn encode_patterns(list: &[(PatternKind, String)]) -> Vec<u8> {
    encode_blocklist_to_vec(list.iter().map(|(kind, name)| (*kind, name.as_bytes()))).unwrap()
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
    StreamEvents,
    Blocklist,
}

pub const KINDS: [Kind; 9] = [
    Kind::HelloRequest,
    Kind::HelloReply,
    Kind::Pended,
    Kind::Verdicts,
    Kind::Results,
    Kind::Stats,
    Kind::Config,
    Kind::StreamEvents,
    Kind::Blocklist,
];

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
        Kind::Stats => {
            let (snapshot, stream, device) = decode_stats(bytes)?;
            encode_stats(&snapshot, &stream, &device, &mut out)?
        }
        Kind::Config => encode_config(&decode_config(bytes)?, &mut out)?,
        Kind::StreamEvents => {
            let batch = decode_stream_events(bytes)?;
            let mut writer = StreamEventWriter::new(&mut out)?;
            for event in &batch {
                writer.push(&event)?;
            }
            assert_eq!(writer.count() as usize, batch.len());
            writer.finish()
        }
        Kind::Blocklist => {
            let list = decode_blocklist(bytes)?;
            assert_eq!(list.iter().count(), list.len());
            encode_blocklist(&list, &mut out)?
        }
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
    if let Ok(batch) = decode_stream_events(bytes) {
        assert_eq!(batch.iter().count(), batch.len());
        accepted += 1;
    }
    if let Ok(list) = decode_blocklist(bytes) {
        // Twice, as the driver does (size, then fill): the same patterns both times.
        assert!(list.iter().eq(list.iter()));
        assert_eq!(list.iter().count(), list.len());
        accepted += 1;
    }
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
        (stats(), stream_stats(), any::<u64>()).prop_map(|(s, st, r)| {
            let device = tollgate_protocol::DeviceStats { rejected_ioctls: r };
            (Kind::Stats, with(512, |b| encode_stats(&s, &st, &device, b)))
        }),
        valid_config().prop_map(|c| (Kind::Config, with(64, |b| encode_config(&c, b)))),
        proptest::collection::vec(flow_event(), 0..3).prop_map(|e| (Kind::StreamEvents, encode_events(&e))),
        pattern_list(6).prop_map(|p| (Kind::Blocklist, encode_patterns(&p))),
    ]
}
