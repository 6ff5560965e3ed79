//! Fault injection (the reliability issue, part 2): a realistic scenario is run once to count its
//! fallible `Fwps*` calls, then once more per call with exactly that call failing (the status its
//! documentation gives: see `tollgate_wfp_model::faults`), then once per call with that call and
//! every later one failing. Every run must end with no bugcheck, no hazard and no leak (the
//! engine's oracles: every pend completed exactly once and never after its endpoint's teardown,
//! every classify handle released, every flow context removed, every callout unregistered), with
//! the default verdict for exactly the connections whose verdict could not be obtained, and with
//! the driver's own tables empty after unload.
//!
//! The Fwpm* half of registration (engine open, transaction, provider, sublayer, callouts,
//! filters: 41 calls) is walked the same way by the fake engine of
//! `crates/tollgate-callouts/tests/registration.rs`; the model's registration is its six
//! `FwpsCalloutRegister3` calls, walked here.
//!
//! The walk is not vacuous: the last tests plant a leaked classify handle and a leaked flow entry
//! (feature `planted-bugs`) and the walk finds both; and the unload-order test shows the race
//! hook catching a teardown that lands between filter deletion and the pend sweep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use tollgate_core::stream::{DomainSet, StreamStats};
use tollgate_core::{CoreConfig, RuntimeConfig, StatsSnapshot, Ticks, Verdict};
use tollgate_inspect::name::PatternKind;
use tollgate_inspect::samples::{HelloBuilder, http_request};
use tollgate_wfp_model::drivers::tollgate::{LoadError, TollgateDriver, UnloadReport};
use tollgate_wfp_model::{
    CloseKind, ConnId, Engine, EngineConfig, EngineReport, FaultPlan, FwpsCall, InjectedFault, Protocol, StreamShape,
    connection_values,
};

/// A known bug to plant for the walk to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Planted {
    None,
    /// The classify handle is not released when `FwpsPendClassify0` fails.
    LeakClassifyHandle,
    /// A flow whose context could not be associated stays in the flow table.
    KeepUnassociatedFlow,
}

/// What one run left behind.
#[derive(Debug)]
struct Run {
    load: Result<(), LoadError>,
    report: EngineReport,
    calls: Vec<FwpsCall>,
    injected: Vec<InjectedFault>,
    stats: Option<StatsSnapshot>,
    stream: Option<StreamStats>,
    unload: Option<UnloadReport>,
    /// After unload: pend-table entries, tracked flows, buffers out of the pool.
    live_entries: u32,
    live_flows: usize,
    buffers_missing: usize,
    callouts_left: usize,
    filters_left: usize,
}

fn values(protocol: Protocol, n: u16) -> tollgate_wfp_model::ConnectionValues {
    connection_values(
        protocol,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 50_000 + n)),
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(93, 184, 216, n as u8), 443)),
        r"\device\harddiskvolume3\program files\app\app.exe",
        4242,
    )
}

/// The verdict service: permits everything it is shown, until nothing is pended.
fn answer_all(engine: &Engine, driver: &TollgateDriver) {
    loop {
        let mut ids = Vec::new();
        driver.core().deliver_pending(usize::MAX, |p| {
            ids.push(p.id);
            true
        });
        if ids.is_empty() {
            return;
        }
        for id in ids {
            let _ = driver.core().apply_verdict(id, Verdict::Permit);
        }
        engine.pump();
        driver.run_timer();
        engine.pump();
    }
}

fn settle(engine: &Engine, driver: &TollgateDriver) {
    engine.pump();
    driver.run_timer();
    engine.pump();
}

/// The scenario: connections pended and answered (bind, then connect), a TLS flow identified, an
/// HTTP flow dropped by the domain blocklist, a pend that times out, a pend torn down by a process
/// kill, a teardown on another processor while a completion returns (the closure notification
/// is pended with a classify handle), a service restart with a pend outstanding, a graceful close
/// of an inspected flow, then the service stops and the driver unloads with a flow mid-inspection,
/// and the remaining connections close.
fn scenario(plan: FaultPlan, planted: Planted) -> Run {
    let engine = Engine::new(EngineConfig { seed: 7, deferred_flow_delete_percent: 50 });
    engine.set_fault_plan(plan);
    let config = CoreConfig {
        capacity: 16,
        cache_capacity: 64,
        // The in-flight completion of the race below is on the same simulated processor, so a
        // teardown that cannot pend its notification spins to this bound and gives up.
        teardown_spin_limit: 1_000,
        runtime: RuntimeConfig {
            default_verdict: Verdict::Block,
            pend_timeout: Ticks::from_millis(2_000),
            max_pended: 16,
        },
        ..CoreConfig::default()
    };
    let driver: Arc<TollgateDriver> = match TollgateDriver::load(&engine, config) {
        Ok(driver) => driver,
        Err(error) => {
            // DriverEntry failed: the image is unloaded at once.
            engine.driver_unloaded();
            return Run {
                load: Err(error),
                report: engine.report(),
                calls: engine.fallible_calls(),
                injected: engine.injected_faults(),
                stats: None,
                stream: None,
                unload: None,
                live_entries: 0,
                live_flows: 0,
                buffers_missing: 0,
                callouts_left: engine.registered_callouts(),
                filters_left: engine.filter_count(),
            };
        }
    };
    match planted {
        Planted::None => {}
        Planted::LeakClassifyHandle => driver.core().platform().plant_leak_classify_handle(),
        Planted::KeepUnassociatedFlow => driver.plant_keep_unassociated_flow(),
    }
    driver.blocklist().replace(DomainSet::build([(PatternKind::Below, &b"blocked.example"[..])]).unwrap()).unwrap();
    driver.core().attach_service().unwrap();
    let mut open: Vec<ConnId> = Vec::new();

    // A TLS flow to an allowed name: pended twice, answered, identified.
    let a = engine.open(values(Protocol::Tcp, 1));
    answer_all(&engine, &driver);
    engine.send(a, true, vec![HelloBuilder::chrome_like(b"www.fine.example", 1).record()], StreamShape::Normal);
    settle(&engine, &driver);
    open.push(a);

    // An HTTP flow to a blocked name: dropped inline (DROP_CONNECTION), the connection reset.
    let b = engine.open(values(Protocol::Tcp, 2));
    answer_all(&engine, &driver);
    engine.send(b, true, vec![http_request("GET", "/", "ads.blocked.example")], StreamShape::Normal);
    settle(&engine, &driver);

    // A UDP pend nobody answers: the default verdict after the timeout.
    let c = engine.open(values(Protocol::Udp, 3));
    engine.advance_to(engine.now().saturating_add(Ticks::from_millis(2_500)));
    settle(&engine, &driver);
    open.push(c);

    // A pend torn down by a process kill.
    let d = engine.open(values(Protocol::Tcp, 4));
    engine.close(d, CloseKind::ProcessKill);
    settle(&engine, &driver);

    // A teardown on another processor while the connect's completion returns.
    let e = engine.open(values(Protocol::Tcp, 5));
    let mut bind = Vec::new();
    driver.core().deliver_pending(usize::MAX, |p| {
        bind.push(p.id);
        true
    });
    for id in bind {
        let _ = driver.core().apply_verdict(id, Verdict::Permit);
    }
    engine.pump();
    engine.race_close_during_completion(e, CloseKind::Reset);
    answer_all(&engine, &driver);
    settle(&engine, &driver);

    // The service restarts with a pend outstanding: cleanup gives it the default verdict.
    let f = engine.open(values(Protocol::Tcp, 6));
    driver.core().detach_service();
    settle(&engine, &driver);
    driver.core().attach_service().unwrap();
    open.push(f);

    // The TLS flow closes gracefully (FIN, then flowDeleteFn).
    engine.close(a, CloseKind::Graceful);
    settle(&engine, &driver);

    // A flow still being inspected at unload (half a ClientHello: its buffer is out of the pool).
    let g = engine.open(values(Protocol::Tcp, 7));
    answer_all(&engine, &driver);
    let hello = HelloBuilder::chrome_like(b"www.slow.example", 2).record();
    engine.send(g, true, vec![hello[..100].to_vec()], StreamShape::Normal);
    settle(&engine, &driver);
    open.push(g);

    // The service stops, the driver unloads, the machine's connections close.
    driver.core().detach_service();
    settle(&engine, &driver);
    let unload = driver.unload(&engine);
    engine.pump();
    engine.driver_unloaded();
    for conn in open {
        engine.close(conn, CloseKind::Reset);
    }
    engine.pump();
    Run {
        load: Ok(()),
        report: engine.report(),
        calls: engine.fallible_calls(),
        injected: engine.injected_faults(),
        stats: Some(driver.core().stats()),
        stream: Some(driver.flows().stats(driver.blocklist())),
        unload: Some(unload),
        live_entries: driver.core().live_entries(),
        live_flows: driver.flows().live_count(),
        buffers_missing: driver.flows().total_buffers() - driver.flows().free_buffers(),
        callouts_left: engine.registered_callouts(),
        filters_left: engine.filter_count(),
    }
}

/// What every run must show, whatever failed. Returns the problems found (empty: none).
fn problems(run: &Run) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(bugcheck) = &run.report.bugcheck {
        found.push(format!("bugcheck: {bugcheck}"));
    }
    found.extend(run.report.hazards.iter().map(|h| format!("hazard: {h:?}")));
    found.extend(run.report.leaks.iter().map(|l| format!("leak: {l}")));
    if run.callouts_left != 0 || run.filters_left != 0 {
        found.push(format!("{} callout(s) and {} filter(s) left registered", run.callouts_left, run.filters_left));
    }
    if run.live_entries != 0 || run.live_flows != 0 || run.buffers_missing != 0 {
        found.push(format!(
            "driver tables not empty after unload: {} pend entries, {} flows, {} buffers out of the pool",
            run.live_entries, run.live_flows, run.buffers_missing
        ));
    }
    let counters = run.report.counters;
    if counters.pends != counters.completions {
        found.push(format!("{} pends but {} completions", counters.pends, counters.completions));
    }
    if let Some(stats) = run.stats {
        // The service permits everything and the default verdict is block: a connection is
        // blocked exactly when its verdict could not be obtained, once per such decision.
        let defaults = stats.inline_pend_failed
            + stats.inline_no_service
            + stats.inline_cap_reached
            + stats.inline_alloc_failed
            + stats.completed_by_timeout
            + stats.completed_by_cleanup;
        if counters.blocked != defaults {
            found.push(format!("{} connections blocked, but {defaults} default-verdict decisions", counters.blocked));
        }
        if stats.reauth_misses != 0 {
            found.push(format!("{} reauthorizations found no verdict (S8)", stats.reauth_misses));
        }
        let resolved = stats.completed_by_verdict
            + stats.completed_by_teardown
            + stats.completed_by_timeout
            + stats.completed_by_cleanup
            + stats.completed_by_unload;
        if stats.pended != resolved || stats.pended != counters.pends {
            found.push(format!("core: {} pended, {resolved} resolved, engine: {} pends", stats.pended, counters.pends));
        }
    }
    found
}

/// What an injected failure of `call` must have led to (so that a fault that changed nothing
/// cannot pass for a handled one).
fn consequence(run: &Run, fault: InjectedFault) -> Result<(), String> {
    let stats = run.stats;
    let ok = match fault.call {
        FwpsCall::CalloutRegister => run.load == Err(LoadError::Register(fault.status)),
        FwpsCall::PendOperation => stats.is_some_and(|s| s.inline_pend_failed >= 1),
        FwpsCall::AcquireClassifyHandle | FwpsCall::PendClassify => {
            stats.is_some_and(|s| s.teardown_gave_up >= 1 && s.closures_completed == 0)
        }
        FwpsCall::FlowAssociateContext => run.stream.is_some_and(|s| s.flows_untracked >= 1),
        FwpsCall::FlowRemoveContext => run.unload.is_some_and(|u| u.unregister_retries >= 1),
    };
    if ok { Ok(()) } else { Err(format!("{fault:?} had no visible consequence: {run:#?}")) }
}

fn count_by_kind(calls: &[FwpsCall]) -> BTreeMap<FwpsCall, usize> {
    let mut counts = BTreeMap::new();
    for call in calls {
        *counts.entry(*call).or_insert(0) += 1;
    }
    counts
}

#[test]
fn the_scenario_is_clean_and_reaches_every_fallible_call() {
    let run = scenario(FaultPlan::Never, Planted::None);
    assert_eq!(problems(&run), Vec::<String>::new());
    let counts = count_by_kind(&run.calls);
    for call in FwpsCall::ALL {
        assert!(counts.get(&call).copied().unwrap_or(0) > 0, "the scenario never calls {}: {counts:?}", call.name());
    }
    let stats = run.stats.unwrap();
    // It reaches what it says it does.
    assert!(stats.completed_by_verdict >= 8, "{stats:?}");
    assert_eq!((stats.completed_by_timeout, stats.completed_by_cleanup, stats.completed_by_teardown), (1, 1, 1));
    assert_eq!(stats.closures_completed, 1, "the closure notification was pended and completed");
    let stream = run.stream.unwrap();
    assert_eq!((stream.flows_dropped, stream.flows_named), (1, 2), "{stream:?}");
    assert!(run.unload.unwrap().flow_contexts_removed >= 1);
    println!("{} fallible calls: {counts:?}", run.calls.len());
}

/// Fails each fallible call in turn, alone.
#[test]
fn failing_each_fallible_call_in_turn_is_survived() {
    let total = scenario(FaultPlan::Never, Planted::None).calls.len() as u64;
    let mut failures = Vec::new();
    let mut walked: BTreeMap<FwpsCall, usize> = BTreeMap::new();
    for n in 1..=total {
        let run = scenario(FaultPlan::Nth(n), Planted::None);
        assert_eq!(run.injected.len(), 1, "call {n}: {:?}", run.injected);
        let fault = run.injected[0];
        *walked.entry(fault.call).or_insert(0) += 1;
        let mut found = problems(&run);
        if let Err(problem) = consequence(&run, fault) {
            found.push(problem);
        }
        if !found.is_empty() {
            failures.push(format!("call {n} ({}) failed with {:#x}: {found:?}", fault.call.name(), fault.status));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(walked.len(), FwpsCall::ALL.len(), "{walked:?}");
    println!("walked {total} call sites: {walked:?}");
}

/// Fails each fallible call and every one after it (resources stay short), except
/// `FwpsFlowRemoveContext0`: if that never succeeds again, no driver can unregister its stream
/// callout (see the next test and docs/security.md).
#[test]
fn failing_every_call_from_each_point_on_is_survived() {
    let total = scenario(FaultPlan::Never, Planted::None).calls.len() as u64;
    let mut failures = Vec::new();
    for n in 1..=total {
        let run = scenario(FaultPlan::FromNthExcept(n, FwpsCall::FlowRemoveContext), Planted::None);
        let found = problems(&run);
        if !found.is_empty() {
            failures.push(format!("from call {n} on: {found:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The limit, stated: when `FwpsFlowRemoveContext0` fails for good, unregistering the stream
/// callout stays `STATUS_DEVICE_BUSY`; the driver retries a bounded number of times and reports
/// the callout left registered — the image must then not be unloaded (the kernel's
/// `UnregisterError::is_safe_to_unload`). Nothing is completed twice or after teardown meanwhile.
#[test]
fn a_flow_context_that_can_never_be_removed_is_reported_not_hidden() {
    let run = scenario(FaultPlan::NthOf(FwpsCall::FlowRemoveContext, 1), Planted::None);
    assert_eq!(problems(&run), Vec::<String>::new(), "one failed removal is retried");
    let calls = scenario(FaultPlan::Never, Planted::None).calls;
    let first_removal = calls.iter().position(|c| *c == FwpsCall::FlowRemoveContext).unwrap() as u64 + 1;
    let run = scenario(FaultPlan::FromNth(first_removal), Planted::None);
    let found = problems(&run);
    assert!(run.unload.unwrap().unregister_retries > 1_000, "{run:#?}");
    assert!(run.callouts_left == 1 && found.iter().any(|p| p.contains("still registered")), "{found:?}");
    // Unloading the image anyway is what would crash (a flowDeleteFn into it, 0xCE): never a
    // double completion or a completion after teardown.
    let stop = run.report.bugcheck.map(|b| b.stop.code());
    assert!(stop.is_none() || stop == Some(0xCE), "{stop:?}");
}

/// The walk finds a leaked classify handle (planted: not released when `FwpsPendClassify0` fails).
#[test]
fn the_walk_catches_a_leaked_classify_handle() {
    let calls = scenario(FaultPlan::Never, Planted::None).calls;
    let caught: Vec<u64> = (1..=calls.len() as u64)
        .filter(|&n| !problems(&scenario(FaultPlan::Nth(n), Planted::LeakClassifyHandle)).is_empty())
        .collect();
    let pend_classify: Vec<u64> =
        (1..=calls.len() as u64).filter(|&n| calls[n as usize - 1] == FwpsCall::PendClassify).collect();
    assert_eq!(caught, pend_classify, "exactly the FwpsPendClassify0 failures expose the leak");
    let found = problems(&scenario(FaultPlan::Nth(pend_classify[0]), Planted::LeakClassifyHandle));
    assert!(found.iter().any(|p| p.contains("classify handle")), "{found:?}");
}

/// The walk finds a leaked flow entry (planted: kept after `FwpsFlowAssociateContext0` failed).
#[test]
fn the_walk_catches_a_flow_entry_kept_after_a_failed_associate() {
    let calls = scenario(FaultPlan::Never, Planted::None).calls;
    let caught: Vec<u64> = (1..=calls.len() as u64)
        .filter(|&n| !problems(&scenario(FaultPlan::Nth(n), Planted::KeepUnassociatedFlow)).is_empty())
        .collect();
    let associate: Vec<u64> =
        (1..=calls.len() as u64).filter(|&n| calls[n as usize - 1] == FwpsCall::FlowAssociateContext).collect();
    assert_eq!(caught, associate, "exactly the FwpsFlowAssociateContext0 failures expose the leak");
    let found = problems(&scenario(FaultPlan::Nth(associate[0]), Planted::KeepUnassociatedFlow));
    assert!(found.iter().any(|p| p.contains("flows")), "{found:?}");
}

/// A teardown on another processor at each point of the unload sequence (after each filter
/// deletion), with a connection still pended: its endpoint must never be completed after its
/// teardown notification — which is what happens if the pends are swept only after the filters
/// (and with them the teardown notifications) are gone.
#[test]
fn a_teardown_at_any_point_of_unload_is_survived() {
    let mut failures = Vec::new();
    for k in 1..=6_u64 {
        let engine = Engine::new(EngineConfig { seed: 7, deferred_flow_delete_percent: 50 });
        let driver = TollgateDriver::load(&engine, CoreConfig::default()).unwrap();
        driver.core().attach_service().unwrap();
        let established = engine.open(values(Protocol::Tcp, 1));
        answer_all(&engine, &driver);
        let pended = engine.open(values(Protocol::Tcp, 2));
        assert_eq!(driver.core().live_entries(), 1);
        engine.race_close_after_filter_deletes(k, pended, CloseKind::ProcessKill);
        let _ = driver.unload(&engine);
        engine.pump();
        engine.driver_unloaded();
        engine.close(established, CloseKind::Reset);
        engine.close(pended, CloseKind::Reset);
        engine.pump();
        let report = engine.report();
        if report.bugcheck.is_some() || !report.hazards.is_empty() || !report.leaks.is_empty() {
            failures.push(format!("teardown after filter deletion {k}: {report:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
