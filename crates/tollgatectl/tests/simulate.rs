//! The main job, end to end: Tollgate's driver logic, the control device, the IOCTL protocol and
//! the verdict service with its rules, against the WFP model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, missing_docs)]

use tollgatectl::simulate::{self, NaiveMode, SimConfig, SimReport};

fn run(config: SimConfig) -> SimReport {
    simulate::run(&SimConfig { progress: false, ..config }, &mut std::io::sink()).unwrap()
}

/// A short run; 5% of the service's answers come after the pend timeout, so that even a short run
/// times pends out (most connections close before 5 s, resolving their pend by teardown first).
fn small(seed: u64) -> SimConfig {
    SimConfig { seed, connections: 3_000, duration_ms: 10_000, late_answer_permille: 50, ..SimConfig::default() }
}

#[test]
fn tollgate_runs_the_workload_without_bugcheck_hazard_or_leak() {
    let report = run(small(1));
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.traffic.opened, 3_000);
    let counters = &report.engine.counters;
    let core = report.core.unwrap();
    // Every kind of event the workload promises happened.
    assert!(counters.established > 0 && counters.blocked > 0, "{}", report.render());
    assert!(counters.torn_down_while_pended > 0, "{}", report.render());
    assert!(core.completed_by_verdict > 0 && core.completed_by_teardown > 0, "{}", report.render());
    assert!(core.completed_by_timeout > 0, "the slow service must cause timeouts: {}", report.render());
    assert!(report.service_crashes > 0 && core.completed_by_cleanup > 0, "{}", report.render());
    assert!(counters.reauthorizations > 0 && core.reauth_misses == 0, "{}", report.render());
    assert!(counters.stream_indications > 0 && counters.flow_deletes > 0, "{}", report.render());
    // The stream callout read the apps' ClientHellos and requests, dropped the blocked names the
    // service pushed, stopped classifying identified flows, and gave every buffer back.
    let stream = report.stream.driver.expect("Tollgate reports its stream counters");
    assert!(stream.flows_named > 0 && report.stream.tls > 0 && report.stream.http > 0, "{}", report.render());
    assert!(stream.flows_dropped > 0 && counters.stream_drops == stream.flows_dropped, "{}", report.render());
    assert!(stream.blocklist_patterns == 5, "{}", report.render());
    assert!(
        report.stream.dropped_names.keys().all(|name| name.contains("telemetry")
            || name.contains("ads.example")
            || name.contains("vortex")
            || name.contains("c2.bad")),
        "only blocked names are dropped: {}",
        report.render()
    );
    assert!(report.stream.identified > 0 && report.stream.closed > 0, "{}", report.render());
    assert!(counters.stream_indications_allowed_through > 0, "{}", report.render());
    assert_eq!(report.stream.free_buffers, report.stream.total_buffers);
    assert!(report.verdicts_rejected > 0, "late verdicts must be rejected: {}", report.render());
    // Every pend was resolved exactly once, by one path.
    assert_eq!(
        core.pended,
        core.completed_by_verdict
            + core.completed_by_teardown
            + core.completed_by_timeout
            + core.completed_by_cleanup
            + core.completed_by_unload
    );
    let unload = report.unload.unwrap();
    assert!(unload.flow_contexts_removed > 0, "unload must find live flows: {}", report.render());
    assert!(report.render().contains("PASS"));
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = run(small(7));
    let b = run(small(7));
    assert_eq!(a.engine.counters, b.engine.counters);
    assert_eq!(a.core, b.core);
    assert_eq!(a.verdicts_accepted, b.verdicts_accepted);
    let c = run(small(8));
    assert_ne!(a.engine.counters, c.engine.counters);
}

#[test]
fn the_naive_driver_ends_in_each_bugcheck_on_the_same_workload() {
    for (mode, code) in [(NaiveMode::Connect, 0x50), (NaiveMode::Stream, 0xD1)] {
        let report = run(SimConfig { naive: Some(mode), ..small(1) });
        let bugcheck = report.engine.bugcheck.clone().unwrap_or_else(|| panic!("{mode:?}: {}", report.render()));
        assert_eq!(bugcheck.stop.code(), code, "{bugcheck}");
        assert!(report.render().contains("The machine stopped"));
    }
}
