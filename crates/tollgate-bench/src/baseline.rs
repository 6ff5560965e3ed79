//! The classify-path baseline: one global spin lock over a doubly linked list of pended
//! connections, searched by walking it — the pattern of Microsoft's `inspect` sample (its
//! `gConnList` of `TL_INSPECT_PENDED_PACKET`s under `gConnListLock`, walked at reauthorization for
//! the pended connect that matches and has a decision), written here from that description.
//!
//! The list is intrusive like a `LIST_ENTRY` chain: nodes sit in one vector, linked by index, so a
//! walk chases links while a removal, once the node is found, is O(1). Keys, verdicts, the app-path
//! copy per pend and the lock are the same as Tollgate's, so the comparison is about the data
//! structure alone.

use tollgate_core::{ConnectionKey, EndpointHandle, Verdict};

use crate::platform::SpinMutex;

const NIL: u32 = u32::MAX;

/// One pended connection in the list.
#[derive(Debug)]
pub struct ListEntry {
    /// The endpoint and remote it is matched on.
    pub key: ConnectionKey,
    /// The id given to user mode.
    pub id: u64,
    /// The decision, once user mode gave it.
    pub decision: Option<Verdict>,
    /// The copy of the application path.
    pub app_path: Vec<u16>,
}

#[derive(Debug)]
struct Node {
    entry: Option<ListEntry>,
    prev: u32,
    next: u32,
}

/// A doubly linked list in a vector (see the module docs).
#[derive(Debug, Default)]
pub struct LinkedEntries {
    nodes: Vec<Node>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    len: usize,
}

impl LinkedEntries {
    /// An empty list with room for `capacity` entries before it grows.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        LinkedEntries { nodes: Vec::with_capacity(capacity), free: Vec::new(), head: NIL, tail: NIL, len: 0 }
    }

    /// Entries in the list.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `InsertTailList`.
    pub fn push_back(&mut self, entry: ListEntry) {
        let node = Node { entry: Some(entry), prev: self.tail, next: NIL };
        let index = match self.free.pop() {
            Some(index) => {
                if let Some(slot) = self.nodes.get_mut(index as usize) {
                    *slot = node;
                }
                index
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        match self.nodes.get_mut(self.tail as usize) {
            Some(tail) => tail.next = index,
            None => self.head = index,
        }
        self.tail = index;
        self.len += 1;
    }

    /// Walks from the head and returns the first node `matches` accepts.
    pub fn find(&self, mut matches: impl FnMut(&ListEntry) -> bool) -> Option<u32> {
        let mut index = self.head;
        while let Some(node) = self.nodes.get(index as usize) {
            if node.entry.as_ref().is_some_and(&mut matches) {
                return Some(index);
            }
            index = node.next;
        }
        None
    }

    /// The entry at a node `find` returned.
    pub fn get_mut(&mut self, index: u32) -> Option<&mut ListEntry> {
        self.nodes.get_mut(index as usize)?.entry.as_mut()
    }

    /// `RemoveEntryList`.
    pub fn remove(&mut self, index: u32) -> Option<ListEntry> {
        let node = self.nodes.get_mut(index as usize)?;
        let entry = node.entry.take()?;
        let (prev, next) = (node.prev, node.next);
        match self.nodes.get_mut(prev as usize) {
            Some(node) => node.next = next,
            None => self.head = next,
        }
        match self.nodes.get_mut(next as usize) {
            Some(node) => node.prev = prev,
            None => self.tail = prev,
        }
        self.free.push(index);
        self.len -= 1;
        Some(entry)
    }

    /// Removes every entry `matches` accepts, in one walk; returns how many.
    pub fn remove_all(&mut self, mut matches: impl FnMut(&ListEntry) -> bool) -> usize {
        let mut removed = 0;
        let mut index = self.head;
        while let Some(node) = self.nodes.get(index as usize) {
            let next = node.next;
            if node.entry.as_ref().is_some_and(&mut matches) {
                self.remove(index);
                removed += 1;
            }
            index = next;
        }
        removed
    }
}

/// A driver's pend state kept the baseline way (see the module docs).
pub struct ListDriver {
    list: SpinMutex<LinkedEntries>,
    next_id: core::sync::atomic::AtomicU64,
    default_verdict: Verdict,
}

impl ListDriver {
    /// An empty list, preallocated for `capacity` entries.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        ListDriver {
            list: SpinMutex::new(LinkedEntries::with_capacity(capacity)),
            next_id: core::sync::atomic::AtomicU64::new(1),
            default_verdict: Verdict::Block,
        }
    }

    /// Initial classify: copy the app path, then insert the pended connect at the tail.
    pub fn pend(&self, key: ConnectionKey, app_path: &[u16]) -> u64 {
        let id = self.next_id.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        let entry = ListEntry { key, id, decision: None, app_path: app_path.to_vec() };
        self.list.with(|list| list.push_back(entry));
        id
    }

    /// A pended connect with its decision already recorded (to populate the list).
    pub fn insert_decided(&self, key: ConnectionKey, verdict: Verdict) {
        let id = self.next_id.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        let entry = ListEntry { key, id, decision: Some(verdict), app_path: Vec::new() };
        self.list.with(|list| list.push_back(entry));
    }

    /// User mode's verdict: walk to the id and record the decision. False if not found.
    pub fn verdict(&self, id: u64, verdict: Verdict) -> bool {
        self.list.with(|list| match list.find(|entry| entry.id == id && entry.decision.is_none()) {
            Some(index) => {
                if let Some(entry) = list.get_mut(index) {
                    entry.decision = Some(verdict);
                }
                true
            }
            None => false,
        })
    }

    /// Reauthorization: walk for the connect with a decision; `remove` takes it off the list (as
    /// the sample does after the completion's reauthorization). None: not decided here.
    pub fn reauthorize(&self, key: &ConnectionKey, remove: bool) -> Option<Verdict> {
        self.list.with(|list| {
            let index = list.find(|entry| entry.key == *key && entry.decision.is_some())?;
            if remove { list.remove(index)?.decision } else { list.get_mut(index)?.decision }
        })
    }

    /// Reauthorization answer, with the default verdict when nothing is recorded.
    pub fn reauthorization_verdict(&self, key: &ConnectionKey) -> Verdict {
        self.reauthorize(key, false).unwrap_or(self.default_verdict)
    }

    /// Endpoint teardown: every entry of the endpoint must go, so the whole list is walked.
    pub fn teardown(&self, endpoint: EndpointHandle) -> usize {
        self.list.with(|list| list.remove_all(|entry| entry.key.endpoint == endpoint))
    }

    /// Entries in the list.
    pub fn len(&self) -> usize {
        self.list.with(|list| list.len())
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
