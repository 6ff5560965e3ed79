//! Item 3: the bytes of (nonpaged) pool an entry costs, measured from the real allocations.
//!
//! The core allocates everything at start (`Core::new`), sized by its configuration, plus one
//! allocation per pend: the copy of the app path. So:
//! - **per pend-table entry**: the bytes `Core::new` allocates per unit of `capacity` (the slot,
//!   its share of the endpoint index, the teardown-wait bookkeeping sized by the table), with the
//!   verdict cache set to zero;
//! - **per cached verdict**: the bytes per unit of `cache_capacity`, with the table set to zero;
//! - **per pend**: the bytes one classify allocates (the app-path copy: 2 bytes per UTF-16 unit).
//!
//! The table is sized by the platform's associated types, so it is measured with the kernel
//! platform's ([`KernelShapedPlatform`]). Hash tables round their bucket counts to powers of two,
//! so the bytes per entry depend on the capacity: each figure is measured at several capacities.
//!
//! Measuring needs [`CountingAllocator`] installed as the global allocator of the binary (the
//! memory test, the benchmark and the examples do it); without it every figure is zero.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::alloc::System;

use tollgate_core::host::AtomicRundown;
use tollgate_core::{ClassifyDecision, Core};

use crate::baseline::{LinkedEntries, ListEntry};
use crate::platform::KernelShapedPlatform;
use crate::workload::{app_path, core_config, key, request};

/// Counts the bytes requested on a thread while [`measure`] runs there, and forwards to the system
/// allocator. Blocks of up to 512 bytes are allocated rounded up to their 16-byte size class; while
/// [`set_lookaside`] is on, freed ones go to a free list of their class behind a spin lock held for
/// a few instructions, and allocations take from it first. Like the pool's lookaside lists, such a
/// free never sleeps, even for a block another thread allocated, where glibc's free can wait on a
/// futex for the other thread's arena (which stalled the round trip's service thread for a
/// scheduler wake-up at a time). The round trip turns it on (both sides of that comparison run on
/// it); elsewhere glibc's per-thread caches serve threads that free their own blocks better than
/// one shared list would.
#[derive(Debug)]
pub struct CountingAllocator;

static BYTES: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if COUNTING.with(Cell::get) {
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

static LOOKASIDE: AtomicBool = AtomicBool::new(false);

/// Turns the free lists on or off (see [`CountingAllocator`]); returns the previous setting.
pub fn set_lookaside(on: bool) -> bool {
    LOOKASIDE.swap(on, Ordering::AcqRel)
}

const CLASS_BYTES: usize = 16;
const SMALL_MAX: usize = 512;
const CLASSES: usize = SMALL_MAX / CLASS_BYTES;

/// A free list of one size class: freed blocks, each holding the address of the next.
struct FreeList {
    locked: AtomicBool,
    head: AtomicPtr<u8>,
}

#[allow(clippy::declare_interior_mutable_const, reason = "the initializer of the static array below")]
const EMPTY_LIST: FreeList = FreeList { locked: AtomicBool::new(false), head: AtomicPtr::new(core::ptr::null_mut()) };
static FREE_LISTS: [FreeList; CLASSES] = [EMPTY_LIST; CLASSES];

/// The size class of a small block, or `None`.
fn class_of(layout: Layout) -> Option<(&'static FreeList, Layout)> {
    if layout.size() > SMALL_MAX || layout.align() > CLASS_BYTES {
        return None;
    }
    let class = layout.size().max(1).div_ceil(CLASS_BYTES);
    let list = FREE_LISTS.get(class - 1)?;
    Some((list, Layout::from_size_align(class * CLASS_BYTES, CLASS_BYTES).ok()?))
}

impl FreeList {
    fn lock(&self) {
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            core::hint::spin_loop();
        }
    }

    fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// A block of this class, or null.
    fn pop(&self) -> *mut u8 {
        self.lock();
        let block = self.head.load(Ordering::Relaxed);
        if !block.is_null() {
            // SAFETY: `block` is on the list, so it is a freed block of this class (at least 16
            // bytes, 16-aligned) whose first word `push` wrote; the lock keeps it ours.
            let next = unsafe { block.cast::<*mut u8>().read() };
            self.head.store(next, Ordering::Relaxed);
        }
        self.unlock();
        block
    }

    /// Puts a freed block of this class on the list.
    fn push(&self, block: *mut u8) {
        self.lock();
        // SAFETY: `block` was allocated for this class (at least 16 bytes, 16-aligned) and was
        // just freed by its owner, so this thread may write its first word.
        unsafe { block.cast::<*mut u8>().write(self.head.load(Ordering::Relaxed)) };
        self.head.store(block, Ordering::Relaxed);
        self.unlock();
    }
}

// SAFETY: small blocks are handed out once per allocation (a block is either on one free list,
// under its lock, or owned by exactly one caller) and are at least as large and as aligned as the
// layout asked for; everything else is forwarded unchanged to the system allocator, and each block
// is released the way it was obtained (a small layout always maps to the same class).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        match class_of(layout) {
            Some((list, class_layout)) => {
                let block = list.pop();
                if block.is_null() {
                    // SAFETY: `class_layout` has a non-zero size.
                    unsafe { System.alloc(class_layout) }
                } else {
                    block
                }
            }
            // SAFETY: the caller's contract for `alloc` is passed through unchanged.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class_of(layout).is_none() {
            count(layout.size());
            // SAFETY: the caller's contract for `alloc_zeroed` is passed through unchanged.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: the caller's contract for `alloc` is the same as for `alloc_zeroed`.
        let block = unsafe { self.alloc(layout) };
        if !block.is_null() {
            // SAFETY: `block` is valid for `layout.size()` bytes.
            unsafe { block.write_bytes(0, layout.size()) };
        }
        block
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class_of(layout) {
            Some((list, _)) if LOOKASIDE.load(Ordering::Relaxed) => list.push(ptr),
            // SAFETY: small blocks are always allocated from `System` with their class layout
            // (those on the free lists too).
            Some((_, class_layout)) => unsafe { System.dealloc(ptr, class_layout) },
            // SAFETY: `ptr` came from `System` with `layout` (large layouts always go there).
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        if class_of(layout).is_none() && class_of(new_layout).is_none() {
            count(new_size.saturating_sub(layout.size()));
            // SAFETY: both layouts are large, so `ptr` came from `System` with `layout`; the
            // caller's contract for `realloc` is passed through.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller's contract for `realloc` covers `new_layout` (non-zero size, valid).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes and do not overlap.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: `ptr` was allocated by this allocator with `layout`.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

/// Bytes and allocations one measurement saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocated {
    /// Bytes requested (allocator overhead not included).
    pub bytes: u64,
    /// Allocation calls.
    pub allocations: u64,
}

/// Runs `f` and counts what it allocated on this thread. Not reentrant; serialize callers.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Allocated) {
    BYTES.store(0, Ordering::SeqCst);
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.with(|counting| counting.set(true));
    let result = f();
    COUNTING.with(|counting| counting.set(false));
    let allocated = Allocated { bytes: BYTES.load(Ordering::SeqCst), allocations: ALLOCATIONS.load(Ordering::SeqCst) };
    (result, allocated)
}

/// Bytes `Core::new` allocates for this configuration, on the kernel platform's types.
///
/// # Panics
/// If the core cannot be created.
#[must_use]
#[allow(clippy::expect_used, reason = "measurement harness")]
pub fn core_bytes(capacity: u32, cache_capacity: u32) -> u64 {
    let (core, allocated) = measure(|| {
        Core::new(KernelShapedPlatform, AtomicRundown::default(), core_config(capacity, cache_capacity)).expect("core")
    });
    drop(core);
    allocated.bytes
}

/// Bytes per entry at one capacity, in hundredths of a byte (exact to the division).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerEntry {
    /// The capacity measured.
    pub capacity: u32,
    /// Bytes allocated for it, minus the fixed part (what a zero capacity allocates).
    pub bytes: u64,
}

impl PerEntry {
    /// Bytes per entry, rounded up.
    #[must_use]
    pub fn per_entry(&self) -> u64 {
        self.bytes.div_ceil(u64::from(self.capacity.max(1)))
    }
}

/// The capacities measured: the defaults (table 4,096, cache 16,384), other powers of two, and one
/// past each of them, where the power-of-two bucket arrays double (the worst case per entry).
pub const CAPACITIES: [u32; 10] = [1_000, 4_096, 4_097, 16_384, 16_385, 65_536, 65_537, 100_000, 1_000_000, 1_048_577];

/// Bytes per pend-table entry at each of [`CAPACITIES`].
#[must_use]
pub fn pend_table_entries() -> Vec<PerEntry> {
    let fixed = core_bytes(0, 0);
    CAPACITIES
        .iter()
        .map(|&capacity| PerEntry { capacity, bytes: core_bytes(capacity, 0).saturating_sub(fixed) })
        .collect()
}

/// Bytes per cached verdict at each of [`CAPACITIES`].
#[must_use]
pub fn cache_entries() -> Vec<PerEntry> {
    let fixed = core_bytes(0, 0);
    CAPACITIES
        .iter()
        .map(|&capacity| PerEntry { capacity, bytes: core_bytes(0, capacity).saturating_sub(fixed) })
        .collect()
}

/// Bytes and allocations one pend allocates (the app-path copy), with [`crate::workload::APP_PATH`].
///
/// # Panics
/// If the classify does not pend.
#[must_use]
#[allow(clippy::expect_used, clippy::panic, reason = "measurement harness")]
pub fn per_pend() -> (usize, Allocated) {
    let core = Core::new(KernelShapedPlatform, AtomicRundown::default(), core_config(16, 16)).expect("core");
    core.attach_service().expect("service");
    let path = app_path();
    let (decision, allocated) = measure(|| core.classify(request(1, false, Some(0x1000), &path)));
    assert!(matches!(decision, ClassifyDecision::Pended(_)), "pended");
    let _ = core.begin_unload();
    (path.len(), allocated)
}

/// Bytes one pended connection costs the list baseline: its node (the list's vector grows in
/// steps, so this is the vector's bytes per node at a large size) plus its app-path copy.
#[must_use]
pub fn baseline_per_pend() -> (u64, u64) {
    const NODES: u64 = 1 << 16;
    let path = app_path();
    let (list, allocated) = measure(|| {
        let mut list = LinkedEntries::with_capacity(NODES as usize);
        for n in 0..NODES {
            list.push_back(ListEntry { key: key(n), id: n, decision: None, app_path: Vec::new() });
        }
        list
    });
    drop(list);
    (allocated.bytes / NODES, 2 * path.len() as u64)
}
