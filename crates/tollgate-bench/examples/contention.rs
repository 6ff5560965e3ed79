//! Runs the contention lifecycles once and prints lifecycles per second, for a profiler or a quick
//! look: `cargo run --release -p tollgate-bench --example contention -- 2 1000000 0` (threads,
//! lifecycles per thread, connections pended in the background; `baseline` as a fourth argument
//! runs the list driver).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, reason = "profiling helper")]

use tollgate_bench::contention;
use tollgate_bench::report::{per_second, rate};

#[global_allocator]
static GLOBAL: tollgate_bench::memory::CountingAllocator = tollgate_bench::memory::CountingAllocator;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: usize = args.first().map_or(2, |arg| arg.parse().expect("threads"));
    let per_thread: u64 = args.get(1).map_or(1_000_000, |arg| arg.parse().expect("lifecycles"));
    let background: u32 = args.get(2).map_or(0, |arg| arg.parse().expect("background"));
    let baseline = args.get(3).is_some_and(|arg| arg == "baseline");
    let elapsed = if baseline {
        contention::baseline(threads, per_thread, background)
    } else {
        contention::ours(threads, per_thread, background)
    };
    println!(
        "{} {threads} thread(s), {background} pended: {}",
        if baseline { "baseline" } else { "tollgate" },
        rate(per_second(elapsed, per_thread * threads as u64))
    );
}
