//! `decide` runs for every pended connection: after warm-up it must not allocate (application
//! paths up to the 2 KiB stack buffer), whichever rule matches and whatever the inputs' case.
//!
//! Measured with a counting global allocator, so this file is its own test binary. The counter is
//! per thread, so the test harness's own threads do not disturb it.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use tollgate_rules::{ConnectionQuery, Direction, RuleSet};
use tollgate_test_alloc::{TestAllocator, allocations_during};

mod common;

#[global_allocator]
static GLOBAL: TestAllocator = TestAllocator;

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
