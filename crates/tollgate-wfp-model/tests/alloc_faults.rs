//! Allocation failure (the reliability issue, part 2): a failing global allocator makes the Nth
//! allocation return NULL, and the test walks N over every allocation the driver makes
//!
//! - while loading (the core's table, index, verdict cache and closure bookkeeping, then the
//!   stream callout's flow table, reassembly pool and event queue): each failure must fail the
//!   load cleanly — nothing registered with the engine, every byte allocated so far freed;
//! - while running (the app-path copy in classifyFn, the driver's one allocation after start,
//!   `crates/tollgate-core/tests/no_allocation.rs`): each failure must give that connection the
//!   default verdict, and the run must end without a bugcheck, hazard or leak.
//!
//! The model's own bookkeeping (the engine, the test's workload) allocates infallibly, as
//! `std` does, and is not the driver: during the scenario only UTF-16 buffers (alignment 2) are
//! failed, and a counting pass checks that those are exactly the driver's app-path copies.
//!
//! Failure is counted per thread (the test harness allocates on its own threads meanwhile), so
//! this file is its own test binary and its tests take a lock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};

use tollgate_core::stream::{FlowTable, FlowTableConfig};
use tollgate_core::{CoreConfig, CoreError, RuntimeConfig, Ticks, Verdict};
use tollgate_inspect::samples::HelloBuilder;
use tollgate_test_alloc::{Seen, TestAllocator, Watch, watch};
use tollgate_wfp_model::drivers::tollgate::{FLOW_CAPACITY, LoadError, TollgateDriver};
use tollgate_wfp_model::platform::{ModelPlatform, ModelRundown, ModelSpinLock};
use tollgate_wfp_model::{CloseKind, ConnectionValues, Engine, EngineConfig, Protocol, StreamShape, connection_values};

#[global_allocator]
static GLOBAL: TestAllocator = TestAllocator;

static SERIAL: Mutex<()> = Mutex::new(());

fn core_config() -> CoreConfig {
    CoreConfig {
        capacity: 64,
        cache_capacity: 256,
        runtime: RuntimeConfig {
            default_verdict: Verdict::Block,
            pend_timeout: Ticks::from_millis(2_000),
            max_pended: 64,
        },
        ..CoreConfig::default()
    }
}

fn stream_config() -> FlowTableConfig {
    FlowTableConfig { flows: FLOW_CAPACITY, ..FlowTableConfig::default() }
}

#[test]
fn a_load_whose_allocation_fails_fails_cleanly() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // How many allocations the driver's own state takes: the core, then the flow table (the
    // model's DriverEntry allocates them first, before anything is registered).
    let engine = Engine::new(EngineConfig::default());
    let ((), counted) = watch(Watch::count(), || {
        let core = tollgate_core::Core::new(
            ModelPlatform::new(engine.clone()),
            ModelRundown::new(engine.clone()),
            core_config(),
        )
        .unwrap();
        let flows = FlowTable::<ModelSpinLock>::new(stream_config()).unwrap();
        drop((core, flows));
    });
    let total = counted.allocations;
    assert!(total > 60, "the core and the flow table allocate at load: {total}");
    assert_eq!(counted.net_bytes, 0);

    let mut outcomes = std::collections::BTreeMap::new();
    for n in 1..=total {
        let engine = Engine::new(EngineConfig::default());
        let (result, plan) =
            watch(Watch::fail_at(n), || TollgateDriver::load_with(&engine, core_config(), stream_config()).err());
        assert_eq!(plan.failed, 1, "allocation {n} was not reached");
        let error = result.unwrap_or_else(|| panic!("allocation {n} failed, yet the load succeeded"));
        assert!(
            matches!(error, LoadError::Core(CoreError::OutOfMemory) | LoadError::FlowTable),
            "allocation {n}: {error:?}"
        );
        assert_eq!(plan.net_bytes, 0, "allocation {n}: the failed load leaked {} bytes", plan.net_bytes);
        assert_eq!((engine.registered_callouts(), engine.filter_count()), (0, 0), "allocation {n}");
        engine.driver_unloaded();
        let report = engine.report();
        assert!(report.bugcheck.is_none() && report.leaks.is_empty(), "allocation {n}: {report:?}");
        *outcomes.entry(format!("{error:?}")).or_insert(0) += 1;
    }
    println!("load: {total} allocations, each failed in turn: {outcomes:?}");
}

fn values(protocol: Protocol, n: u16) -> ConnectionValues {
    connection_values(
        protocol,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 50_000 + n)),
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(93, 184, 216, n as u8), 443)),
        r"\device\harddiskvolume3\program files\app\app.exe",
        4242,
    )
}

/// What a run of the scenario left.
struct Run {
    report: tollgate_wfp_model::EngineReport,
    stats: tollgate_core::StatsSnapshot,
    live_after_unload: (u32, usize, usize),
}

/// Connections answered, a TLS flow identified, a teardown mid-pend, a timeout, then the service
/// stops and the driver unloads, with UTF-16 allocation number `fail_at` failing (0: none).
/// Everything the workload needs is built before the allocator is armed, so that the only UTF-16
/// allocations while it is are the driver's.
fn scenario(fail_at: u64) -> (Run, Seen) {
    let engine = Engine::new(EngineConfig { seed: 3, deferred_flow_delete_percent: 50 });
    let driver: Arc<TollgateDriver> = TollgateDriver::load(&engine, core_config()).unwrap();
    driver.core().attach_service().unwrap();
    let conns: Vec<ConnectionValues> =
        (1..=6).map(|n| values(if n == 5 { Protocol::Udp } else { Protocol::Tcp }, n)).collect();
    let hello = HelloBuilder::chrome_like(b"www.example.com", 1).record();
    let answer = || {
        let mut ids = Vec::with_capacity(64);
        loop {
            ids.clear();
            driver.core().deliver_pending(64, |p| {
                ids.push(p.id);
                true
            });
            if ids.is_empty() {
                return;
            }
            for id in &ids {
                let _ = driver.core().apply_verdict(*id, Verdict::Permit);
            }
            engine.pump();
        }
    };
    watch(Watch { only_align: 2, fail_at }, || {
        let mut opened = Vec::new();
        for (i, values) in conns.iter().enumerate() {
            let conn = engine.open(values.clone());
            opened.push(conn);
            match i {
                // Torn down while pended.
                3 => {
                    engine.close(conn, CloseKind::ProcessKill);
                }
                // Left to time out.
                4 => {
                    engine.advance_to(engine.now().saturating_add(Ticks::from_millis(2_500)));
                    driver.run_timer();
                }
                _ => answer(),
            }
            engine.pump();
            if i == 0 {
                engine.send(conn, true, vec![hello.clone()], StreamShape::Normal);
            }
        }
        driver.core().detach_service();
        engine.pump();
        let _ = driver.unload(&engine);
        engine.pump();
        engine.driver_unloaded();
        for conn in opened {
            engine.close(conn, CloseKind::Reset);
        }
        engine.pump();
        Run {
            report: engine.report(),
            stats: driver.core().stats(),
            live_after_unload: (
                driver.core().live_entries(),
                driver.flows().live_count(),
                driver.flows().total_buffers() - driver.flows().free_buffers(),
            ),
        }
    })
}

#[test]
fn a_failed_app_path_copy_gives_the_default_verdict() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (clean, counted) = scenario(0);
    let stats = clean.stats;
    assert!(clean.report.bugcheck.is_none() && clean.report.hazards.is_empty() && clean.report.leaks.is_empty());
    // Every UTF-16 allocation in the run is a driver's app-path copy: one per classify that got
    // past the reauthorization check (pended, or decided inline after the copy).
    let copies = stats.pended + stats.inline_pend_failed + stats.inline_no_service + stats.inline_cap_reached;
    assert_eq!(counted.allocations, copies, "{stats:?}");
    assert!(copies >= 8, "{stats:?}");
    for n in 1..=counted.allocations {
        let (run, plan) = scenario(n);
        assert_eq!(plan.failed, 1, "copy {n} was not reached");
        let stats = run.stats;
        assert!(run.report.bugcheck.is_none(), "copy {n}: {:?}", run.report.bugcheck);
        assert!(run.report.hazards.is_empty() && run.report.leaks.is_empty(), "copy {n}: {:?}", run.report);
        assert_eq!(stats.inline_alloc_failed, 1, "copy {n}: {stats:?}");
        // The service permits everything; a connection is blocked exactly where the default
        // verdict had to be used: the failed copy, the timeout, and nothing else.
        let defaults = stats.inline_alloc_failed
            + stats.inline_pend_failed
            + stats.inline_no_service
            + stats.inline_cap_reached
            + stats.completed_by_timeout
            + stats.completed_by_cleanup;
        assert_eq!(run.report.counters.blocked, defaults, "copy {n}: {stats:?}");
        assert_eq!(run.report.counters.pends, run.report.counters.completions, "copy {n}");
        assert_eq!(run.live_after_unload, (0, 0, 0), "copy {n}");
    }
    println!("app-path copies: {}, each failed in turn", counted.allocations);
}
