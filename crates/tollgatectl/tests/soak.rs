//! The soak of issue 3: at least 100,000 connection lifecycles through the model, seeded, with
//! zero bugchecks, hazards and leaks. (The ≥ 10 million run of the reliability issue is the same
//! command with `--connections 10000000`, outside CI.)
#![allow(clippy::unwrap_used, missing_docs)]

use tollgatectl::simulate::{self, SimConfig};

#[test]
fn one_hundred_thousand_lifecycles_without_a_hazard() {
    let config = SimConfig {
        seed: 0x7011_6a7e,
        connections: 100_000,
        duration_ms: 200_000,
        processes: 64,
        early_teardown_percent: 20,
        service_crashes: 8,
        progress: false,
        ..SimConfig::default()
    };
    let report = simulate::run(&config, &mut std::io::sink()).unwrap();
    assert_eq!(report.traffic.opened, 100_000);
    assert!(report.passed(), "{}", report.render());
    println!("{}", report.render());
}
