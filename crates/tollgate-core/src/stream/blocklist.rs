//! The kernel's domain blocklist: a flow whose TLS SNI or HTTP `Host` matches a pattern is dropped
//! inline by the stream callout (`FWPS_STREAM_ACTION_DROP_CONNECTION`).
//!
//! - **Lookups** run in classifyFn at DISPATCH_LEVEL, once per flow (when its inspection ends):
//!   they never allocate, never take a lock and never wait. A name matches an exact pattern by one
//!   hash probe, and a `*.suffix` pattern by one probe per parent of the name
//!   ([`HostName::parents`]), so the cost grows with the number of labels in the name, not with
//!   the size of the list.
//! - **Updates** (the blocklist IOCTL, PASSIVE_LEVEL) build a complete new [`DomainSet`] with
//!   fallible allocation, then swap it in ([`crate::sync::SwapCell`]): a classify sees either the
//!   old list or the new one, never a mix, and never waits for the update. If a classify is still
//!   reading the list from two swaps ago, the update is refused for now ([`BlocklistBusy`]) rather
//!   than waiting for it.
//!
//! Matching is [`HostName::matches`] exactly (the rules engine in user mode uses the same
//! function), so the driver and `tollgatectl rules check` cannot disagree about a name.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::hash::BuildHasher;
use core::sync::atomic::{AtomicU64, Ordering};

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use tollgate_inspect::identity::Names;
use tollgate_inspect::name::{HostName, MAX_NAME_LEN, PatternKind};

use crate::sync::{SwapBusy, SwapCell, spin_hint};

/// A pattern's place in the set's byte arena.
#[derive(Clone, Copy, Debug)]
struct Entry {
    offset: u32,
    len: u8,
}

/// Why a [`DomainSet`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlocklistError {
    /// The memory for the set could not be allocated (nothing changed).
    OutOfMemory,
    /// A pattern is empty or longer than 253 bytes (the protocol rejects these first).
    InvalidPattern {
        /// Its index in the list.
        index: usize,
    },
    /// More patterns or bytes than the set can address.
    TooLarge,
}

/// An immutable set of domain patterns, built once and then only read.
pub struct DomainSet {
    /// Every pattern's bytes, back to back.
    arena: Vec<u8>,
    exact: HashTable<Entry>,
    below: HashTable<Entry>,
    hasher: FixedState,
}

/// Seed of the set's hash function. Patterns come from an administrator and lookups only probe,
/// so a fixed seed cannot be used to degrade the table.
const SEED: u64 = 0x746f_6c6c_6761_7465;

impl DomainSet {
    /// The empty set. Allocates nothing.
    #[must_use]
    pub fn empty() -> DomainSet {
        DomainSet {
            arena: Vec::new(),
            exact: HashTable::new(),
            below: HashTable::new(),
            hasher: FixedState::with_seed(SEED),
        }
    }

    /// Builds a set from normalized (lowercase) patterns. The iterator is walked twice: once to
    /// size every allocation, once to fill them, so that nothing reallocates. Duplicates are kept
    /// once. IRQL: PASSIVE_LEVEL (it allocates; nonpaged pool would also allow DISPATCH_LEVEL).
    ///
    /// # Errors
    /// [`BlocklistError`]; nothing is leaked on error.
    pub fn build<'a, I>(patterns: I) -> Result<DomainSet, BlocklistError>
    where
        I: IntoIterator<Item = (PatternKind, &'a [u8])>,
        I::IntoIter: Clone,
    {
        let patterns = patterns.into_iter();
        let (mut exact_count, mut below_count, mut bytes) = (0_usize, 0_usize, 0_usize);
        for (index, (kind, name)) in patterns.clone().enumerate() {
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return Err(BlocklistError::InvalidPattern { index });
            }
            match kind {
                PatternKind::Exact => exact_count = exact_count.saturating_add(1),
                PatternKind::Below => below_count = below_count.saturating_add(1),
            }
            bytes = bytes.saturating_add(name.len());
        }
        if u32::try_from(bytes).is_err() {
            return Err(BlocklistError::TooLarge);
        }
        let mut set = DomainSet::empty();
        set.arena.try_reserve_exact(bytes).map_err(|_| BlocklistError::OutOfMemory)?;
        let hasher = set.hasher.clone();
        let rehash = |entry: &Entry, arena: &[u8]| hasher.hash_one(entry_bytes(arena, *entry));
        {
            let arena = &set.arena;
            set.exact.try_reserve(exact_count, |e| rehash(e, arena)).map_err(|_| BlocklistError::OutOfMemory)?;
            set.below.try_reserve(below_count, |e| rehash(e, arena)).map_err(|_| BlocklistError::OutOfMemory)?;
        }
        for (kind, name) in patterns {
            if set.contains(kind, name) {
                continue;
            }
            let (Ok(offset), Ok(len)) = (u32::try_from(set.arena.len()), u8::try_from(name.len())) else {
                return Err(BlocklistError::TooLarge);
            };
            // Within the reserved capacity: cannot reallocate.
            set.arena.extend_from_slice(name);
            let entry = Entry { offset, len };
            let hash = hasher.hash_one(name);
            let arena = &set.arena;
            let table = match kind {
                PatternKind::Exact => &mut set.exact,
                PatternKind::Below => &mut set.below,
            };
            // Capacity was reserved above, so the rehash closure is never called.
            table.insert_unique(hash, entry, |e| rehash(e, arena));
        }
        Ok(set)
    }

    /// How many distinct patterns the set holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.exact.len().saturating_add(self.below.len())
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the set holds exactly this pattern. IRQL: any; allocation-free.
    #[must_use]
    pub fn contains(&self, kind: PatternKind, name: &[u8]) -> bool {
        let table = match kind {
            PatternKind::Exact => &self.exact,
            PatternKind::Below => &self.below,
        };
        let arena = self.arena.as_slice();
        table.find(self.hasher.hash_one(name), |entry| entry_bytes(arena, *entry) == name).is_some()
    }

    /// Whether some pattern matches `host` (in the sense of [`HostName::matches`]).
    /// IRQL: any; allocation-free.
    #[must_use]
    pub fn matches(&self, host: &HostName) -> bool {
        if self.is_empty() || host.is_empty() {
            return false;
        }
        // `HostName::is` is false for a truncated name, whatever its bytes.
        (!host.is_truncated() && self.contains(PatternKind::Exact, host.as_bytes()))
            || (!self.below.is_empty() && host.parents().any(|parent| self.contains(PatternKind::Below, parent)))
    }
}

fn entry_bytes(arena: &[u8], entry: Entry) -> &[u8] {
    let start = usize::try_from(entry.offset).unwrap_or(usize::MAX);
    arena.get(start..start.saturating_add(usize::from(entry.len))).unwrap_or_default()
}

/// The blocklist could not be replaced right now (a classify is still reading the list from two
/// updates ago, or another update is running): try again. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlocklistBusy;

/// The driver's domain blocklist: the current [`DomainSet`], read without locks.
pub struct DomainBlocklist {
    sets: SwapCell<DomainSet>,
    patterns: AtomicU64,
    generation: AtomicU64,
    /// Swaps retried because a classify was still in the slot to be overwritten.
    busy_retries: AtomicU64,
}

/// How many times [`DomainBlocklist::replace`] retries a busy swap before it gives up. A reader
/// holds a slot for one lookup (well under a microsecond), so a handful of retries is plenty.
const REPLACE_ATTEMPTS: u32 = 64;

impl Default for DomainBlocklist {
    fn default() -> Self {
        DomainBlocklist::new()
    }
}

impl DomainBlocklist {
    /// An empty blocklist. Allocates nothing.
    #[must_use]
    pub fn new() -> DomainBlocklist {
        DomainBlocklist {
            sets: SwapCell::new(DomainSet::empty(), DomainSet::empty()),
            patterns: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            busy_retries: AtomicU64::new(0),
        }
    }

    /// Whether any of `names` matches the current list. IRQL: ≤ DISPATCH_LEVEL; never waits,
    /// never allocates.
    #[must_use]
    pub fn blocks(&self, names: &Names) -> bool {
        if names.is_empty() {
            return false;
        }
        self.sets.read(|set| names.iter().any(|(_, name)| set.matches(name)))
    }

    /// Makes `set` the current list. The list it displaces is freed here, by the caller's thread,
    /// after no classify can be reading it. IRQL: PASSIVE_LEVEL (it frees memory; it never waits).
    ///
    /// # Errors
    /// [`BlocklistBusy`] when the swap could not be made after a few attempts; the old list stays.
    pub fn replace(&self, set: DomainSet) -> Result<(), BlocklistBusy> {
        let patterns = u64::try_from(set.len()).unwrap_or(u64::MAX);
        let mut set = set;
        for _ in 0..REPLACE_ATTEMPTS {
            match self.sets.replace(set) {
                Ok(displaced) => {
                    self.patterns.store(patterns, Ordering::Relaxed);
                    self.generation.fetch_add(1, Ordering::Relaxed);
                    drop(displaced);
                    return Ok(());
                }
                Err(SwapBusy(back)) => {
                    set = back;
                    self.busy_retries.fetch_add(1, Ordering::Relaxed);
                    spin_hint();
                }
            }
        }
        Err(BlocklistBusy)
    }

    /// Patterns in the current list.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.patterns.load(Ordering::Relaxed)
    }

    /// Whether the current list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many times the list has been replaced.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// How many swap attempts found a classify still reading the list they would overwrite.
    #[must_use]
    pub fn busy_retries(&self) -> u64 {
        self.busy_retries.load(Ordering::Relaxed)
    }

    /// Plants the bug of a swap that overwrites a list a classify may still be reading.
    #[cfg(any(loom, feature = "planted-bugs"))]
    pub fn plant_ignore_readers(&self) {
        self.sets.plant_ignore_readers();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn set(patterns: &[(PatternKind, &str)]) -> DomainSet {
        DomainSet::build(patterns.iter().map(|(kind, name)| (*kind, name.as_bytes()))).unwrap()
    }

    fn names(hosts: &[&str]) -> Names {
        let mut names = Names::default();
        for host in hosts {
            names.push(tollgate_inspect::identity::NameSource::TlsSni, HostName::from_wire(host.as_bytes()));
        }
        names
    }

    #[test]
    fn exact_and_below_patterns_match_like_host_name_matches() {
        let s = set(&[(PatternKind::Exact, "example.com"), (PatternKind::Below, "ads.example")]);
        assert_eq!(s.len(), 2);
        assert!(s.matches(&HostName::from_wire(b"EXAMPLE.com.")));
        assert!(!s.matches(&HostName::from_wire(b"www.example.com")));
        assert!(s.matches(&HostName::from_wire(b"x.ads.example")));
        assert!(s.matches(&HostName::from_wire(b"a.b.ads.example")));
        assert!(!s.matches(&HostName::from_wire(b"ads.example")));
        assert!(!s.matches(&HostName::from_wire(b"badads.example")));
        assert!(!s.matches(&HostName::EMPTY));
    }

    #[test]
    fn duplicates_are_kept_once_and_bad_patterns_refused() {
        let s = set(&[(PatternKind::Exact, "a.b"), (PatternKind::Exact, "a.b"), (PatternKind::Below, "a.b")]);
        assert_eq!(s.len(), 2);
        let long = [b'a'; 254];
        assert_eq!(
            DomainSet::build([(PatternKind::Exact, &b"ok"[..]), (PatternKind::Exact, &long[..])]).err(),
            Some(BlocklistError::InvalidPattern { index: 1 })
        );
        assert_eq!(
            DomainSet::build([(PatternKind::Below, &b""[..])]).err(),
            Some(BlocklistError::InvalidPattern { index: 0 })
        );
    }

    #[test]
    fn replace_swaps_the_whole_list() {
        let list = DomainBlocklist::new();
        assert!(!list.blocks(&names(&["evil.example"])));
        assert_eq!(list.replace(set(&[(PatternKind::Exact, "evil.example")])), Ok(()));
        assert!(list.blocks(&names(&["fine.example", "evil.example"])));
        assert_eq!((list.len(), list.generation()), (1, 1));
        assert_eq!(list.replace(DomainSet::empty()), Ok(()));
        assert!(!list.blocks(&names(&["evil.example"])));
        assert_eq!((list.len(), list.generation()), (0, 2));
    }

    proptest::proptest! {
        // No failure file (Miri isolates the file system), and few cases under Miri (it is slow).
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: None,
            cases: if cfg!(miri) { 8 } else { 256 },
            ..proptest::test_runner::Config::default()
        })]

        /// The set's answer is the linear scan's answer: `HostName::matches` over every pattern.
        #[test]
        fn set_lookup_equals_linear_scan(
            patterns in proptest::collection::vec((proptest::bool::ANY, "[ab]{1,2}(\\.[ab]{1,2}){0,2}"), 0..12),
            host in "[aAbB.]{0,10}",
        ) {
            let patterns: Vec<(PatternKind, &[u8])> = patterns
                .iter()
                .map(|(below, name)| (if *below { PatternKind::Below } else { PatternKind::Exact }, name.as_bytes()))
                .collect();
            let set = DomainSet::build(patterns.iter().copied()).map_err(|e| proptest::test_runner::TestCaseError::fail(alloc::format!("{e:?}")))?;
            let host = HostName::from_wire(host.as_bytes());
            let linear = patterns.iter().any(|(kind, name)| host.matches(*kind, name));
            proptest::prop_assert_eq!(set.matches(&host), linear);
        }
    }
}
