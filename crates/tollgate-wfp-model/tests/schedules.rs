//! Random schedules of connection lifecycles, verdicts, teardowns, stream data, timeouts, service
//! loss and unload, run against Tollgate's driver logic on the model: never a bugcheck, a hazard or
//! a leak. The same kind of schedule crashes the naive driver (see `crashes.rs`, and the last test
//! here, which finds a crashing schedule for it by search).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use proptest::prelude::*;
use tollgate_core::{CoreConfig, PendId, RuntimeConfig, Ticks, Verdict};
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
        4 => (any::<usize>(), any::<bool>()).prop_map(|(pick, permit)| Op::Answer { pick, permit }),
        1 => any::<usize>().prop_map(|pick| Op::AnswerStale { pick }),
        3 => (any::<usize>(), any::<bool>(), 0..4_u8, 0..2_000_usize)
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
    run_driver(seed, ops, false)
}

fn run_driver(seed: u64, ops: &[Op], plant_ignore_teardown: bool) -> tollgate_wfp_model::EngineReport {
    let engine = Engine::new(EngineConfig { seed, deferred_flow_delete_percent: 50 });
    let config = CoreConfig {
        capacity: 64,
        cache_capacity: 64,
        runtime: RuntimeConfig { pend_timeout: Ticks::from_millis(2_000), max_pended: 16, ..RuntimeConfig::default() },
        ..CoreConfig::default()
    };
    let driver: Arc<TollgateDriver> = TollgateDriver::load(&engine, config).unwrap();
    if plant_ignore_teardown {
        driver.plant_ignore_teardown();
    }
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
                let data = vec![0x16_u8; len];
                let chain = if len % 3 == 0 { vec![Vec::new(), data, Vec::new()] } else { vec![data] };
                engine.send(conns[pick % conns.len()], outbound, chain, shape(s));
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
        let report = run_driver(seed, &ops, true);
        prop_assert_eq!(report.bugcheck.map(|b| b.stop.code()), None);
        Ok(())
    });
    let failure = result.expect_err("the planted bug must be found");
    assert!(format!("{failure}").contains("Some(80)"), "expected 0x50 (80): {failure}");
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
