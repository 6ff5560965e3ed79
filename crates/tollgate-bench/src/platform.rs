//! The platforms the benchmarks run the core on.
//!
//! [`BenchPlatform`] stands in for the kernel on the classify and completion paths: its lock spins
//! like a `KSPIN_LOCK` (the test platform's lock yields to the OS scheduler instead, which is right
//! for tests and wrong for timing), `FwpsPendOperation0` and `FwpsCompleteOperation0` are one atomic
//! counter each, and it can stamp each pend so that completion measures the round trip's latency.
//! The host test platform's oracle (hash sets of every context ever completed) is not used: it
//! checks the contract, which the test suite does, and it would be most of what is timed here.
//!
//! [`KernelShapedPlatform`] has the kernel platform's associated types (`tollgate_kernel`), so that
//! the memory measurement sizes the table exactly as the driver does; its operations are never
//! called on a path that matters.

use core::hint::spin_loop;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tollgate_core::host::AtomicRundown;
use tollgate_core::{Platform, PlatformError, RawSpinLock, STATUS_FWP_CANNOT_PEND, Ticks};

/// Waits until `ready` holds: spins for up to 50 µs, then yields the CPU between checks (for the
/// start gates of the threaded runs).
pub fn wait_until(mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if started.elapsed() < Duration::from_micros(50) {
            spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Pins the calling thread to CPU `cpu` (Linux; elsewhere, or with fewer CPUs, it does nothing).
///
/// The threaded runs pin their two threads to CPUs 0 and 1: the classify side and the verdict
/// service then run side by side as they do on a real machine, instead of the scheduler placing
/// a woken thread beside the one that woke it and making them take turns. It returns whether the
/// thread was pinned.
pub fn pin_to_cpu(cpu: usize) -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cpus < 2 || cpu >= cpus || std::env::var_os("TOLLGATE_BENCH_NO_PIN").is_some() {
        return false;
    }
    pin(cpu)
}

#[cfg(target_os = "linux")]
fn pin(cpu: usize) -> bool {
    // A `cpu_set_t` is 1024 bits.
    let mut mask = [0_u64; 16];
    let Some(word) = mask.get_mut(cpu / 64) else { return false };
    *word |= 1 << (cpu % 64);
    // SAFETY: `mask` is a valid, initialized 128-byte `cpu_set_t` (1024 CPU bits), alive for the
    // call; pid 0 is the calling thread.
    let status = unsafe { libc::sched_setaffinity(0, size_of_val(&mask), mask.as_ptr().cast()) };
    status == 0
}

#[cfg(not(target_os = "linux"))]
fn pin(_cpu: usize) -> bool {
    false
}

/// A test-and-test-and-set spin lock that spins with `spin_loop`, as `KeAcquireSpinLock` does
/// (and yields after a long spin: see `lock`).
#[derive(Debug)]
pub struct SpinLock(AtomicBool);

// SAFETY: `lock` returns only after it swapped `false` → `true` with Acquire ordering, and `unlock`
// stores `false` with Release; so at most one thread is between them, and what one critical section
// wrote is visible to the next. It never waits other than by spinning.
unsafe impl RawSpinLock for SpinLock {
    type Token = ();

    fn new() -> Self {
        SpinLock(AtomicBool::new(false))
    }

    fn lock(&self) {
        let mut spins = 0_u32;
        while self.0.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            while self.0.load(Ordering::Relaxed) {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(4_096) {
                    // Critical sections last well under a microsecond: after thousands of spins the
                    // holder has been preempted (a kernel spin lock holder cannot be; a user-mode
                    // thread can), so let it run.
                    std::thread::yield_now();
                } else {
                    spin_loop();
                }
            }
        }
    }

    unsafe fn unlock(&self, (): ()) {
        self.0.store(false, Ordering::Release);
    }
}

/// A value behind a [`SpinLock`]: what the baselines use for their one global lock, so both sides
/// of every comparison lock the same way.
pub struct SpinMutex<T> {
    lock: SpinLock,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: `with` hands out `&mut T` only while the lock is held, so one thread at a time has it;
// `T: Send` is what moving that access between threads requires.
unsafe impl<T: Send> Sync for SpinMutex<T> {}

impl<T> SpinMutex<T> {
    /// `value` behind a new lock.
    pub const fn new(value: T) -> Self {
        SpinMutex { lock: SpinLock(AtomicBool::new(false)), value: core::cell::UnsafeCell::new(value) }
    }

    /// Runs `f` with the lock held.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.lock.lock();
        // SAFETY: the lock is held (just acquired, released below), so no other reference to the
        // value exists; the reference does not outlive the closure.
        let result = f(unsafe { &mut *self.value.get() });
        // SAFETY: this thread acquired the lock above and still holds it.
        unsafe { self.lock.unlock(()) };
        result
    }
}

/// What the benchmark platform's `FwpsPendOperation0` returns: a serial number and when it pended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchContext {
    /// Unique per pend.
    pub serial: u64,
    /// Nanoseconds since the platform was created (0 unless latency is recorded).
    pub pended_ns: u64,
}

/// Pend-to-completion latencies, one slot per completion, preallocated (recording is one store).
struct LatencyLog {
    samples: Box<[AtomicU64]>,
    next: AtomicUsize,
}

/// The core's platform for timing (see the module docs).
pub struct BenchPlatform {
    clock: AtomicU64,
    serials: AtomicU64,
    completed: AtomicU64,
    epoch: Instant,
    latency: Option<LatencyLog>,
}

impl BenchPlatform {
    /// A platform that records no latencies.
    #[must_use]
    pub fn new() -> Self {
        BenchPlatform {
            clock: AtomicU64::new(1),
            serials: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            epoch: Instant::now(),
            latency: None,
        }
    }

    /// A platform that records the latency of up to `samples` completions.
    #[must_use]
    pub fn with_latency(samples: usize) -> Self {
        let log = LatencyLog { samples: (0..samples).map(|_| AtomicU64::new(0)).collect(), next: AtomicUsize::new(0) };
        BenchPlatform { latency: Some(log), ..Self::new() }
    }

    /// Completions so far.
    #[must_use]
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// Pends so far.
    #[must_use]
    pub fn pended(&self) -> u64 {
        self.serials.load(Ordering::Relaxed)
    }

    /// The recorded latencies, in nanoseconds, in completion order.
    #[must_use]
    pub fn latencies(&self) -> Vec<u64> {
        let Some(log) = &self.latency else { return Vec::new() };
        let recorded = log.next.load(Ordering::Acquire).min(log.samples.len());
        log.samples.iter().take(recorded).map(|sample| sample.load(Ordering::Relaxed)).collect()
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for BenchPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl Platform for BenchPlatform {
    type Lock = SpinLock;
    type Rundown = AtomicRundown;
    type CompletionHandle = ();
    type PendContext = BenchContext;
    type ClosureRequest = ();
    type ClosurePend = ();
    type DispatchGuard = ();

    fn now(&self) -> Ticks {
        // KeQueryInterruptTime reads KUSER_SHARED_DATA: one load. The clock does not move, so
        // nothing times out or expires while a benchmark runs.
        Ticks(self.clock.load(Ordering::Relaxed))
    }

    fn pend_operation(&self, (): ()) -> Result<BenchContext, PlatformError> {
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        let pended_ns = if self.latency.is_some() { self.nanos() } else { 0 };
        Ok(BenchContext { serial, pended_ns })
    }

    fn complete_operation(&self, context: BenchContext) {
        if let Some(log) = &self.latency {
            let latency = self.nanos().saturating_sub(context.pended_ns);
            let index = log.next.fetch_add(1, Ordering::AcqRel);
            if let Some(slot) = log.samples.get(index) {
                slot.store(latency, Ordering::Relaxed);
            }
        }
        self.completed.fetch_add(1, Ordering::Release);
    }

    fn pend_closure(&self, (): ()) -> Result<(), PlatformError> {
        Ok(())
    }

    fn complete_closure(&self, (): ()) {}

    fn request_deferred_work(&self) {}

    fn raise_to_dispatch(&self) {}

    fn relax_at_passive(&self) {
        spin_loop();
    }
}

/// A platform with the kernel platform's associated types (`tollgate_kernel::KernelPlatform`):
/// `completionContext` is an address, a pended closure notification is a
/// [`tollgate_kernel::PendedClassify`] (classify handle, filter id and a copy of
/// `FWPS_CLASSIFY_OUT0`). Only for measuring memory: the core's tables are sized by these types.
#[derive(Debug, Default)]
pub struct KernelShapedPlatform;

impl Platform for KernelShapedPlatform {
    type Lock = SpinLock;
    type Rundown = AtomicRundown;
    type CompletionHandle = Option<usize>;
    type PendContext = usize;
    type ClosureRequest = ();
    type ClosurePend = tollgate_kernel::PendedClassify;
    type DispatchGuard = ();

    fn now(&self) -> Ticks {
        Ticks(1)
    }

    fn pend_operation(&self, handle: Option<usize>) -> Result<usize, PlatformError> {
        handle.ok_or(PlatformError(STATUS_FWP_CANNOT_PEND))
    }

    fn complete_operation(&self, _context: usize) {}

    fn pend_closure(&self, (): ()) -> Result<tollgate_kernel::PendedClassify, PlatformError> {
        // Only the kernel platform can make one (it owns a classify handle).
        Err(PlatformError(STATUS_FWP_CANNOT_PEND))
    }

    fn complete_closure(&self, _pend: tollgate_kernel::PendedClassify) {}

    fn request_deferred_work(&self) {}

    fn raise_to_dispatch(&self) {}

    fn relax_at_passive(&self) {
        spin_loop();
    }
}
