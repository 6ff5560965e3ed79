//! Item 3: the bytes the core allocates per pend-table entry and per cached verdict (with the
//! kernel platform's types), and per pend, measured with a counting global allocator; the goal is
//! at most 128 bytes per entry at every capacity.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, missing_docs, reason = "test")]

use tollgate_bench::memory::{self, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The counter is global: measurements in this binary must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const GOAL: u64 = 128;
/// What `CoreConfig`'s docs promise (x64, kernel platform's types).
const DOCUMENTED: [(&str, u64); 2] = [("pend-table entry", 120), ("cached verdict", 72)];

#[test]
fn an_entry_costs_at_most_128_bytes() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for (what, entries) in
        [("pend-table entry", memory::pend_table_entries()), ("cached verdict", memory::cache_entries())]
    {
        for entry in &entries {
            println!("{what}: capacity {:>9}: {:>4} B per entry", entry.capacity, entry.per_entry());
            assert!(entry.per_entry() <= GOAL, "{what} at capacity {}: {} B", entry.capacity, entry.per_entry());
            let documented = DOCUMENTED.iter().find(|(name, _)| *name == what).map_or(GOAL, |&(_, bytes)| bytes);
            assert!(entry.per_entry() <= documented, "{what}: more than CoreConfig documents ({documented} B)");
            // Everything is preallocated: no capacity is free.
            assert!(entry.per_entry() > 0, "{what}: nothing measured (is the counting allocator installed?)");
        }
    }
}

#[test]
fn a_pend_allocates_only_its_app_path_copy() {
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (units, pend) = memory::per_pend();
    println!("per pend: {} B in {} allocation(s) for {units} UTF-16 units", pend.bytes, pend.allocations);
    assert_eq!(pend.allocations, 1);
    assert_eq!(pend.bytes, 2 * units as u64);
    let (node, path) = memory::baseline_per_pend();
    println!("baseline: {node} B per list node + {path} B app-path copy");
}
