//! `decide` runs for every pended connection: after warm-up it must not allocate (application
//! paths up to the 2 KiB stack buffer), whichever rule matches and whatever the inputs' case.
//!
//! Measured with a counting global allocator, so this file is its own test binary. The counter is
//! per thread, so the test harness's own threads do not disturb it.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use tollgate_rules::{ConnectionQuery, Direction, RuleSet};

mod common;

struct CountingAllocator;

thread_local! {
    // `const` and without a destructor: safe to touch from inside the allocator.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the counter has no effect on memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.get() {
            ALLOCATIONS.set(ALLOCATIONS.get() + 1);
        }
        // SAFETY: the caller's contract for `alloc` is passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes through it).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.set(0);
    COUNTING.set(true);
    f();
    COUNTING.set(false);
    ALLOCATIONS.get()
}

#[test]
fn decide_does_not_allocate() {
    let rules = RuleSet::builtin_default();
    let base = common::query();
    let long_path = format!(r"\device\harddiskvolume3\{}\tool.exe", "Folder\\".repeat(200));
    assert!(long_path.len() < 2048);
    let queries = [
        base,
        ConnectionQuery { app_path: r"\DEVICE\HARDDISKVOLUME3\PROGRAM FILES\MOZILLA FIREFOX\FIREFOX.EXE", ..base },
        ConnectionQuery { domain: Some("V10.Events.Data.Microsoft.COM."), ..base },
        ConnectionQuery { app_path: common::SVCHOST, protocol: 17, remote: common::addr("192.168.1.1:53"), ..base },
        ConnectionQuery { app_path: common::UNKNOWN_APP, domain: None, ..base },
        ConnectionQuery { direction: Direction::Inbound, ..base },
        ConnectionQuery { remote: common::addr("[::ffff:127.0.0.1]:80"), ..base },
        ConnectionQuery { app_path: &long_path, ..base },
        ConnectionQuery { app_path: r"C:\Users\Émile\Ünïcode.exe", ..base },
        ConnectionQuery { app_path: "", ..base },
    ];
    // Warm-up: the regex engine builds its per-thread matching cache on first use.
    for q in &queries {
        rules.decide(q);
    }
    for q in &queries {
        let mut decision = None;
        let n = allocations_during(|| decision = Some(rules.decide(q)));
        assert_eq!(n, 0, "{n} allocations deciding {q:?} -> {decision:?}");
    }
}
