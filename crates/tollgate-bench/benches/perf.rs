//! Tollgate's performance benchmarks, each against its baseline (see the crate docs and
//! `docs/performance.md`):
//! 1. the classify fast path at 1, 1k, 100k and 1M live entries, against one lock over a list;
//! 2. the pend → verdict → complete round trip through the protocol and the control device, with
//!    the service in another thread, batches of 1, 16 and 256, against one request per IOCTL;
//! 3. memory per pend-table entry, per cached verdict and per pend (counting allocator);
//! 4. contention: whole lifecycles on 1 and 2 threads, against the list.
//!
//! (5. stream parsing is `cargo bench -p tollgate-inspect --bench parse`.)
//!
//! Criterion reports the per-operation figures first. Then, under `cargo bench` (which passes
//! `--bench`), a plain summary: per case our figure, the baseline's, the ratio and the goal, from
//! timing loops of its own. `-- --quick` shortens both. A positional filter (`-- roundtrip`) runs only
//! the matching groups: `fastpath`, `roundtrip`, `memory`, `contention`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::float_arithmetic,
    missing_docs,
    reason = "benchmark binary (host only): failing loudly is right here, and reports use floats"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use tollgate_bench::contention;
use tollgate_bench::fastpath::{BaselineFastPath, Lookup, OursFastPath};
use tollgate_bench::memory::{self, CountingAllocator};
use tollgate_bench::report::{at_least, at_most, duration_ns, ns_per, per_second, rate, ratio, speedup};
use tollgate_bench::roundtrip::{self, RoundTrip, Service};
use tollgate_bench::workload::Picker;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const SIZES: [u32; 4] = [1, 1_000, 100_000, 1_000_000];
const WINDOWS: [usize; 4] = [1, 16, 64, 256];
const BACKGROUNDS: [u32; 2] = [0, 1_000];

/// What the command line asked for.
struct Args {
    /// `cargo bench` (not `cargo test --benches`): print the summary.
    summary: bool,
    quick: bool,
    /// Criterion's positional filter, if any.
    filter: Option<String>,
}

impl Args {
    fn parse() -> Args {
        let args: Vec<String> = std::env::args().skip(1).collect();
        // Criterion options that take a value: their value is not a filter.
        const WITH_VALUE: [&str; 14] = [
            "--save-baseline",
            "--baseline",
            "--baseline-lenient",
            "--load-baseline",
            "--measurement-time",
            "--warm-up-time",
            "--sample-size",
            "--nresamples",
            "--noise-threshold",
            "--confidence-level",
            "--significance-level",
            "--profile-time",
            "--color",
            "--output-format",
        ];
        let mut filter = None;
        let mut skip_next = false;
        for arg in &args {
            if skip_next {
                skip_next = false;
            } else if WITH_VALUE.contains(&arg.as_str()) {
                skip_next = true;
            } else if !arg.starts_with('-') {
                filter = Some(arg.clone());
            }
        }
        let profiling = args.iter().any(|arg| arg == "--profile-time");
        Args {
            summary: args.iter().any(|arg| arg == "--bench") && !profiling,
            quick: args.iter().any(|arg| arg == "--quick"),
            filter,
        }
    }

    fn wants(&self, group: &str) -> bool {
        self.filter.as_deref().is_none_or(|filter| group.contains(filter) || filter.contains(group))
    }
}

// ------------------------------------------------------------------------------------ item 1

/// Nanoseconds per call of `lookup` over `budget` (after a warm-up), with the shared index sequence.
fn time_lookups(n: u32, budget: Duration, lookup: impl Fn(u64) -> u32) -> f64 {
    let mut picker = Picker::new(u64::from(n));
    for _ in 0..64 {
        black_box(lookup(picker.next_index()));
    }
    let start = Instant::now();
    let mut calls = 0_u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            black_box(lookup(black_box(picker.next_index())));
        }
        calls += 16;
    }
    ns_per(start.elapsed(), calls)
}

struct FastPathFigure {
    lookup: Lookup,
    n: u32,
    ours_ns: f64,
    baseline_ns: f64,
}

fn fast_path(criterion: &mut Criterion, args: &Args, figures: &mut Vec<FastPathFigure>) {
    let budget = if args.quick { Duration::from_millis(100) } else { Duration::from_millis(300) };
    for lookup in Lookup::ALL {
        let mut group = criterion.benchmark_group(format!("fastpath/{}", lookup.name()));
        group.throughput(Throughput::Elements(1));
        for n in SIZES {
            let ours = OursFastPath::new(lookup, n);
            let baseline = BaselineFastPath::new(lookup, n);
            // Both sides must answer every lookup the same way, or the comparison is meaningless.
            let mut picker = Picker::new(u64::from(n));
            for _ in 0..32 {
                let i = picker.next_index();
                assert_eq!(ours.lookup(i), baseline.lookup(i), "{} at {n}: same answer", lookup.name());
            }
            if n >= 100_000 {
                group.sample_size(10);
            }
            group.bench_with_input(BenchmarkId::new("tollgate", n), &n, |bencher, &n| {
                let mut picker = Picker::new(u64::from(n));
                bencher.iter(|| ours.lookup(black_box(picker.next_index())));
            });
            group.bench_with_input(BenchmarkId::new("lock+list baseline", n), &n, |bencher, &n| {
                let mut picker = Picker::new(u64::from(n));
                bencher.iter(|| baseline.lookup(black_box(picker.next_index())));
            });
            if args.summary {
                let (mut ours_ns, mut baseline_ns) = (f64::INFINITY, f64::INFINITY);
                for _ in 0..3 {
                    ours_ns = ours_ns.min(time_lookups(n, budget, |i| ours.lookup(i)));
                    baseline_ns = baseline_ns.min(time_lookups(n, budget, |i| baseline.lookup(i)));
                }
                figures.push(FastPathFigure { lookup, n, ours_ns, baseline_ns });
            }
        }
        group.finish();
    }
}

fn print_fast_path(figures: &[FastPathFigure]) {
    println!(
        "\n1. classify fast path: ns per lookup, best of 3 timing loops; baseline = one spin lock over a linked list"
    );
    for lookup in Lookup::ALL {
        let rows: Vec<&FastPathFigure> = figures.iter().filter(|figure| figure.lookup == lookup).collect();
        for row in &rows {
            println!(
                "   {:<28} {:>9} live: tollgate {:>9}, baseline {:>9}, ratio {:>8}",
                lookup.name(),
                row.n,
                duration_ns(row.ours_ns),
                duration_ns(row.baseline_ns),
                ratio(speedup(row.ours_ns, row.baseline_ns)),
            );
        }
        let worst = rows.iter().map(|row| row.ours_ns).fold(0.0, f64::max);
        let smallest = rows.first().map_or(0.0, |row| row.ours_ns);
        let largest = rows.last().map_or(0.0, |row| row.ours_ns);
        let at_100k = rows.iter().find(|row| row.n == 100_000).map(|row| speedup(row.ours_ns, row.baseline_ns));
        println!(
            "   {:<28} goals: flat (1M / 1 = {}), < 100 ns ({}: worst {}), >= 10x at 100k ({})",
            "",
            ratio(largest / smallest.max(f64::MIN_POSITIVE)),
            at_most(worst, 100.0, "ns"),
            duration_ns(worst),
            at_100k
                .map_or_else(|| "not measured".to_owned(), |r| format!("{}: {}", at_least(r, 10.0, "goal"), ratio(r))),
        );
    }
}

// ------------------------------------------------------------------------------------ item 2

struct RoundTripFigure {
    window: usize,
    ours_rate: f64,
    baseline_rate: f64,
    ours_percentiles: Vec<u64>,
    baseline_percentiles: Vec<u64>,
    ours_ioctls_per_verdict: f64,
    baseline_ioctls_per_verdict: f64,
}

const QUANTILES: [u64; 4] = [5_000, 9_900, 9_990, 10_000];

/// Verdicts per second (best of 3) and a latency run, for about `budget` each.
fn measure_round_trip(service: Service, window: usize, budget: Duration) -> (f64, Vec<u64>, f64) {
    let calibration = roundtrip::run(RoundTrip { service, window, connections: 20_000, record_latency: false });
    let connections = ((calibration.verdicts_per_second() as f64 * budget.as_secs_f64()) as u64).max(20_000);
    let mut best = 0.0_f64;
    let mut ioctls = 0.0;
    for _ in 0..3 {
        let result = roundtrip::run(RoundTrip { service, window, connections, record_latency: false });
        best = best.max(per_second(result.elapsed, result.verdicts));
        ioctls = result.ioctls as f64 / result.verdicts as f64;
    }
    let latency = roundtrip::run(RoundTrip { service, window, connections, record_latency: true });
    (best, latency.percentiles(&QUANTILES).unwrap_or_default(), ioctls)
}

fn round_trip(criterion: &mut Criterion, args: &Args, figures: &mut Vec<RoundTripFigure>) {
    let mut group = criterion.benchmark_group("roundtrip");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    for window in WINDOWS {
        for (service, name) in
            [(Service::Batched, "tollgate batched"), (Service::OnePerIoctl, "one per IOCTL baseline")]
        {
            group.bench_function(BenchmarkId::new(name, format!("batch {window}")), |bencher| {
                bencher.iter_custom(|iters| {
                    roundtrip::run(RoundTrip { service, window, connections: iters, record_latency: false }).elapsed
                });
            });
        }
        if args.summary {
            let budget = if args.quick { Duration::from_millis(250) } else { Duration::from_secs(1) };
            let (ours_rate, ours_percentiles, ours_ioctls) = measure_round_trip(Service::Batched, window, budget);
            let (baseline_rate, baseline_percentiles, baseline_ioctls) =
                measure_round_trip(Service::OnePerIoctl, window, budget);
            figures.push(RoundTripFigure {
                window,
                ours_rate,
                baseline_rate,
                ours_percentiles,
                baseline_percentiles,
                ours_ioctls_per_verdict: ours_ioctls,
                baseline_ioctls_per_verdict: baseline_ioctls,
            });
        }
    }
    group.finish();
}

fn percentiles(values: &[u64]) -> String {
    match values {
        [p50, p99, p999, max] => format!(
            "p50 {} p99 {} p99.9 {} max {}",
            duration_ns(*p50 as f64),
            duration_ns(*p99 as f64),
            duration_ns(*p999 as f64),
            duration_ns(*max as f64)
        ),
        _ => "no latency recorded".to_owned(),
    }
}

fn print_round_trip(figures: &[RoundTripFigure]) {
    println!(
        "\n2. pend -> verdict -> complete round trip, service in another thread (verdicts/s best of 3; latency pend -> completion); baseline = one read IOCTL per connection, one write IOCTL per verdict"
    );
    for figure in figures {
        println!(
            "   batch {:>3}: tollgate {:>10} ({:.2} IOCTLs/verdict), baseline {:>10} ({:.2} IOCTLs/verdict), ratio {}",
            figure.window,
            rate(figure.ours_rate),
            figure.ours_ioctls_per_verdict,
            rate(figure.baseline_rate),
            figure.baseline_ioctls_per_verdict,
            ratio(figure.ours_rate / figure.baseline_rate.max(f64::MIN_POSITIVE)),
        );
        println!("              tollgate latency {}", percentiles(&figure.ours_percentiles));
        println!("              baseline latency {}", percentiles(&figure.baseline_percentiles));
    }
    let best = figures.iter().filter(|figure| figure.window > 1).max_by(|a, b| a.ours_rate.total_cmp(&b.ours_rate));
    if let Some(best) = best {
        println!(
            "   goals: >= 1M verdicts/s with batching ({}: {} at batch {}); p99 < 50 us ({})",
            at_least(best.ours_rate, 1_000_000.0, "goal"),
            rate(best.ours_rate),
            best.window,
            figures
                .iter()
                .map(|figure| {
                    let p99 = figure.ours_percentiles.get(1).copied().unwrap_or(u64::MAX) as f64;
                    format!("batch {}: {}", figure.window, at_most(p99 / 1_000.0, 50.0, "us"))
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
}

// ------------------------------------------------------------------------------------ item 3

fn print_memory() {
    println!("\n3. memory (bytes requested from the allocator, kernel platform's types; goal <= 128 bytes per entry)");
    let fixed = memory::core_bytes(0, 0);
    for (what, entries) in
        [("pend-table entry", memory::pend_table_entries()), ("cached verdict", memory::cache_entries())]
    {
        let per: Vec<String> =
            entries.iter().map(|entry| format!("{}: {}", entry.capacity, entry.per_entry())).collect();
        let worst = entries.iter().map(memory::PerEntry::per_entry).max().unwrap_or(0);
        println!(
            "   per {what:<17} worst {worst:>4} B ({}); by capacity: {}",
            at_most(worst as f64, 128.0, "B"),
            per.join(", ")
        );
    }
    let (units, pend) = memory::per_pend();
    let (node, path) = memory::baseline_per_pend();
    println!(
        "   per pend: the app-path copy, {} B in {} allocation(s) for {units} UTF-16 units (2 B per unit, freed at completion); fixed part of the core {fixed} B",
        pend.bytes, pend.allocations
    );
    println!("   baseline (list node per pended connection): {node} B per node + {path} B app-path copy");
}

// ------------------------------------------------------------------------------------ item 4

struct ContentionFigure {
    background: u32,
    ours: [f64; 2],
    baseline: [f64; 2],
}

/// Lifecycles per second on `threads` threads for about `budget` (best of 3).
fn lifecycles_per_second(threads: usize, budget: Duration, run: impl Fn(usize, u64) -> Duration) -> f64 {
    let calibration = run(threads, 2_000);
    let rate = per_second(calibration, 2_000 * threads as u64);
    let per_thread = ((rate * budget.as_secs_f64()) as u64 / threads as u64).max(2_000);
    (0..3).map(|_| per_second(run(threads, per_thread), per_thread * threads as u64)).fold(0.0, f64::max)
}

fn contention_benches(criterion: &mut Criterion, args: &Args, figures: &mut Vec<ContentionFigure>) {
    let mut group = criterion.benchmark_group("contention");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    for background in BACKGROUNDS {
        for threads in [1_usize, 2] {
            let id = format!("{threads} thread(s), {background} pended");
            group.bench_function(BenchmarkId::new("tollgate", &id), |bencher| {
                bencher.iter_custom(|iters| scaled(iters, threads, |per| contention::ours(threads, per, background)));
            });
            group.bench_function(BenchmarkId::new("lock+list baseline", &id), |bencher| {
                bencher
                    .iter_custom(|iters| scaled(iters, threads, |per| contention::baseline(threads, per, background)));
            });
        }
        if args.summary {
            let budget = if args.quick { Duration::from_millis(200) } else { Duration::from_millis(700) };
            let ours = [1, 2].map(|threads| {
                lifecycles_per_second(threads, budget, |threads, per| contention::ours(threads, per, background))
            });
            let baseline = [1, 2].map(|threads| {
                lifecycles_per_second(threads, budget, |threads, per| contention::baseline(threads, per, background))
            });
            figures.push(ContentionFigure { background, ours, baseline });
        }
    }
    group.finish();
}

/// Runs about `iters` lifecycles split over `threads`, and scales the time to exactly `iters`.
fn scaled(iters: u64, threads: usize, run: impl Fn(u64) -> Duration) -> Duration {
    let per_thread = iters.div_ceil(threads as u64).max(1);
    let elapsed = run(per_thread);
    let done = per_thread * threads as u64;
    Duration::from_nanos(u64::try_from(elapsed.as_nanos() * u128::from(iters) / u128::from(done)).unwrap_or(u64::MAX))
}

fn print_contention(figures: &[ContentionFigure]) {
    println!(
        "\n4. contention: lifecycles/s (pend, verdict, reauthorization, closure), 1 vs 2 threads on one core state; baseline = the lock+list driver"
    );
    for figure in figures {
        let [ours1, ours2] = figure.ours;
        let [base1, base2] = figure.baseline;
        println!(
            "   {:>5} pended: tollgate 1 thread {:>10}, 2 threads {:>10} (scaling {}); baseline 1 thread {:>10}, 2 threads {:>10} (scaling {}); ratio at 2 threads {}",
            figure.background,
            rate(ours1),
            rate(ours2),
            ratio(ours2 / ours1.max(f64::MIN_POSITIVE)),
            rate(base1),
            rate(base2),
            ratio(base2 / base1.max(f64::MIN_POSITIVE)),
            ratio(ours2 / base2.max(f64::MIN_POSITIVE)),
        );
    }
}

fn main() {
    let args = Args::parse();
    let mut criterion = Criterion::default().configure_from_args();
    let mut fast = Vec::new();
    let mut trips = Vec::new();
    let mut contended = Vec::new();
    if args.wants("fastpath") {
        fast_path(&mut criterion, &args, &mut fast);
    }
    if args.wants("roundtrip") {
        round_trip(&mut criterion, &args, &mut trips);
    }
    if args.wants("contention") {
        contention_benches(&mut criterion, &args, &mut contended);
    }
    criterion.final_summary();
    if !args.summary {
        return;
    }
    println!("\nsummary ({}; machine: see docs/performance.md)", if args.quick { "--quick" } else { "full run" });
    if !fast.is_empty() {
        print_fast_path(&fast);
    }
    if !trips.is_empty() {
        print_round_trip(&trips);
    }
    if args.wants("memory") {
        print_memory();
    }
    if !contended.is_empty() {
        print_contention(&contended);
    }
    println!(
        "\n5. stream parsing (SNI/Host) against tls-parser and httparse: cargo bench -p tollgate-inspect --bench parse"
    );
}
