//! `PUSH_BLOCKLIST` under allocation failure: the driver builds the whole new list (fallible
//! allocation) before it changes anything, so with each of the build's allocations failing in turn
//! the request must end with `STATUS_INSUFFICIENT_RESOURCES`, the list in force must be the old
//! one, and every byte the failed build allocated must be freed.
//!
//! A failing global allocator counts per thread, so this file is its own test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use tollgate_control::{Completion, ControlDevice, FileId, STATUS_INSUFFICIENT_RESOURCES, ServiceSlot, StreamParts};
use tollgate_core::host::{AtomicRundown, HostPlatform};
use tollgate_core::stream::{DomainBlocklist, FlowTable, FlowTableConfig};
use tollgate_core::{Core, CoreConfig};
use tollgate_inspect::name::{HostName, PatternKind};
use tollgate_protocol::{IOCTL_TOLLGATE_PUSH_BLOCKLIST, encode_blocklist_to_vec};
use tollgate_test_alloc::{Seen, TestAllocator, Watch, watch};

#[global_allocator]
static GLOBAL: TestAllocator = TestAllocator;

const SERVICE: FileId = FileId(0x1000);

fn push(device: &ControlDevice<'_, HostPlatform>, message: &[u8], fail_at: u64) -> (Result<Completion, i32>, Seen) {
    let mut buffer = message.to_vec();
    watch(Watch::fail_at(fail_at), || {
        device.device_control(SERVICE, IOCTL_TOLLGATE_PUSH_BLOCKLIST, &mut buffer, message.len(), 0)
    })
}

#[test]
fn a_blocklist_whose_build_runs_out_of_memory_changes_nothing() {
    let core = Core::new(HostPlatform::new(), AtomicRundown::default(), CoreConfig::default()).unwrap();
    let flows =
        FlowTable::new(FlowTableConfig { flows: 4, reassembly_buffers: 1, events: 4, ..Default::default() }).unwrap();
    let blocklist = DomainBlocklist::new();
    let slot = ServiceSlot::new();
    let device = ControlDevice::new(&core, StreamParts { flows: &flows, blocklist: &blocklist }, &slot);

    let old = encode_blocklist_to_vec([(PatternKind::Exact, &b"old.example"[..])]).unwrap();
    assert_eq!(push(&device, &old, 0).0, Ok(Completion::Bytes(0)));
    let names: Vec<String> = (0..200).map(|i| format!("host{i}.example")).collect();
    let mut patterns: Vec<(PatternKind, &[u8])> = names.iter().map(|n| (PatternKind::Exact, n.as_bytes())).collect();
    patterns.extend(names.iter().map(|n| (PatternKind::Below, n.as_bytes())));
    patterns.sort_by(|a, b| (a.0 as u8, a.1).cmp(&(b.0 as u8, b.1)));
    let new = encode_blocklist_to_vec(patterns.iter().copied()).unwrap();

    // How many allocations a successful push makes (the build: arena and two tables), measured
    // on a throwaway driver state so the one under test keeps its old list.
    let counted = {
        let core = Core::new(HostPlatform::new(), AtomicRundown::default(), CoreConfig::default()).unwrap();
        let blocklist = DomainBlocklist::new();
        let slot = ServiceSlot::new();
        let device = ControlDevice::new(&core, StreamParts { flows: &flows, blocklist: &blocklist }, &slot);
        let (result, plan) = push(&device, &new, 0);
        assert_eq!(result, Ok(Completion::Bytes(0)));
        plan.allocations
    };
    assert!(counted >= 3, "{counted}");
    let generation = blocklist.generation();
    for n in 1..=counted {
        let (result, plan) = push(&device, &new, n);
        assert_eq!(plan.failed, 1, "allocation {n} was not reached");
        assert_eq!(result, Err(STATUS_INSUFFICIENT_RESOURCES), "allocation {n}");
        assert_eq!(plan.net_bytes, 0, "allocation {n}: the failed build leaked {} bytes", plan.net_bytes);
        assert_eq!((blocklist.generation(), blocklist.len()), (generation, 1), "allocation {n}");
        assert!(blocklist.blocks(&names_of("old.example")), "allocation {n}: the old list is in force");
    }
    // And with memory back, the same push succeeds.
    assert_eq!(push(&device, &new, 0).0, Ok(Completion::Bytes(0)));
    assert_eq!(blocklist.len(), 400);
    assert!(!blocklist.blocks(&names_of("old.example")) && blocklist.blocks(&names_of("a.host7.example")));
    println!("PUSH_BLOCKLIST: {counted} allocations, each failed in turn");
}

fn names_of(host: &str) -> tollgate_inspect::identity::Names {
    let mut names = tollgate_inspect::identity::Names::default();
    names.push(tollgate_inspect::identity::NameSource::TlsSni, HostName::from_wire(host.as_bytes()));
    names
}
