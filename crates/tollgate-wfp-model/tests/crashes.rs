//! The two crashes of ARCHITECTURE.md §1 (and the model's other oracles), reproduced with the naive
//! driver and survived by Tollgate's real driver logic under the same schedules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use tollgate_core::{CoreConfig, PendId, Verdict, VerdictError};
use tollgate_wfp_model::drivers::naive::NaiveDriver;
use tollgate_wfp_model::drivers::tollgate::TollgateDriver;
use tollgate_wfp_model::irql::{self, Irql};
use tollgate_wfp_model::{
    Action, CalloutDriver, ClassifyCall, ClassifyOut, CloseKind, ConnectionValues, Engine, EngineConfig, Layer, Phase,
    Protocol, StopCode, StreamShape, connection_values,
};

fn tcp(port: u16) -> ConnectionValues {
    connection_values(
        Protocol::Tcp,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 50_000 + port)),
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(93, 184, 216, 34), 443)),
        r"\device\harddiskvolume3\program files\app\app.exe",
        4242,
    )
}

fn tollgate(engine: &Arc<Engine>) -> Arc<TollgateDriver> {
    let driver = TollgateDriver::load(engine, CoreConfig::default()).unwrap();
    driver.core().attach_service().unwrap();
    driver
}

fn pended_ids(driver: &TollgateDriver) -> Vec<PendId> {
    let mut ids = Vec::new();
    driver.core().deliver_pending(usize::MAX, |p| {
        ids.push(p.id);
        true
    });
    ids
}

/// Answers every pended connection (bind, then connect) until none is left.
fn answer_all(engine: &Engine, driver: &TollgateDriver, verdict: Verdict) {
    loop {
        let ids = pended_ids(driver);
        if ids.is_empty() {
            return;
        }
        for id in ids {
            driver.core().apply_verdict(id, verdict).unwrap();
        }
        engine.pump();
    }
}

fn assert_clean(engine: &Engine) {
    let report = engine.report();
    assert_eq!(report.bugcheck, None, "{report:?}");
    assert!(report.hazards.is_empty(), "{:?}", report.hazards);
    assert!(report.leaks.is_empty(), "{:?}", report.leaks);
}

// ---------------------------------------------------------------- the pend/teardown race

/// The schedule of the crash report: pend at ALE_AUTH_CONNECT, the process is killed while user
/// mode thinks, then the verdict arrives (and meanwhile a new endpoint reused the address).
#[test]
fn naive_driver_completes_a_torn_down_endpoint_and_bugchecks_0x50() {
    let engine = Engine::new(EngineConfig::default());
    let naive = NaiveDriver::load(&engine);
    let conn = engine.open(tcp(1));
    assert_eq!(engine.phase(conn), Some(Phase::ConnectPended));
    let pended = naive.take_pended(16);
    assert_eq!(pended.len(), 1);
    assert!(engine.close(conn, CloseKind::ProcessKill));
    let _reuser = engine.open(tcp(2));
    naive.answer(&engine, pended[0].id, true);
    let bugcheck = engine.bugcheck().expect("the naive driver must crash the model");
    assert_eq!(bugcheck.stop, StopCode::PageFaultInNonpagedArea);
    assert_eq!(bugcheck.stop.code(), 0x50);
    assert!(bugcheck.cause.contains("torn down"), "{bugcheck}");
}

#[test]
fn tollgate_survives_the_same_schedule() {
    let engine = Engine::new(EngineConfig::default());
    let driver = tollgate(&engine);
    let conn = engine.open(tcp(1));
    assert_eq!(engine.phase(conn), Some(Phase::BindPended));
    driver.core().apply_verdict(pended_ids(&driver)[0], Verdict::Permit).unwrap();
    engine.pump();
    assert_eq!(engine.phase(conn), Some(Phase::ConnectPended));
    let ids = pended_ids(&driver);
    assert_eq!(ids.len(), 1);
    assert!(engine.close(conn, CloseKind::ProcessKill));
    engine.pump();
    driver.run_timer();
    let reuser = engine.open(tcp(2));
    // The late verdict is rejected; nothing is completed twice or after teardown.
    assert_eq!(driver.core().apply_verdict(ids[0], Verdict::Permit), Err(VerdictError::LateVerdict));
    engine.pump();
    assert_eq!(engine.bugcheck(), None);
    // The new connection on the reused endpoint address is unaffected.
    assert_eq!(engine.phase(reuser), Some(Phase::BindPended));
    answer_all(&engine, &driver, Verdict::Permit);
    assert_eq!(engine.phase(reuser), Some(Phase::Established));
    assert_eq!(engine.counters().endpoint_handles_reused, 1);
    engine.close(reuser, CloseKind::Graceful);
    engine.pump();
    driver.unload(&engine);
    engine.driver_unloaded();
    assert_clean(&engine);
}

/// A verdict that is already on its way (claimed, completing) when the teardown arrives: the
/// closure notification is pended and completed after the completion, so the endpoint lives
/// until the completion is done.
#[test]
fn tollgate_completes_before_teardown_frees_the_endpoint_for_every_order() {
    for verdict_first in [true, false] {
        let engine = Engine::new(EngineConfig::default());
        let driver = tollgate(&engine);
        let conn = engine.open(tcp(1));
        driver.core().apply_verdict(pended_ids(&driver)[0], Verdict::Permit).unwrap();
        engine.pump();
        let ids = pended_ids(&driver);
        if verdict_first {
            driver.core().apply_verdict(ids[0], Verdict::Block).unwrap();
            engine.close(conn, CloseKind::Reset);
        } else {
            engine.close(conn, CloseKind::Reset);
            assert!(driver.core().apply_verdict(ids[0], Verdict::Block).is_err());
        }
        engine.pump();
        driver.run_timer();
        engine.pump();
        assert_eq!(engine.phase(conn), None, "the connection is closed and freed");
        driver.unload(&engine);
        engine.driver_unloaded();
        assert_clean(&engine);
    }
}

// ---------------------------------------------------------------- the stream crash

fn established(engine: &Engine, driver_answer: impl Fn()) -> tollgate_wfp_model::ConnId {
    let conn = engine.open(tcp(7));
    driver_answer();
    engine.pump();
    assert_eq!(engine.phase(conn), Some(Phase::Established));
    conn
}

#[test]
fn naive_stream_callout_touches_dropped_stream_data_and_bugchecks_0xd1() {
    let engine = Engine::new(EngineConfig::default());
    let naive = NaiveDriver::load(&engine);
    let conn = established(&engine, || {
        for p in naive.take_pended(16) {
            naive.answer(&engine, p.id, true);
        }
    });
    engine.send(conn, true, vec![b"GET / HTTP/1.1\r\n".to_vec()], StreamShape::Normal);
    assert_eq!(engine.bugcheck(), None, "the first segment is read while it is valid");
    engine.send(conn, true, vec![b"Host: example.com\r\n\r\n".to_vec()], StreamShape::Normal);
    let bugcheck = engine.bugcheck().expect("the kept streamData must crash the model");
    assert_eq!(bugcheck.stop, StopCode::DriverIrqlNotLessOrEqual);
    assert_eq!(bugcheck.stop.code(), 0xD1);
    assert_eq!(bugcheck.faulting_routine, "NETIO!StreamInvokeCalloutAndNormalizeAction");
}

#[test]
fn tollgate_stream_callout_survives_the_same_schedule_and_every_shape() {
    let engine = Engine::new(EngineConfig::default());
    let driver = tollgate(&engine);
    let conn = established(&engine, || answer_all(&engine, &driver, Verdict::Permit));
    assert_eq!(driver.live_flows(), 1);
    engine.send(conn, true, vec![b"GET / HTTP/1.1\r\n".to_vec()], StreamShape::Normal);
    engine.send(conn, true, vec![b"Host: example.com\r\n\r\n".to_vec()], StreamShape::Normal);
    engine.send(conn, false, vec![], StreamShape::Normal);
    engine.send(conn, false, vec![vec![], b"HTTP/1.1 200".to_vec(), vec![], b" OK".to_vec()], StreamShape::Normal);
    engine.send(conn, true, vec![b"x".to_vec()], StreamShape::NullLayerData);
    engine.send(conn, true, vec![b"y".to_vec()], StreamShape::NullStreamData);
    engine.send(conn, true, vec![vec![0x16; 4_000]], StreamShape::Normal);
    assert_eq!(engine.bugcheck(), None);
    engine.close(conn, CloseKind::Graceful);
    engine.pump();
    assert_eq!(driver.live_flows(), 0, "flowDeleteFn freed the flow entry");
    driver.unload(&engine);
    engine.driver_unloaded();
    assert_clean(&engine);
}

// ---------------------------------------------------------------- the other oracles

/// A driver that completes every pend twice.
struct DoubleCompleter;

impl CalloutDriver for DoubleCompleter {
    fn classify(&self, engine: &Engine, call: &ClassifyCall, out: &mut ClassifyOut) {
        if call.layer == Layer::AuthConnect && !call.is_reauthorize {
            let context = engine.fwps_pend_operation0(call.metadata.completion_handle.unwrap()).unwrap();
            out.action = Some(Action::Block);
            out.absorb = true;
            engine.fwps_complete_operation0(context);
            engine.fwps_complete_operation0(context);
        } else {
            out.action = Some(Action::Permit);
        }
    }

    fn flow_delete(&self, _: &Engine, _: Layer, _: u32, _: u64) {}
}

#[test]
fn double_completion_bugchecks_0x139() {
    let engine = Engine::new(EngineConfig::default());
    let id = engine.register_callout(Layer::AuthConnect, Arc::new(DoubleCompleter), false).unwrap();
    engine.add_filter(Layer::AuthConnect, id);
    engine.open(tcp(1));
    assert_eq!(engine.bugcheck().unwrap().stop, StopCode::KernelSecurityCheckFailure);
}

#[test]
fn waiting_at_dispatch_bugchecks_0x0a_and_at_passive_does_not() {
    let engine = Engine::new(EngineConfig::default());
    engine.wait("nt!KeWaitForSingleObject");
    assert_eq!(engine.bugcheck(), None);
    let _dispatch = irql::raise(Irql::Dispatch);
    engine.wait("nt!KeWaitForSingleObject");
    assert_eq!(engine.bugcheck().unwrap().stop, StopCode::IrqlNotLessOrEqual);
}

#[test]
fn unloading_with_pends_outstanding_bugchecks_0xce() {
    let engine = Engine::new(EngineConfig::default());
    let naive = NaiveDriver::load(&engine);
    engine.open(tcp(1));
    assert_eq!(naive.take_pended(1).len(), 1);
    engine.driver_unloaded();
    assert_eq!(engine.bugcheck().unwrap().stop, StopCode::DriverUnloadedWithoutCancellingPendingOperations);
}

#[test]
fn tollgate_unload_completes_every_pend_first() {
    let engine = Engine::new(EngineConfig::default());
    let driver = tollgate(&engine);
    let conns: Vec<_> = (0..10).map(|i| engine.open(tcp(i))).collect();
    assert_eq!(pended_ids(&driver).len(), 10, "every bind is pended");
    let report = driver.unload(&engine);
    assert_eq!(report.pends_completed, 10);
    engine.pump();
    engine.driver_unloaded();
    for conn in conns {
        engine.close(conn, CloseKind::Reset);
    }
    engine.pump();
    assert_clean(&engine);
}

#[test]
fn classify_into_an_unloaded_driver_bugchecks_0xce() {
    let engine = Engine::new(EngineConfig::default());
    let _naive = NaiveDriver::load(&engine);
    engine.driver_unloaded();
    assert_eq!(engine.bugcheck(), None);
    engine.open(tcp(1));
    assert_eq!(engine.bugcheck().unwrap().stop, StopCode::DriverUnloadedWithoutCancellingPendingOperations);
}

#[test]
fn unregister_is_busy_while_flow_contexts_exist_and_orphaned_filters_block() {
    let engine = Engine::new(EngineConfig::default());
    let driver = tollgate(&engine);
    let conn = established(&engine, || answer_all(&engine, &driver, Verdict::Permit));
    // Every callout id Tollgate registered: the stream one is busy while the flow has its context.
    let busy =
        (1..=6).map(|id| engine.unregister_callout(id)).filter(|s| *s == tollgate_wfp_sys::STATUS_DEVICE_BUSY).count();
    assert_eq!(busy, 1);
    // The connect callout is now gone but its filter is not: new connections are blocked.
    let blocked = engine.open(tcp(9));
    assert_eq!(engine.phase(blocked), None);
    assert!(engine.counters().blocked_by_orphaned_filter >= 1);
    engine.close(conn, CloseKind::Reset);
    engine.pump();
    assert_eq!(engine.bugcheck(), None);
}

#[test]
fn reauthorization_cannot_pend() {
    let engine = Engine::new(EngineConfig::default());
    let driver = tollgate(&engine);
    let conn = engine.open(tcp(1));
    answer_all(&engine, &driver, Verdict::Permit);
    assert_eq!(engine.phase(conn), Some(Phase::Established));
    // One reauthorization per completed pend (bind and connect), both answered from the cache.
    let stats = driver.core().stats();
    assert_eq!(stats.reauth_hits, 2);
    assert_eq!(stats.reauth_misses, 0);
    assert_eq!(engine.counters().reauthorizations, 2);
}
