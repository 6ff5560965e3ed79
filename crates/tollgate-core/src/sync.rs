//! The loom facade and the spin lock built on the platform's raw lock.
//!
//! Production code imports every atomic and cell through this module. Under `cfg(loom)` they are
//! loom's, so the code that loom model-checks is the code that ships (the pattern of tokio's
//! `loom` facade). This module and the platform implementations are the only places in the crate
//! that contain `unsafe`.

// Used by the swap cell below, and by the host platform's lock and rundown (the driver's come from
// the kernel).
#[cfg(all(not(loom), feature = "std"))]
pub(crate) use core::sync::atomic::AtomicUsize;
#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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

    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

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

/// A value that readers use without taking a lock and that a writer replaces as a whole: the
/// domain blocklist, read by every stream classify that finishes inspecting a flow, replaced
/// when user mode pushes a new list.
///
/// Two slots, and one atomic word holding which slot is current and how many readers are in each
/// slot. A reader announces itself in the current slot and learns which one that is in a single
/// compare-and-swap, so it can never announce itself in a slot that is not current at that
/// instant. A writer fills the *other* slot, but only when nobody is announced there (no reader
/// can arrive, since it is not current), then flips the current bit. Readers never wait for a
/// writer (a failed compare-and-swap means another reader or the writer changed the word; retry),
/// and a writer never waits for readers: it answers [`SwapBusy`] instead, and its caller decides
/// whether to try again.
///
/// The value a swap displaces is handed back to the writer (who frees it, at the IRQL of the
/// writer, outside any lock), but the slot it lived in is reused only by the *next* swap: until
/// then, readers that started before the swap may still be reading it.
///
/// Why one word rather than a current index and a reader count per slot: announce-then-check on
/// two locations is a Dekker pattern that is only correct under sequentially consistent ordering
/// of *both* sides; loom (which models SeqCst as acquire/release) found the reader slipping into a
/// slot the writer had just judged empty. With one word, plain acquire/release suffices: the
/// writer's check and flip, and each reader's announce, are read-modify-writes of the same
/// location, totally ordered by it.
///
/// # Invariants
/// - `state` = [`CURRENT`] bit | readers of slot 1 in bits 32..63 | readers of slot 0 in bits 0..31.
/// - A slot's value is written only by a writer holding `writing`, while that slot is not current
///   and its reader count was observed to be 0 after it stopped being current.
/// - A reader reads slot `i` only between the compare-and-swap that counted it in slot `i` (which
///   saw `i` current) and its matching decrement.
pub(crate) struct SwapCell<T> {
    state: AtomicU64,
    writing: AtomicBool,
    slots: [UnsafeCell<T>; 2],
    /// Planted bug: the writer does not check for readers in the slot it overwrites.
    #[cfg(any(loom, feature = "planted-bugs"))]
    ignore_readers: AtomicBool,
}

/// Bit of [`SwapCell::state`] that says slot 1 is current.
const CURRENT: u64 = 1 << 63;

/// One reader in slot `index` (0 or 1), as an amount to add to or subtract from the state.
const fn one_reader(index: usize) -> u64 {
    if index == 0 { 1 } else { 1 << 32 }
}

/// Readers announced in slot `index`.
const fn readers(state: u64, index: usize) -> u64 {
    if index == 0 { state & 0x7FFF_FFFF } else { (state >> 32) & 0x7FFF_FFFF }
}

const fn current(state: u64) -> usize {
    if state & CURRENT == 0 { 0 } else { 1 }
}

/// A [`SwapCell::replace`] that did not happen: another writer was busy, or a reader was still in
/// the slot to be overwritten. The value comes back unchanged.
pub(crate) struct SwapBusy<T>(pub(crate) T);

// SAFETY: values move between threads through the cell (`replace` hands the displaced one back
// to the writer), so `T: Send`; readers on several threads share `&T`, so `T: Sync`. The invariants
// above keep a `&mut T` (writer) from coexisting with any `&T` (reader) to the same slot.
unsafe impl<T: Send + Sync> Sync for SwapCell<T> {}
// SAFETY: the cell owns its values.
unsafe impl<T: Send> Send for SwapCell<T> {}

impl<T> SwapCell<T> {
    /// A cell whose current value is `value`; `spare` fills the other slot until the first swap.
    pub(crate) fn new(value: T, spare: T) -> Self {
        SwapCell {
            state: AtomicU64::new(0),
            writing: AtomicBool::new(false),
            slots: [UnsafeCell::new(value), UnsafeCell::new(spare)],
            #[cfg(any(loom, feature = "planted-bugs"))]
            ignore_readers: AtomicBool::new(false),
        }
    }

    /// Plants the bug of a swap that overwrites a slot readers may still be in.
    #[cfg(any(loom, feature = "planted-bugs"))]
    pub(crate) fn plant_ignore_readers(&self) {
        self.ignore_readers.store(true, Ordering::Relaxed);
    }

    fn slot(&self, index: usize) -> &UnsafeCell<T> {
        let [first, second] = &self.slots;
        if index == 0 { first } else { second }
    }

    /// Runs `f` on the current value. Never waits; allocation-free. IRQL: any ≤ DISPATCH_LEVEL.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let mut observed = self.state.load(Ordering::Acquire);
        let index = loop {
            let index = current(observed);
            match self.state.compare_exchange_weak(
                observed,
                observed.wrapping_add(one_reader(index)),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break index,
                Err(now) => {
                    observed = now;
                    spin_hint();
                }
            }
        };
        // SAFETY: counted in slot `index` by a compare-and-swap that saw it current, so no writer
        // may write it until our decrement below (type invariants); the reference does not
        // escape `f`.
        let result = self.slot(index).with(|value| f(unsafe { &*value }));
        self.state.fetch_sub(one_reader(index), Ordering::Release);
        result
    }

    /// Makes `value` current and returns the value it displaced from the spare slot (the one
    /// that was current before the previous swap), for the caller to drop. Never waits.
    /// IRQL: ≤ DISPATCH_LEVEL.
    ///
    /// # Errors
    /// [`SwapBusy`] with `value` when another writer is running or a reader is still in the spare
    /// slot (it started before the previous swap).
    pub(crate) fn replace(&self, value: T) -> Result<T, SwapBusy<T>> {
        if self.writing.swap(true, Ordering::Acquire) {
            return Err(SwapBusy(value));
        }
        let state = self.state.load(Ordering::Acquire);
        let spare = current(state) ^ 1;
        #[cfg(any(loom, feature = "planted-bugs"))]
        let check = !self.ignore_readers.load(Ordering::Relaxed);
        #[cfg(not(any(loom, feature = "planted-bugs")))]
        let check = true;
        if check && readers(state, spare) != 0 {
            self.writing.store(false, Ordering::Release);
            return Err(SwapBusy(value));
        }
        // SAFETY: we hold `writing`; `spare` is not current, so no reader can be counted in it
        // now (counting requires seeing it current), and the last reader that was has
        // decremented with Release before our Acquire load saw the count at 0 (type invariants).
        let displaced = self.slot(spare).with_mut(|old| core::mem::replace(unsafe { &mut *old }, value));
        // Publish: a reader that counts itself in `spare` after this (AcqRel on the same word)
        // sees the value written above.
        self.state.fetch_xor(CURRENT, Ordering::AcqRel);
        self.writing.store(false, Ordering::Release);
        Ok(displaced)
    }
}
