//! The loom facade and the spin lock built on the platform's raw lock.
//!
//! Production code imports every atomic and cell through this module. Under `cfg(loom)` they are
//! loom's, so the code that loom model-checks is the code that ships (the pattern of tokio's
//! `loom` facade). This module and the platform implementations are the only places in the crate
//! that contain `unsafe`.

// Used by the host platform's lock and rundown (the driver's come from the kernel).
#[cfg(all(not(loom), feature = "std"))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::platform::RawSpinLock;

/// Tells the scheduler (or loom) that this thread is spinning on a condition another thread will
/// change. IRQL: any.
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(all(not(loom), feature = "std"))]
    std::thread::yield_now();
    #[cfg(all(not(loom), not(feature = "std")))]
    core::hint::spin_loop();
}

/// `core::cell::UnsafeCell` with loom's closure-based API.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A spin lock that owns its data, over the platform's raw lock (a `KSPIN_LOCK` in the driver).
///
/// The data is reachable only inside [`SpinLock::with`], so a guard can never outlive the critical
/// section or be held across a call into WFP by accident.
///
/// Under loom the lock is loom's `Mutex` instead (as in tokio's facade): loom cannot explore a
/// spinning lock efficiently, and what the models check is the protocol above the lock, not the
/// platform's lock itself.
///
/// # Invariants
/// `data` is accessed only between `raw.lock()` and the matching `raw.unlock()`.
#[cfg(not(loom))]
pub(crate) struct SpinLock<L: RawSpinLock, T> {
    raw: L,
    data: UnsafeCell<T>,
}

#[cfg(loom)]
pub(crate) struct SpinLock<L: RawSpinLock, T> {
    data: loom::sync::Mutex<T>,
    _raw: core::marker::PhantomData<L>,
}

// SAFETY: the raw lock serialises every access to `data` (see the invariant above), so sharing the
// lock between threads only ever hands `&mut T` to one thread at a time; `T: Send` is what moving
// that access between threads requires.
#[cfg(not(loom))]
unsafe impl<L: RawSpinLock, T: Send> Sync for SpinLock<L, T> {}
// SAFETY: as above; the lock owns its `T`, so sending the lock sends the `T`.
#[cfg(not(loom))]
unsafe impl<L: RawSpinLock, T: Send> Send for SpinLock<L, T> {}

#[cfg(not(loom))]
impl<L: RawSpinLock, T> SpinLock<L, T> {
    pub(crate) fn new(value: T) -> Self {
        Self { raw: L::new(), data: UnsafeCell::new(value) }
    }

    /// Runs `f` with exclusive access to the data.
    ///
    /// IRQL: ≤ DISPATCH_LEVEL; the driver's raw lock raises to DISPATCH_LEVEL for the duration, so
    /// `f` must not wait, touch pageable memory, or call into WFP (lock-order rule of
    /// [`crate::lifecycle`]).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let token = self.raw.lock();
        // SAFETY: the raw lock is held (acquired just above, released just below), so this is the
        // only live reference to the data; the reference does not escape the closure.
        let result = self.data.with_mut(|data| f(unsafe { &mut *data }));
        // SAFETY: `token` came from `self.raw.lock()` on this thread and the lock is still held.
        unsafe { self.raw.unlock(token) };
        result
    }
}

#[cfg(loom)]
impl<L: RawSpinLock, T> SpinLock<L, T> {
    pub(crate) fn new(value: T) -> Self {
        Self { data: loom::sync::Mutex::new(value), _raw: core::marker::PhantomData }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.data.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}
