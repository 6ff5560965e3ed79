//! Runs one fast-path lookup kind at one size, for a profiler (timing is the benchmark's job):
//!
//! `cargo build --release -p tollgate-bench --example lookups`, then e.g.
//! `valgrind --tool=cachegrind --cache-sim=yes target/release/examples/lookups hit 1000000 100000`.
//!
//! Arguments: `hit` | `miss` | `closure` | `baseline-hit`, the live entries, the lookups.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "profiling helper")]

use std::hint::black_box;

use tollgate_bench::fastpath::{BaselineFastPath, Lookup, OursFastPath};
use tollgate_bench::report::{duration_ns, ns_per};
use tollgate_bench::workload::Picker;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = args.first().map_or("hit", String::as_str);
    let n: u32 = args.get(1).map_or(1_000_000, |arg| arg.parse().expect("entries"));
    let lookups: u64 = args.get(2).map_or(100_000, |arg| arg.parse().expect("lookups"));
    let lookup = match kind {
        "hit" | "baseline-hit" => Lookup::ReauthDecided,
        "miss" => Lookup::ReauthUndecided,
        "closure" => Lookup::EndpointClosure,
        other => panic!("unknown lookup {other}"),
    };
    let mut picker = Picker::new(u64::from(n));
    let mut sum = 0_u64;
    if kind == "baseline-hit" {
        let baseline = BaselineFastPath::new(lookup, n);
        for _ in 0..lookups {
            sum += u64::from(baseline.lookup(black_box(picker.next_index())));
        }
    } else {
        let ours = OursFastPath::new(lookup, n);
        let start = std::time::Instant::now();
        for _ in 0..lookups {
            sum += u64::from(ours.lookup(black_box(picker.next_index())));
        }
        eprintln!("{kind} at {n}: {} per lookup", duration_ns(ns_per(start.elapsed(), lookups)));
    }
    println!("{sum}");
}

#[global_allocator]
static GLOBAL: tollgate_bench::memory::CountingAllocator = tollgate_bench::memory::CountingAllocator;
