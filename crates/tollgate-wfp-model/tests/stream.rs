//! Tollgate's stream callout on the WFP model: identification across every shape of indication,
//! the domain blocklist's drop, `FWPS_STREAM_ACTION_ALLOW_CONNECTION`, flows deleted mid-stream,
//! and the model's own stream oracles (each shown catching the bug it is for).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use tollgate_core::stream::{
    AfterInspection, DomainSet, FlowEvent, FlowEventKind, FlowTableConfig, InspectionEnd, StreamVerdict,
};
use tollgate_core::{CoreConfig, PendId, Verdict};
use tollgate_inspect::name::PatternKind;
use tollgate_wfp_model::drivers::tollgate::TollgateDriver;
use tollgate_wfp_model::{
    Action, CalloutDriver, ClassifyCall, ClassifyOut, CloseKind, ConnId, Engine, EngineConfig, FilterAction, Layer,
    Phase, Protocol, StreamAction, StreamShape, connection_values,
};

fn tcp(n: u16) -> tollgate_wfp_model::ConnectionValues {
    connection_values(
        Protocol::Tcp,
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 50_000 + n)),
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(93, 184, 216, 34), 80)),
        r"\device\harddiskvolume3\program files\app\app.exe",
        4242,
    )
}

fn load(engine: &Arc<Engine>, after: AfterInspection) -> Arc<TollgateDriver> {
    let stream = FlowTableConfig { after_inspection: after, ..FlowTableConfig::default() };
    let driver = TollgateDriver::load_with(engine, CoreConfig::default(), stream).unwrap();
    driver.core().attach_service().unwrap();
    driver
}

fn block(driver: &TollgateDriver, patterns: &[(PatternKind, &str)]) {
    let set = DomainSet::build(patterns.iter().map(|(kind, name)| (*kind, name.as_bytes()))).unwrap();
    driver.blocklist().replace(set).unwrap();
}

/// Opens a connection and permits it (bind, then connect).
fn established(engine: &Engine, driver: &TollgateDriver, n: u16) -> ConnId {
    let conn = engine.open(tcp(n));
    loop {
        let mut ids: Vec<PendId> = Vec::new();
        driver.core().deliver_pending(usize::MAX, |p| {
            ids.push(p.id);
            true
        });
        if ids.is_empty() {
            break;
        }
        for id in ids {
            driver.core().apply_verdict(id, Verdict::Permit).unwrap();
        }
        engine.pump();
    }
    assert_eq!(engine.phase(conn), Some(Phase::Established));
    conn
}

fn events(driver: &TollgateDriver) -> Vec<FlowEvent> {
    let mut out = Vec::new();
    driver.flows().drain_events(usize::MAX, |event| {
        out.push(*event);
        true
    });
    out
}

fn finish(engine: &Engine, driver: &TollgateDriver) {
    driver.unload(engine);
    engine.driver_unloaded();
    let report = engine.report();
    assert_eq!(report.bugcheck, None, "{report:?}");
    assert!(report.hazards.is_empty(), "{:?}", report.hazards);
    assert!(report.leaks.is_empty(), "{:?}", report.leaks);
}

const REQUEST: &[u8] = b"GET /a HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n\r\n";

#[test]
fn every_shape_before_the_first_bytes_then_a_chained_request_identifies_the_flow() {
    let engine = Engine::new(EngineConfig::default());
    let driver = load(&engine, AfterInspection::AllowConnection);
    let conn = established(&engine, &driver, 1);
    engine.send(conn, true, vec![b"ignored".to_vec()], StreamShape::NullLayerData);
    engine.send(conn, true, vec![b"ignored".to_vec()], StreamShape::NullStreamData);
    engine.send(conn, true, vec![Vec::new()], StreamShape::Normal);
    engine.send(conn, false, vec![], StreamShape::Normal);
    let (a, b) = REQUEST.split_at(17);
    let (b, c) = b.split_at(9);
    // One indication whose NET_BUFFER_LIST chain has empty members between the pieces.
    engine.send(conn, true, vec![Vec::new(), a.to_vec(), Vec::new(), b.to_vec(), c.to_vec()], StreamShape::Normal);
    let identified = events(&driver);
    assert_eq!(identified.len(), 1);
    assert_eq!(identified[0].kind, FlowEventKind::Identified);
    assert_eq!(identified[0].identity.names.primary().unwrap().1.as_bytes(), b"www.example.com");
    // ALLOW_CONNECTION: the rest of the stream never reaches the callout.
    let before = engine.counters();
    engine.send(conn, false, vec![vec![0; 1_400]], StreamShape::Normal);
    engine.send(conn, true, vec![vec![0; 100]], StreamShape::Normal);
    let after = engine.counters();
    assert_eq!(after.stream_indications, before.stream_indications);
    assert_eq!(after.stream_indications_allowed_through, before.stream_indications_allowed_through + 2);
    engine.close(conn, CloseKind::Graceful);
    engine.pump();
    let closed = events(&driver);
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].kind, closed[0].end), (FlowEventKind::Closed, InspectionEnd::Complete));
    // NULL layerData / streamData indications carry no bytes the callout can see.
    assert_eq!(closed[0].counters.bytes_out, REQUEST.len() as u64);
    finish(&engine, &driver);
}

#[test]
fn a_blocked_name_resets_the_connection_without_a_hazard() {
    let engine = Engine::new(EngineConfig::default());
    let driver = load(&engine, AfterInspection::AllowConnection);
    block(&driver, &[(PatternKind::Below, "example.com")]);
    let conn = established(&engine, &driver, 1);
    engine.send(conn, true, vec![REQUEST.to_vec()], StreamShape::Normal);
    engine.pump();
    assert_eq!(engine.counters().stream_drops, 1);
    assert!(matches!(engine.phase(conn), None | Some(Phase::Closed)), "the model tore the connection down (RST)");
    let events = events(&driver);
    assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [FlowEventKind::Identified, FlowEventKind::Closed]);
    assert!(events.iter().all(|e| e.verdict == StreamVerdict::Dropped));
    finish(&engine, &driver);
}

#[test]
fn a_flow_reset_in_the_middle_of_its_first_message_gives_everything_back() {
    let engine = Engine::new(EngineConfig { deferred_flow_delete_percent: 100, ..EngineConfig::default() });
    let driver = load(&engine, AfterInspection::AllowConnection);
    let buffers = driver.flows().free_buffers();
    let conn = established(&engine, &driver, 1);
    engine.send(conn, true, vec![REQUEST[..20].to_vec()], StreamShape::Normal);
    assert_eq!(driver.flows().free_buffers(), buffers - 1, "the half-read flow holds a buffer");
    engine.close(conn, CloseKind::Reset);
    engine.pump();
    assert_eq!(driver.flows().free_buffers(), buffers, "flowDeleteFn returned it");
    let closed = events(&driver);
    assert_eq!((closed.len(), closed[0].kind, closed[0].end), (1, FlowEventKind::Closed, InspectionEnd::Unfinished));
    finish(&engine, &driver);
}

#[test]
fn keep_counting_sees_every_byte_until_the_flow_closes() {
    let engine = Engine::new(EngineConfig::default());
    let driver = load(&engine, AfterInspection::KeepCounting);
    let conn = established(&engine, &driver, 1);
    engine.send(conn, true, vec![REQUEST.to_vec()], StreamShape::Normal);
    for _ in 0..10 {
        engine.send(conn, false, vec![vec![7; 1_000]], StreamShape::Normal);
    }
    engine.close(conn, CloseKind::Reset);
    engine.pump();
    let closed = events(&driver).into_iter().find(|e| e.kind == FlowEventKind::Closed).unwrap();
    assert_eq!((closed.counters.bytes_in, closed.counters.segments_in), (10_000, 10));
    assert_eq!(engine.counters().stream_indications_allowed_through, 0);
    finish(&engine, &driver);
}

#[test]
fn many_flows_with_random_splits_keep_the_pool_and_the_table_whole() {
    let engine = Engine::new(EngineConfig::default());
    let driver = load(&engine, AfterInspection::AllowConnection);
    block(&driver, &[(PatternKind::Exact, "www.example.com")]);
    let buffers = driver.flows().free_buffers();
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let other = b"GET / HTTP/1.1\r\nHost: fine.example\r\n\r\n";
    for n in 0..200_u16 {
        let conn = established(&engine, &driver, n);
        let bytes: &[u8] = if n % 2 == 0 { REQUEST } else { other };
        let mut at = 0;
        while at < bytes.len() && engine.phase(conn) == Some(Phase::Established) {
            let len = (usize::try_from(next() % 24).unwrap() + 1).min(bytes.len() - at);
            engine.send(conn, true, vec![bytes[at..at + len].to_vec()], StreamShape::Normal);
            at += len;
            if next() % 16 == 0 {
                engine.close(conn, CloseKind::Reset);
            }
        }
        engine.close(conn, CloseKind::Graceful);
        engine.pump();
    }
    assert_eq!(driver.flows().free_buffers(), buffers);
    assert_eq!(driver.live_flows(), 0);
    let stats = driver.flows().stats(driver.blocklist());
    assert!(stats.flows_dropped > 50 && stats.flows_named > 100, "{stats:?}");
    assert_eq!(engine.counters().stream_drops, stats.flows_dropped);
    finish(&engine, &driver);
}

// ---------------------------------------------------------------- the model's stream oracles

/// A stream callout that asks to drop every connection, under whatever filter action it is given.
struct DropsEverything;

impl CalloutDriver for DropsEverything {
    fn classify(&self, engine: &Engine, call: &ClassifyCall, out: &mut ClassifyOut) {
        out.action = Some(Action::Block);
        if call.layer == Layer::Stream {
            out.stream_action = Some(StreamAction::DropConnection);
            out.count_bytes_enforced = call.stream.map_or(0, |s| s.data_length);
        } else if call.layer == Layer::FlowEstablished {
            out.action = Some(Action::Continue);
            let _ = engine.fwps_flow_associate_context0(call.metadata.flow_handle.unwrap(), Layer::Stream, 2, 1);
        } else {
            out.action = Some(Action::Permit);
        }
    }

    fn flow_delete(&self, _: &Engine, _: Layer, _: u32, _: u64) {}
}

/// DROP_CONNECTION is honoured only under FWP_ACTION_CALLOUT_UNKNOWN; under a terminating filter
/// the model reports the hazard (the connection would hang on real Windows).
#[test]
fn drop_connection_under_a_terminating_filter_is_a_hazard() {
    for (action, hazard) in [(FilterAction::CalloutTerminating, true), (FilterAction::CalloutUnknown, false)] {
        let engine = Engine::new(EngineConfig::default());
        let driver: Arc<dyn CalloutDriver> = Arc::new(DropsEverything);
        for layer in [Layer::FlowEstablished, Layer::Stream] {
            let id = engine.register_callout(layer, driver.clone(), layer == Layer::Stream).unwrap();
            engine.add_filter_with_action(
                layer,
                id,
                if layer == Layer::Stream { action } else { FilterAction::CalloutInspection },
            );
        }
        let conn = engine.open(tcp(1));
        assert_eq!(engine.phase(conn), Some(Phase::Established));
        engine.send(conn, true, vec![b"x".to_vec()], StreamShape::Normal);
        let hazards = engine.report().hazards;
        assert_eq!(
            hazards.iter().any(|h| format!("{h:?}").contains("CALLOUT_UNKNOWN")),
            hazard,
            "{action:?}: {hazards:?}"
        );
    }
}
