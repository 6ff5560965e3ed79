//! Formatting for the summary lines: durations, rates and ratios, human-sized.
#![allow(clippy::float_arithmetic, reason = "host-only report formatting")]

/// A duration in nanoseconds, with a unit that keeps 3 significant digits.
#[must_use]
pub fn duration_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else {
        format!("{:.2} s", ns / 1_000_000_000.0)
    }
}

/// A rate per second.
#[must_use]
pub fn rate(per_second: f64) -> String {
    if per_second >= 1_000_000.0 {
        format!("{:.2} M/s", per_second / 1_000_000.0)
    } else if per_second >= 1_000.0 {
        format!("{:.1} k/s", per_second / 1_000.0)
    } else {
        format!("{per_second:.0} /s")
    }
}

/// `ours` relative to `baseline` where smaller is better (costs): baseline / ours.
#[must_use]
pub fn speedup(ours: f64, baseline: f64) -> f64 {
    if ours <= 0.0 { f64::INFINITY } else { baseline / ours }
}

/// A ratio, e.g. `35.1x`.
#[must_use]
pub fn ratio(value: f64) -> String {
    if value >= 100.0 { format!("{value:.0}x") } else { format!("{value:.2}x") }
}

/// Nanoseconds per operation from a count and an elapsed time.
#[must_use]
pub fn ns_per(elapsed: std::time::Duration, operations: u64) -> f64 {
    elapsed.as_nanos() as f64 / operations.max(1) as f64
}

/// Operations per second from a count and an elapsed time.
#[must_use]
pub fn per_second(elapsed: std::time::Duration, operations: u64) -> f64 {
    operations as f64 / elapsed.as_secs_f64().max(1e-12)
}

/// "met" or "missed by …" for a goal where smaller is better (`limit` in the same unit).
#[must_use]
pub fn at_most(value: f64, limit: f64, unit: &str) -> String {
    if value <= limit {
        "met".to_owned()
    } else {
        format!("missed by {:.1} {unit} ({:.0}%)", value - limit, (value / limit - 1.0) * 100.0)
    }
}

/// "met" or "missed by …" for a goal where larger is better.
#[must_use]
pub fn at_least(value: f64, limit: f64, what: &str) -> String {
    if value >= limit { "met".to_owned() } else { format!("missed: {:.0}% of the {what}", value / limit * 100.0) }
}
