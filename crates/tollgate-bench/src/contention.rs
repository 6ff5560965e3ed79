//! Item 4: contention. Whole connection lifecycles on 1 and on 2 threads at once, each thread on
//! its own connections, all in one core (one table lock, as in the driver):
//!
//! pend (classify) → verdict → the reauthorization it triggers → endpoint closure (teardown).
//!
//! Optionally `background` other connections stay pended throughout (a busy machine). The baseline
//! runs the same lifecycle on the list driver: insert, walk to the id for the verdict, walk to the
//! decided connect at reauthorization (and remove it, as the `inspect` sample does), walk the whole
//! list at closure.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tollgate_core::host::AtomicRundown;
use tollgate_core::{ClassifyDecision, Core, DecisionReason, TeardownOutcome, TeardownSource, Verdict};

use crate::baseline::ListDriver;
use crate::platform::{BenchPlatform, pin_to_cpu, wait_until};
use crate::workload::{app_path, core_config, endpoint, key, request};

/// Connection numbers of thread `t` start here (background connections are below `1 << 32`).
const fn thread_base(t: usize) -> u64 {
    (t as u64 + 1) << 36
}

/// Runs `threads` threads doing `per_thread` lifecycles each, started together; the wall time from
/// the start signal until the last thread finished.
fn timed(threads: usize, per_thread: u64, body: impl Fn(usize, u64) + Sync) -> Duration {
    let go = AtomicBool::new(false);
    let ready = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (go, ready, body) = (&go, &ready, &body);
                scope.spawn(move || {
                    pin_to_cpu(t);
                    ready.fetch_add(1, Ordering::AcqRel);
                    wait_until(|| go.load(Ordering::Acquire));
                    body(t, per_thread);
                })
            })
            .collect();
        wait_until(|| ready.load(Ordering::Acquire) >= threads);
        let start = Instant::now();
        go.store(true, Ordering::Release);
        for handle in handles {
            // A panicking lifecycle already failed the benchmark loudly.
            let _ = handle.join();
        }
        start.elapsed()
    })
}

/// Tollgate: `threads` × `per_thread` lifecycles with `background` connections pended.
///
/// # Panics
/// If a lifecycle is answered other than as expected.
#[must_use]
#[allow(clippy::panic, clippy::expect_used, reason = "benchmark harness: failing loudly is the point")]
pub fn ours(threads: usize, per_thread: u64, background: u32) -> Duration {
    let capacity = background + 64;
    let config = core_config(capacity, 16_384);
    let core = Core::new(BenchPlatform::new(), AtomicRundown::default(), config).expect("core");
    core.attach_service().expect("service");
    let path = app_path();
    for n in 0..u64::from(background) {
        assert!(matches!(core.classify(request(n, false, (), &path)), ClassifyDecision::Pended(_)));
    }
    let elapsed = timed(threads, per_thread, |t, count| {
        for n in thread_base(t)..thread_base(t) + count {
            let ClassifyDecision::Pended(id) = core.classify(request(n, false, (), &path)) else {
                panic!("connection {n} was not pended");
            };
            core.apply_verdict(id, Verdict::Permit).expect("verdict");
            // The cache evicts its oldest entries when full: if this thread is preempted between
            // its verdict and this classify while the other one answers a cache's worth of
            // connections, the verdict is gone and the default applies (as documented).
            let reauth = core.classify(request(n, true, (), &[]));
            assert!(matches!(
                reauth,
                ClassifyDecision::Decide { verdict: Verdict::Permit, reason: DecisionReason::ReauthCached }
                    | ClassifyDecision::Decide { verdict: Verdict::Block, reason: DecisionReason::ReauthMiss }
            ));
            let closed = core.endpoint_teardown(endpoint(n), TeardownSource::EndpointClosure, Some(()));
            assert_eq!(closed, TeardownOutcome::Done { completed: 0 });
        }
    });
    assert_eq!(core.live_entries(), background);
    elapsed
}

/// The list baseline, the same lifecycles.
///
/// # Panics
/// If a lifecycle is answered other than as expected.
#[must_use]
pub fn baseline(threads: usize, per_thread: u64, background: u32) -> Duration {
    let driver = ListDriver::new(background as usize + 64);
    let path = app_path();
    for n in 0..u64::from(background) {
        driver.pend(key(n), &path);
    }
    let elapsed = timed(threads, per_thread, |t, count| {
        for n in thread_base(t)..thread_base(t) + count {
            let id = driver.pend(key(n), &path);
            assert!(driver.verdict(id, Verdict::Permit));
            assert_eq!(driver.reauthorize(&key(n), true), Some(Verdict::Permit));
            assert_eq!(driver.teardown(endpoint(n)), 0);
        }
    });
    assert_eq!(driver.len(), background as usize);
    elapsed
}
