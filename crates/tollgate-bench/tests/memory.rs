//! Item 3: the bytes the core allocates per pend-table entry and per cached verdict (kernel
//! platform's types), and per pend, measured with a counting global allocator.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, missing_docs, reason = "test")]

use tollgate_bench::memory::{self, CountingAllocator};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn bytes_per_entry() {
    for (what, entries) in
        [("pend-table entry", memory::pend_table_entries()), ("cached verdict", memory::cache_entries())]
    {
        for entry in &entries {
            println!("{what}: capacity {:>9}: {:>5} B per entry", entry.capacity, entry.per_entry());
        }
    }
    let (units, pend) = memory::per_pend();
    println!("per pend: {} B in {} allocation(s) for {units} units", pend.bytes, pend.allocations);
    println!("baseline node: {:?}", memory::baseline_per_pend());
}
