//! Random schedules of connection lifecycles, verdicts, teardowns, stream data, timeouts, service
//! loss and unload, run against Tollgate's driver logic on the model: never a bugcheck, a hazard or
//! a leak. The same kind of schedule crashes the naive driver (see `crashes.rs`, and the last test
//! here, which finds a crashing schedule for it by search).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use tollgate_core::stream::DomainSet;
use tollgate_core::{CoreConfig, PendId, RuntimeConfig, Ticks, Verdict};
use tollgate_inspect::name::PatternKind;
use tollgate_inspect::samples::{HelloBuilder, http_request};
use tollgate_wfp_model::drivers::naive::NaiveDriver;
use tollgate_wfp_model::drivers::tollgate::TollgateDriver;
use tollgate_wfp_model::{CloseKind, ConnId, Engine, EngineConfig, Protocol, StreamShape, connection_values};

#[derive(Clone, Debug)]
enum Op {
    Open { udp: bool, v6: bool },
    Close { pick: usize, kind: u8 },
    Answer { pick: usize, permit: bool },
    AnswerStale { pick: usize },
    Send { pick: usize, outbound: bool, shape: u8, len: usize },
    Advance { millis: u64 },
    Timer,
    ServiceRestart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>()).prop_map(|(udp, v6)| Op::Open { udp, v6 }),
        3 => (any::<usize>(), 0..3_u8).prop_map(|(pick, kind)| Op::Close { pick, kind }),
        // Mostly permits: the stream callout only sees connections that were allowed.
        5 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(pick, permit)| Op::Answer { pick, permit }),
        1 => any::<usize>().prop_map(|pick| Op::AnswerStale { pick }),
        5 => (any::<usize>(), any::<bool>(), 0..4_u8, 0..2_000_usize)
            .prop_map(|(pick, outbound, shape, len)| Op::Send { pick, outbound, shape, len }),
        2 => (0..3_000_u64).prop_map(|millis| Op::Advance { millis }),
        2 => Just(Op::Timer),
        1 => Just(Op::ServiceRestart),
    ]
}

fn values(n: u64, udp: bool, v6: bool) -> tollgate_wfp_model::ConnectionValues {
    let (local, remote) = if v6 {
        (
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 40_000 + (n % 20_000) as u16),
            SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n as u16).into(), 443),
        )
    } else {
        (
            SocketAddr::new(Ipv4Addr::new(10, 0, 0, 2).into(), 40_000 + (n % 20_000) as u16),
            SocketAddr::new(Ipv4Addr::new(93, 184, (n >> 8) as u8, n as u8).into(), 443),
        )
    };
    let protocol = if udp { Protocol::Udp } else { Protocol::Tcp };
    connection_values(protocol, local, remote, r"\device\harddiskvolume3\app.exe", 100 + n % 7)
}

/// What a connection's client sends, cut into whatever pieces the schedule's `Send`s take: a
/// browser-like ClientHello or an HTTP request for a blocked or an allowed name, or filler bytes.
fn client_bytes(conn_index: usize) -> Vec<u8> {
    let name: &[u8] = if conn_index.is_multiple_of(2) { b"www.blocked.example" } else { b"fine.example" };
    match conn_index % 5 {
        0 | 1 => HelloBuilder::chrome_like(name, conn_index as u64 + 1).record(),
        2 => HelloBuilder::library_like(name, &[b"h2"], conn_index as u64 + 1).record(),
        3 => http_request("GET", "/", std::str::from_utf8(name).unwrap()),
        _ => vec![0x16; 3_000],
    }
}

fn shape(n: u8) -> StreamShape {
    match n {
        0 => StreamShape::NullLayerData,
        1 => StreamShape::NullStreamData,
        _ => StreamShape::Normal,
    }
}

fn kind(n: u8) -> CloseKind {
    match n {
        0 => CloseKind::Graceful,
        1 => CloseKind::Reset,
        _ => CloseKind::ProcessKill,
    }
}

/// Runs `ops` on Tollgate and returns the engine's final report.
fn run_tollgate(seed: u64, ops: &[Op]) -> tollgate_wfp_model::EngineReport {
    run_driver(seed, ops, Planted::None)
}

/// A bug planted in Tollgate's shim, to show the property finds it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Planted {
    None,
    /// Teardown notifications ignored (the pend/teardown race).
    IgnoreTeardown,
    /// The previous indication's streamData kept and read again (the stream crash).
    KeepStreamData,
}

fn run_driver(seed: u64, ops: &[Op], planted: Planted) -> tollgate_wfp_model::EngineReport {
    let engine = Engine::new(EngineConfig { seed, deferred_flow_delete_percent: 50 });
    let config = CoreConfig {
        capacity: 64,
        cache_capacity: 64,
        runtime: RuntimeConfig { pend_timeout: Ticks::from_millis(2_000), max_pended: 16, ..RuntimeConfig::default() },
        ..CoreConfig::default()
    };
    let driver: Arc<TollgateDriver> = TollgateDriver::load(&engine, config).unwrap();
    match planted {
        Planted::None => {}
        Planted::IgnoreTeardown => driver.plant_ignore_teardown(),
        Planted::KeepStreamData => driver.plant_keep_stream_data(),
    }
    let blocked = DomainSet::build([(PatternKind::Below, &b"blocked.example"[..])]).unwrap();
    driver.blocklist().replace(blocked).unwrap();
    // Where each connection's client stream is: what it sends next.
    let mut cursors: HashMap<usize, usize> = HashMap::new();
    driver.core().attach_service().unwrap();
    let mut conns: Vec<ConnId> = Vec::new();
    let mut delivered: Vec<PendId> = Vec::new();
    let mut answered: Vec<PendId> = Vec::new();
    let mut opened = 0_u64;
    for op in ops {
        match *op {
            Op::Open { udp, v6 } => {
                opened += 1;
                conns.push(engine.open(values(opened, udp, v6)));
            }
            Op::Close { pick, kind: k } if !conns.is_empty() => {
                engine.close(conns[pick % conns.len()], kind(k));
            }
            Op::Answer { pick, permit } => {
                driver.core().deliver_pending(usize::MAX, |p| {
                    delivered.push(p.id);
                    true
                });
                if !delivered.is_empty() {
                    let id = delivered.swap_remove(pick % delivered.len());
                    let verdict = if permit { Verdict::Permit } else { Verdict::Block };
                    let _ = driver.core().apply_verdict(id, verdict);
                    answered.push(id);
                }
            }
            Op::AnswerStale { pick } if !answered.is_empty() => {
                // A duplicate or late verdict: must be rejected, never completed again.
                assert!(driver.core().apply_verdict(answered[pick % answered.len()], Verdict::Permit).is_err());
            }
            Op::Send { pick, outbound, shape: s, len } if !conns.is_empty() => {
                let index = pick % conns.len();
                let data = if outbound {
                    // The next piece of this connection's client stream (filler once it is sent).
                    let stream = client_bytes(index);
                    let at = cursors.entry(index).or_insert(0);
                    let piece = stream.get(*at..(*at + len).min(stream.len())).unwrap_or_default().to_vec();
                    *at += piece.len();
                    if piece.is_empty() { vec![0x17; len] } else { piece }
                } else {
                    vec![0x16_u8; len]
                };
                let chain = if len % 3 == 0 {
                    let (a, b) = data.split_at(data.len() / 2);
                    vec![Vec::new(), a.to_vec(), Vec::new(), b.to_vec()]
                } else {
                    vec![data]
                };
                engine.send(conns[index], outbound, chain, shape(s));
            }
            Op::Advance { millis } => engine.advance_to(engine.now().saturating_add(Ticks::from_millis(millis))),
            Op::Timer => {
                driver.run_timer();
            }
            Op::ServiceRestart => {
                driver.core().detach_service();
                delivered.clear();
                driver.core().attach_service().unwrap();
            }
            _ => {}
        }
        engine.pump();
        driver.run_timer();
        engine.pump();
        if engine.halted() {
            return engine.report();
        }
    }
    driver.core().detach_service();
    engine.pump();
    driver.unload(&engine);
    engine.pump();
    engine.driver_unloaded();
    for conn in conns {
        engine.close(conn, CloseKind::Reset);
    }
    engine.pump();
    engine.report()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tollgate_never_crashes_hazards_or_leaks(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..120)) {
        let report = run_tollgate(seed, &ops);
        prop_assert_eq!(report.bugcheck.clone(), None, "{:?}", report);
        prop_assert!(report.hazards.is_empty(), "{:?}", report.hazards);
        prop_assert!(report.leaks.is_empty(), "{:?}", report.leaks);
    }
}

/// The property above is not vacuous: with the naive driver's bug planted in Tollgate's shim
/// (teardown notifications ignored), the same search finds a schedule that bugchecks 0x50.
#[test]
fn the_schedule_property_catches_a_shim_that_ignores_teardown() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 256, ..ProptestConfig::default() });
    let strategy = (any::<u64>(), prop::collection::vec(op(), 1..120));
    let result = runner.run(&strategy, |(seed, ops)| {
        let report = run_driver(seed, &ops, Planted::IgnoreTeardown);
        prop_assert_eq!(report.bugcheck.map(|b| b.stop.code()), None);
        Ok(())
    });
    let failure = result.expect_err("the planted bug must be found");
    assert!(format!("{failure}").contains("Some(80)"), "expected 0x50 (80): {failure}");
}

/// And with the stream crash's bug planted (the shim reads the previous indication's streamData),
/// the same search finds a schedule that bugchecks 0xD1 in NETIO.
#[test]
fn the_schedule_property_catches_a_shim_that_keeps_stream_data() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 256, ..ProptestConfig::default() });
    let strategy = (any::<u64>(), prop::collection::vec(op(), 1..120));
    let result = runner.run(&strategy, |(seed, ops)| {
        let report = run_driver(seed, &ops, Planted::KeepStreamData);
        prop_assert_eq!(report.bugcheck.map(|b| b.stop.code()), None);
        Ok(())
    });
    let failure = result.expect_err("the planted bug must be found");
    assert!(format!("{failure}").contains("Some(209)"), "expected 0xD1 (209): {failure}");
}

/// The naive driver under random schedules of the same shape: a search finds a crashing one
/// quickly (the pend/teardown race needs only open, close, answer).
#[test]
fn the_naive_driver_crashes_under_random_schedules() {
    let mut crashed = 0;
    for seed in 0..64_u64 {
        let engine = Engine::new(EngineConfig { seed, deferred_flow_delete_percent: 50 });
        let naive = NaiveDriver::load(&engine);
        let mut conns = Vec::new();
        let mut pended = Vec::new();
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for step in 0..200_u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 4 {
                0 => conns.push(engine.open(values(step, false, false))),
                1 if !conns.is_empty() => {
                    engine.close(conns[(x as usize / 4) % conns.len()], CloseKind::Reset);
                }
                2 => pended.extend(naive.take_pended(8)),
                _ if !pended.is_empty() => {
                    let p = pended.swap_remove((x as usize / 4) % pended.len());
                    naive.answer(&engine, p.id, true);
                }
                _ => {}
            }
            engine.pump();
            if engine.halted() {
                break;
            }
        }
        if let Some(bugcheck) = engine.bugcheck() {
            assert_eq!(bugcheck.stop.code(), 0x50, "{bugcheck}");
            crashed += 1;
        }
    }
    assert!(crashed > 32, "only {crashed}/64 random schedules crashed the naive driver");
}

/// The property is not vacuous for the stream callout either: its schedules identify flows from
/// pieces of real ClientHellos and requests, and drop the blocked ones.
#[test]
fn the_schedules_reach_identification_and_drops() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (any::<u64>(), prop::collection::vec(op(), 60..120));
    let (mut drops, mut allowed_through) = (0, 0);
    for _ in 0..64 {
        let (seed, ops) = strategy.new_tree(&mut runner).unwrap().current();
        let report = run_tollgate(seed, &ops);
        drops += report.counters.stream_drops;
        allowed_through += report.counters.stream_indications_allowed_through;
    }
    assert!(drops > 0, "no schedule dropped a blocked name");
    assert!(allowed_through > 0, "no schedule reached ALLOW_CONNECTION");
}
