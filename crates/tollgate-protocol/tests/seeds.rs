//! Writes the fuzz targets' seed corpus (`fuzz/corpus/<target>/`): a few valid messages of each
//! kind, so that the fuzzers start past the header checks and deep inside each parser. Run on
//! purpose only: `cargo test -p tollgate-protocol --test seeds -- --ignored`.
//!
//! The `ioctl` and `respond_to_verdicts` targets take typed input (`arbitrary`, as libfuzzer-sys
//! decodes it with `arbitrary_take_rest`): integers little-endian in order, then the trailing
//! `Vec<u8>` as (continue-bit byte, value byte) pairs. [`take_rest_bytes`] writes that form, and
//! the test below checks that every seed it wrote for the other targets parses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use std::path::Path;

use common::{
    Kind, OwnedConn, any_message, encode_events, encode_patterns, encode_pended, encode_results, encode_verdicts,
    reencode, sample_event, with,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use tollgate_core::stream::StreamStats;
use tollgate_core::{Direction, PendId, PendLayer, RuntimeConfig, StatsSnapshot, Ticks, Verdict};
use tollgate_inspect::name::PatternKind;
use tollgate_protocol::{
    DriverLimits, HelloReply, HelloRequest, Ioctl, VerdictEntry, VerdictOutcome, VerdictResult, encode_config,
    encode_hello_reply, encode_hello_request, encode_stats,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// `Vec<u8>` as `arbitrary_take_rest` reads it (arbitrary 1.5): a continue byte (bit 0 set)
/// before each element.
fn take_rest_bytes(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().flat_map(|&b| [1_u8, b]).collect()
}

fn conn(id: u64, v6: bool, path: &str) -> OwnedConn {
    OwnedConn {
        id,
        layer: if v6 { PendLayer::ResourceAssignment } else { PendLayer::AuthConnect },
        protocol: if v6 { 17 } else { 6 },
        direction: Direction::Outbound,
        local: if v6 { "fe80::1".parse().unwrap() } else { "10.0.0.2".parse().unwrap() },
        local_port: 50_000,
        remote: if v6 { "2001:db8::7".parse().unwrap() } else { "93.184.216.34".parse().unwrap() },
        remote_port: 443,
        process_id: 4242,
        pended_at: 1_000_000,
        path: path.encode_utf16().collect(),
    }
}

/// Named seed files.
type Seeds = Vec<(String, Vec<u8>)>;

/// The seeds of each parsing target: (target, kind, seeds).
fn message_seeds() -> Vec<(&'static str, Kind, Seeds)> {
    let hello_request = with(64, |b| encode_hello_request(&HelloRequest::CURRENT, b));
    let hello_reply =
        with(64, |b| encode_hello_reply(&HelloReply::answer(&HelloRequest::CURRENT, DriverLimits::PROTOCOL), b));
    let pended = vec![
        ("empty".to_string(), encode_pended(&[])),
        ("one-v4".to_string(), encode_pended(&[conn(0x1_0000_0001, false, r"\device\harddiskvolume3\app.exe")])),
        (
            "two-mixed".to_string(),
            encode_pended(&[
                conn(0x2_0000_0003, true, r"\device\harddiskvolume3\program files\mozilla firefox\firefox.exe"),
                conn(0x1_0000_0004, false, ""),
            ]),
        ),
    ];
    let id = |n: u64| PendId::from_raw(n);
    let verdicts = vec![
        ("empty".to_string(), encode_verdicts(&[])),
        ("one".to_string(), encode_verdicts(&[VerdictEntry { id: id(0x1_0000_0001), verdict: Verdict::Permit }])),
        (
            "three".to_string(),
            encode_verdicts(&[
                VerdictEntry { id: id(0x1_0000_0001), verdict: Verdict::Permit },
                VerdictEntry { id: id(0x1_0000_0001), verdict: Verdict::Block },
                VerdictEntry { id: id(0xDEAD_0000_0003), verdict: Verdict::Block },
            ]),
        ),
    ];
    let results = vec![
        ("empty".to_string(), encode_results(&[])),
        (
            "each-result".to_string(),
            encode_results(
                &[
                    VerdictResult::Accepted,
                    VerdictResult::UnknownId,
                    VerdictResult::LateVerdict,
                    VerdictResult::BeingResolved,
                    VerdictResult::Unloading,
                ]
                .map(|result| VerdictOutcome { id: id(7), result }),
            ),
        ),
    ];
    let stats = with(512, |b| {
        encode_stats(
            &StatsSnapshot { pended: 10, completed_by_verdict: 9, peak_entries: 3, ..StatsSnapshot::default() },
            &StreamStats { flows_tracked: 5, flows_named: 4, blocklist_patterns: 2, ..StreamStats::default() },
            &tollgate_protocol::DeviceStats { rejected_ioctls: 1 },
            b,
        )
    });
    let config = |c: RuntimeConfig| with(64, |b| encode_config(&c, b));
    let configs = vec![
        ("default".to_string(), config(RuntimeConfig::default())),
        (
            "fail-open".to_string(),
            config(RuntimeConfig {
                default_verdict: Verdict::Permit,
                pend_timeout: Ticks::from_millis(750),
                max_pended: 32,
            }),
        ),
    ];
    let mut second = sample_event();
    second.endpoints.remote_address = "2001:db8::7".parse().unwrap();
    second.kind = tollgate_core::stream::FlowEventKind::Closed;
    let events = vec![
        ("empty".to_string(), encode_events(&[])),
        ("one".to_string(), encode_events(&[sample_event()])),
        ("two".to_string(), encode_events(&[sample_event(), second])),
    ];
    let patterns = |list: &[(PatternKind, &str)]| {
        encode_patterns(&list.iter().map(|(k, n)| (*k, (*n).to_string())).collect::<Vec<_>>())
    };
    let blocklists = vec![
        ("empty".to_string(), patterns(&[])),
        (
            "three".to_string(),
            patterns(&[
                (PatternKind::Exact, "tracker.example"),
                (PatternKind::Below, "ads.example"),
                (PatternKind::Below, "telemetry.mozilla.org"),
            ]),
        ),
    ];
    let mut seeds = vec![
        ("hello", Kind::HelloRequest, vec![("request".to_string(), hello_request)]),
        ("hello", Kind::HelloReply, vec![("reply".to_string(), hello_reply)]),
        ("pended_batch", Kind::Pended, pended),
        ("verdict_batch", Kind::Verdicts, verdicts),
        ("verdict_results", Kind::Results, results),
        ("stats", Kind::Stats, vec![("counters".to_string(), stats)]),
        ("config", Kind::Config, configs),
        ("stream_events", Kind::StreamEvents, events),
        ("blocklist", Kind::Blocklist, blocklists),
    ];
    // Plus a few random valid messages of each kind (deterministic runner: the same every time).
    let mut runner = TestRunner::deterministic();
    let mut random: Vec<(Kind, Vec<u8>)> = Vec::new();
    while random.len() < 60 {
        random.push(any_message().new_tree(&mut runner).unwrap().current());
    }
    for (target, kind, list) in &mut seeds {
        let extra: Vec<_> = random.iter().filter(|(k, _)| k == kind).take(2).collect();
        for (i, (_, bytes)) in extra.into_iter().enumerate() {
            // Stats, config and hello are fixed-size: one random one is plenty.
            if i > 0 && matches!(*target, "stats" | "config" | "hello") {
                continue;
            }
            list.push((format!("random-{i}"), bytes.clone()));
        }
    }
    seeds
}

/// Every seed of a parsing target is a valid message of its kind (so the fuzzers start inside).
#[test]
fn message_seeds_parse() {
    for (target, kind, list) in message_seeds() {
        for (name, bytes) in list {
            assert_eq!(reencode(kind, &bytes).as_deref(), Ok(&bytes[..]), "{target}/{name}");
        }
    }
}

#[test]
#[ignore = "writes files into fuzz/corpus; run on purpose"]
fn write_fuzz_seed_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, kind, list) in message_seeds() {
        for (name, bytes) in list {
            let name = if target == "hello" { format!("{kind:?}-{name}").to_lowercase() } else { name };
            write(&corpus.join(target), &name, &bytes);
        }
    }
    // ioctl: (code, input_len, output_len, bytes) for every IOCTL, with its minimum lengths and
    // a message of the kind it takes; and one unknown code.
    let verdict_batch =
        encode_verdicts(&[VerdictEntry { id: PendId::from_raw(0x1_0000_0001), verdict: Verdict::Permit }]);
    for ioctl in Ioctl::ALL {
        let input: Vec<u8> = match ioctl {
            Ioctl::Hello => with(64, |b| encode_hello_request(&HelloRequest::CURRENT, b)),
            Ioctl::SubmitVerdicts => verdict_batch.clone(),
            Ioctl::SetConfig => with(64, |b| encode_config(&RuntimeConfig::default(), b)),
            Ioctl::PushBlocklist => encode_patterns(&[(PatternKind::Below, "ads.example".to_string())]),
            _ => Vec::new(),
        };
        let output = match ioctl.check_lengths(input.len(), 0) {
            Err(tollgate_protocol::ProtocolError::BufferTooSmall { needed, .. }) => needed,
            _ => 0,
        };
        let mut seed = Vec::new();
        seed.extend_from_slice(&ioctl.code().to_le_bytes());
        seed.extend_from_slice(&(input.len() as u32).to_le_bytes());
        seed.extend_from_slice(&(output as u32).to_le_bytes());
        seed.extend_from_slice(&take_rest_bytes(&input));
        write(&corpus.join("ioctl"), &format!("{ioctl:?}").to_lowercase(), &seed);
    }
    let mut unknown = 0x0022_0000_u32.to_le_bytes().to_vec();
    unknown.extend_from_slice(&[0; 8]);
    write(&corpus.join("ioctl"), "unknown", &unknown);
    // respond_to_verdicts: (input_len, output_len, seed, system buffer) with a valid batch, with
    // the buffer as long as the input, and as long as a larger output.
    for (name, batch, output) in [
        ("one", verdict_batch.clone(), verdict_batch.len()),
        (
            "three-bigger-output",
            encode_verdicts(&[
                VerdictEntry { id: PendId::from_raw(1), verdict: Verdict::Permit },
                VerdictEntry { id: PendId::from_raw(1), verdict: Verdict::Block },
                VerdictEntry { id: PendId::from_raw(2), verdict: Verdict::Block },
            ]),
            128,
        ),
    ] {
        let mut buffer = batch.clone();
        buffer.resize(batch.len().max(output), 0);
        let mut seed = Vec::new();
        seed.extend_from_slice(&(batch.len() as u16).to_le_bytes());
        seed.extend_from_slice(&(output as u16).to_le_bytes());
        seed.push(1);
        seed.extend_from_slice(&take_rest_bytes(&buffer));
        write(&corpus.join("respond_to_verdicts"), name, &seed);
    }
}
