//! S4: after start-up the core never allocates on its hot paths — classify (with an empty app
//! path), reauthorization, verdict, teardown, timeout, cleanup, delivery — however much churn it
//! sees, because an allocation failure at DISPATCH_LEVEL must not be able to take anything down.
//! The only allocation on those paths is the fallible copy of a non-empty app path.
//!
//! Measured with a counting global allocator, so this file is its own test binary.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use tollgate_core::host::{AtomicRundown, HostCompletionHandle, HostPlatform};
use tollgate_core::{
    ClassifyDecision, ClassifyRequest, ConnectionFacts, Core, CoreConfig, Direction, EndpointHandle, PendLayer,
    RuntimeConfig, TeardownSource, Ticks, Verdict,
};
use tollgate_test_alloc::{TestAllocator, allocations_during};

#[global_allocator]
static GLOBAL: TestAllocator = TestAllocator;

fn request(endpoint: u64, remote: u8, reauth: bool, app_path: &[u16]) -> ClassifyRequest<'_, HostCompletionHandle> {
    ClassifyRequest {
        endpoint: EndpointHandle(endpoint),
        completion_handle: HostCompletionHandle { endpoint: EndpointHandle(endpoint) },
        is_reauthorization: reauth,
        can_write_action: true,
        facts: ConnectionFacts {
            layer: PendLayer::AuthConnect,
            protocol: 17,
            direction: Direction::Outbound,
            local_address: [10, 0, 0, 1].into(),
            local_port: 5000,
            remote_address: [203, 0, 113, remote].into(),
            remote_port: 53,
            process_id: 7,
            app_path,
        },
    }
}

/// One round of churn over every hot path. The host platform's oracle records completions in
/// hash sets of its own, so it is excluded by pre-sizing: only the core is measured.
fn churn(core: &Core<HostPlatform>, round: u64, app_path: &[u16]) {
    let endpoint = 0x8000 + round % 97;
    core.platform().endpoint_created(EndpointHandle(endpoint));
    let mut first = None;
    for remote in 0..3u8 {
        if let ClassifyDecision::Pended(id) = core.classify(request(endpoint, remote, false, app_path)) {
            first = first.or(Some(id));
        }
    }
    core.deliver_pending(2, |_| true);
    if let Some(id) = first {
        core.apply_verdict(id, Verdict::Permit).unwrap();
        let _ = core.apply_verdict(id, Verdict::Block); // late
    }
    core.classify(request(endpoint, 0, true, app_path));
    if round.is_multiple_of(3) {
        core.platform().advance(Ticks::SECOND);
        core.run_deferred_work();
    }
    if round.is_multiple_of(11) {
        core.detach_service();
        core.attach_service().unwrap();
    }
    core.endpoint_teardown(EndpointHandle(endpoint), TeardownSource::EndpointClosure, Some(EndpointHandle(endpoint)));
    core.platform().notification_returned(EndpointHandle(endpoint));
}

fn new_core() -> Core<HostPlatform> {
    let config = CoreConfig {
        capacity: 64,
        cache_capacity: 32,
        cache_ttl: Ticks::from_millis(60_000),
        teardown_spin_limit: 10,
        runtime: RuntimeConfig {
            default_verdict: Verdict::Block,
            pend_timeout: Ticks::from_millis(500),
            max_pended: 64,
        },
    };
    let core = Core::new(HostPlatform::new(), AtomicRundown::default(), config).unwrap();
    core.attach_service().unwrap();
    core
}

#[test]
fn hot_paths_never_allocate_after_start() {
    let core = new_core();
    let before = core.stats().pended;
    let allocations = allocations_during(|| {
        for round in 0..20_000 {
            churn(&core, round, &[]);
        }
    });
    let pends = core.stats().pended - before;
    assert!(pends > 40_000, "the churn must pend ({pends})");
    // The host oracle's own sets grow by doubling (a few dozen allocations in all); one allocation
    // per pend in the core would be tens of thousands.
    assert!(allocations < 200, "{allocations} allocations for {pends} pends: the core allocates on a hot path");
    core.begin_unload();
    core.wait_for_callbacks();
    core.platform().assert_quiescent();
}

#[test]
fn app_path_copy_is_the_only_allocation_per_pend() {
    let core = new_core();
    let path: Vec<u16> = "\\device\\harddiskvolume3\\app.exe".encode_utf16().collect();
    let before = core.stats().pended;
    let allocations = allocations_during(|| {
        for round in 0..5_000 {
            churn(&core, round, &path);
        }
    }) as u64;
    let pends = core.stats().pended - before;
    assert!(pends > 10_000, "the churn must pend ({pends})");
    assert!(allocations >= pends, "each pend copies its app path");
    assert!(allocations < pends + 200, "{allocations} allocations for {pends} pends: more than the path copy");
}

/// The stream callout's paths — attach, a request split over segments, identification, a blocklist
/// lookup and drop, a flow that finds no buffer, flowDeleteFn, draining events — allocate nothing
/// after the table and the blocklist were built.
#[test]
fn stream_paths_never_allocate_after_start() {
    use tollgate_core::host::AtomicSpinLock;
    use tollgate_core::stream::{
        DomainBlocklist, DomainSet, FlowEndpoints, FlowOwner, FlowTable, FlowTableConfig, StreamSegment,
    };
    use tollgate_inspect::name::PatternKind;

    let table: FlowTable<AtomicSpinLock> =
        FlowTable::new(FlowTableConfig { flows: 64, reassembly_buffers: 2, events: 8, ..FlowTableConfig::default() })
            .unwrap();
    let list = DomainBlocklist::new();
    list.replace(DomainSet::build([(PatternKind::Below, &b"blocked.example"[..])]).unwrap()).unwrap();
    let endpoints = FlowEndpoints {
        ip_protocol: 6,
        direction: Direction::Outbound,
        local_address: [10, 0, 0, 1].into(),
        local_port: 50_000,
        remote_address: [192, 0, 2, 7].into(),
        remote_port: 80,
        process_id: 1,
    };
    let allocations = allocations_during(|| {
        for round in 0..2_000_u64 {
            let host: &[u8] = if round % 3 == 0 { b"www.blocked.example" } else { b"fine.example" };
            let mut request = *b"GET / HTTP/1.1\r\nHost: ___________________\r\n\r\n";
            request[22..22 + host.len()].copy_from_slice(host);
            let request = &request[..22 + host.len()];
            let request_end = b"\r\n\r\n";
            let owner = FlowOwner { flow_handle: round, layer_id: 20, callout_id: 7 };
            let a = table.attach(EndpointHandle(round), owner, endpoints, Ticks(round)).unwrap();
            let b = table.attach(EndpointHandle(round + 1), owner, endpoints, Ticks(round)).unwrap();
            let c = table.attach(EndpointHandle(round + 2), owner, endpoints, Ticks(round)).unwrap();
            for (id, bytes) in [(a, &request[..10]), (b, &request[..12]), (c, request)] {
                let segment = StreamSegment { outbound: true, length: bytes.len(), disconnect: false };
                table.on_segment(id, segment, Ticks(round), &list, |buffer| {
                    let n = buffer.len().min(bytes.len());
                    buffer[..n].copy_from_slice(&bytes[..n]);
                    n
                });
            }
            for (id, bytes) in [(a, &request[10..]), (b, &request[12..]), (a, &request_end[..]), (b, &request_end[..])]
            {
                let segment = StreamSegment { outbound: true, length: bytes.len(), disconnect: false };
                table.on_segment(id, segment, Ticks(round), &list, |buffer| {
                    let n = buffer.len().min(bytes.len());
                    buffer[..n].copy_from_slice(&bytes[..n]);
                    n
                });
            }
            for id in [a, b, c] {
                table.remove(id, Ticks(round));
            }
            table.drain_events(usize::MAX, |_| true);
        }
    });
    let stats = table.stats(&list);
    assert!(stats.flows_dropped > 0 && stats.flows_no_buffer > 0, "the churn reached drop and no-buffer: {stats:?}");
    assert_eq!(allocations, 0, "the stream paths allocated {allocations} times");
}
