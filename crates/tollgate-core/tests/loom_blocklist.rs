//! Loom model of the domain blocklist's lock-free swap (`SwapCell`): a stream classify looking a
//! name up while user mode replaces the list twice in a row — the second replacement targets the
//! slot the first one left, which is exactly where a slow reader may still be.
//!
//! Loom tracks every access to the slots' `UnsafeCell`s and fails on a write that is not ordered
//! after a read (a freed or half-written list read by a classify: the stream crash's shape). The
//! same model with the bug planted (the writer skips its check for readers) must fail.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p tollgate-core --release --test loom_blocklist`
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use loom::sync::Arc;
use loom::thread;
use tollgate_core::stream::{DomainBlocklist, DomainSet};
use tollgate_inspect::identity::{NameSource, Names};
use tollgate_inspect::name::{HostName, PatternKind};

/// What the explored interleavings reached (plain std atomics: outside loom's model), so the model
/// proves it exercised the race rather than passing because it never happened.
static READER_SAW_SECOND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static SWAP_WAS_BUSY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn check(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

fn list_of(name: &str) -> DomainSet {
    DomainSet::build([(PatternKind::Exact, name.as_bytes())]).unwrap()
}

fn names(host: &str) -> Names {
    let mut names = Names::default();
    names.push(NameSource::TlsSni, HostName::from_wire(host.as_bytes()));
    names
}

/// One reader, one writer that swaps twice. The reader must see one whole list (the first or a
/// later one), and every write must be ordered after every read of the same slot.
fn lookup_during_two_swaps(planted: bool) {
    check(move || {
        let list = Arc::new(DomainBlocklist::new());
        list.replace(list_of("first.example")).unwrap();
        if planted {
            list.plant_ignore_readers();
        }
        let reader = {
            let list = list.clone();
            thread::spawn(move || {
                let first = list.blocks(&names("first.example"));
                let second = list.blocks(&names("second.example"));
                let third = list.blocks(&names("third.example"));
                if second {
                    READER_SAW_SECOND.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                // At most one list at a time: a lookup never sees two lists' names at once.
                assert!(u8::from(first) + u8::from(second) + u8::from(third) <= 3);
            })
        };
        let second = list.replace(list_of("second.example"));
        let third = list.replace(list_of("third.example"));
        if third.is_err() || list.busy_retries() > 0 {
            SWAP_WAS_BUSY.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        reader.join().unwrap();
        // Whatever the reader did, the writer's successful swaps took effect in order.
        let expected = match (second.is_ok(), third.is_ok()) {
            (_, true) => "third.example",
            (true, false) => "second.example",
            (false, false) => "first.example",
        };
        assert!(list.blocks(&names(expected)), "the last successful swap is not current");
    });
}

#[test]
fn lookup_during_two_swaps_is_race_free() {
    lookup_during_two_swaps(false);
    assert!(READER_SAW_SECOND.load(std::sync::atomic::Ordering::Relaxed), "no interleaving read the middle list");
    assert!(
        SWAP_WAS_BUSY.load(std::sync::atomic::Ordering::Relaxed),
        "no interleaving had a reader in the slot being replaced (no busy swap)"
    );
}

/// The planted bug must be caught: loom reports the writer overwriting a list a reader is in.
#[test]
#[should_panic(expected = "Causality violation")]
fn planted_swap_that_ignores_readers_is_caught() {
    lookup_during_two_swaps(true);
}
