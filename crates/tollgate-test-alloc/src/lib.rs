//! The global allocator of Tollgate's allocation tests: it counts a thread's allocations, can make
//! the Nth of them fail, and keeps the bytes allocated minus the bytes freed while it watches.
//!
//! The driver's promises about memory are of two kinds: a hot path allocates nothing after start,
//! and every allocation is fallible (a NULL gets the default verdict or fails the load cleanly,
//! and frees what was taken). Both are checked by running the real code under this allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: tollgate_test_alloc::TestAllocator = tollgate_test_alloc::TestAllocator;
//!
//! let ((), seen) = tollgate_test_alloc::watch(Watch::count(), || classify());
//! assert_eq!(seen.allocations, 0);
//! ```
//!
//! Watching is per thread: the test harness allocates on its own threads (starting the next test,
//! capturing output) while a measurement runs, and that is not the code under test. A binary that
//! installs the allocator should hold nothing else that allocates on the watched thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// What to watch for on this thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    /// Count (and fail) only allocations of this alignment; 0 counts all. The model tests use it to
    /// pick out the driver's UTF-16 buffers (alignment 2) among the model's own allocations.
    pub only_align: usize,
    /// Fail the counted allocation with this number (1-based); 0 fails none.
    pub fail_at: u64,
}

impl Watch {
    /// Count every allocation, fail none.
    #[must_use]
    pub const fn count() -> Watch {
        Watch { only_align: 0, fail_at: 0 }
    }

    /// Count every allocation and fail the `n`th (1-based; 0 fails none).
    #[must_use]
    pub const fn fail_at(n: u64) -> Watch {
        Watch { only_align: 0, fail_at: n }
    }
}

/// What the allocator saw while watching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Allocations counted (those of the watched alignment), including the failed one.
    pub allocations: u64,
    /// Allocations made to fail (0 or 1).
    pub failed: u64,
    /// Bytes allocated minus bytes freed, over all alignments; 0 when everything taken was freed.
    pub net_bytes: i64,
}

#[derive(Clone, Copy)]
struct State {
    watching: bool,
    watch: Watch,
    seen: Seen,
}

const IDLE: State = State {
    watching: false,
    watch: Watch { only_align: 0, fail_at: 0 },
    seen: Seen { allocations: 0, failed: 0, net_bytes: 0 },
};

thread_local! {
    // `const` and without a destructor: safe to touch from inside the allocator.
    static STATE: Cell<State> = const { Cell::new(IDLE) };
}

/// Runs `f` with this thread watched as `watch` says; returns its result and what was seen.
pub fn watch<T>(watch: Watch, f: impl FnOnce() -> T) -> (T, Seen) {
    STATE.with(|s| s.set(State { watching: true, watch, seen: Seen::default() }));
    let result = f();
    let seen = STATE.with(Cell::get).seen;
    STATE.with(|s| s.set(IDLE));
    (result, seen)
}

/// The number of allocations `f` makes on this thread.
pub fn allocations_during(f: impl FnOnce()) -> u64 {
    watch(Watch::count(), f).1.allocations
}

/// A global allocator that forwards to the system allocator, counting and failing as the current
/// thread's [`watch`] asks.
pub struct TestAllocator;

fn bytes(layout: Layout) -> i64 {
    i64::try_from(layout.size()).unwrap_or(i64::MAX)
}

// SAFETY: every allocation that is not failed is forwarded unchanged to the system allocator, and
// a failed one returns NULL, which `GlobalAlloc::alloc` may always do; the bookkeeping is a
// thread-local `Cell` of plain integers (no allocation, no destructor).
unsafe impl GlobalAlloc for TestAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut state = STATE.with(Cell::get);
        if state.watching {
            let only = state.watch.only_align;
            if only == 0 || layout.align() == only {
                state.seen.allocations += 1;
                if state.seen.allocations == state.watch.fail_at {
                    state.seen.failed += 1;
                    STATE.with(|s| s.set(state));
                    return std::ptr::null_mut();
                }
            }
            state.seen.net_bytes += bytes(layout);
            STATE.with(|s| s.set(state));
        }
        // SAFETY: the caller's contract for `alloc` is passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let mut state = STATE.with(Cell::get);
        if state.watching {
            state.seen.net_bytes -= bytes(layout);
            STATE.with(|s| s.set(state));
        }
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes through it).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static GLOBAL: TestAllocator = TestAllocator;

    #[test]
    fn counts_fails_the_nth_and_balances_bytes() {
        let (len, seen) = watch(Watch::count(), || {
            let a = std::hint::black_box(vec![1_u8; 10]);
            let b = std::hint::black_box(vec![2_u16; 3]);
            a.len() + b.len()
        });
        assert_eq!(len, 13);
        assert_eq!(seen, Seen { allocations: 2, failed: 0, net_bytes: 0 });

        let (got, seen) = watch(Watch::fail_at(2), || {
            let mut first: Vec<u8> = Vec::new();
            let mut second: Vec<u8> = Vec::new();
            (first.try_reserve(8).is_ok(), second.try_reserve(8).is_ok())
        });
        assert_eq!(got, (true, false));
        assert_eq!(seen, Seen { allocations: 2, failed: 1, net_bytes: 0 });

        let (kept, seen) = watch(Watch { only_align: 2, fail_at: 0 }, || (vec![0_u8; 4], vec![0_u16; 4]));
        assert_eq!(seen.allocations, 1, "only the u16 buffer has alignment 2");
        assert_eq!(seen.net_bytes, 12, "both are still held");
        drop(kept);
        assert_eq!(allocations_during(|| drop(Vec::<u8>::with_capacity(0))), 0);
    }
}
