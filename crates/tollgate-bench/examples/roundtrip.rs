//! Runs one round-trip configuration and prints its figures, for a profiler or a quick look:
//!
//! `cargo run --release -p tollgate-bench --example roundtrip -- batched 16 1000000`
//!
//! Arguments: `batched` | `one-per-ioctl`, the window (batch size), the connections.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "profiling helper")]

use tollgate_bench::report::{duration_ns, per_second, rate};
use tollgate_bench::roundtrip::{self, RoundTrip, Service};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let service = match args.first().map_or("batched", String::as_str) {
        "batched" => Service::Batched,
        "one-per-ioctl" => Service::OnePerIoctl,
        other => panic!("unknown service {other}"),
    };
    let window: usize = args.get(1).map_or(16, |arg| arg.parse().expect("window"));
    let connections: u64 = args.get(2).map_or(1_000_000, |arg| arg.parse().expect("connections"));
    let result = roundtrip::run(RoundTrip { service, window, connections, record_latency: true });
    let [p50, p99, p999, max] = result.percentiles(&[5_000, 9_900, 9_990, 10_000]).unwrap()[..] else {
        panic!("four percentiles")
    };
    println!(
        "{service:?} window {window}: {} ({} IOCTLs), latency p50 {} p99 {} p99.9 {} max {}",
        rate(per_second(result.elapsed, result.verdicts)),
        result.ioctls,
        duration_ns(p50 as f64),
        duration_ns(p99 as f64),
        duration_ns(p999 as f64),
        duration_ns(max as f64),
    );
}

#[global_allocator]
static GLOBAL: tollgate_bench::memory::CountingAllocator = tollgate_bench::memory::CountingAllocator;
