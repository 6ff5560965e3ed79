//! Known bugs that tests plant in the core to show that they catch them.
//!
//! Compiled only under `cfg(loom)` or the `planted-bugs` feature, never in the driver. Each
//! variant undoes one part of the claim protocol; see [`crate::lifecycle`] for what that part
//! guarantees.
#![deny(unsafe_code)]

use crate::table::{Claimed, PendTable, VerdictError};
use crate::types::{PendId, Resolution};

/// Which bug is planted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PlantedBug {
    /// The real protocol.
    #[default]
    None,
    /// The verdict path checks "still pended?" in one critical section and claims in another
    /// (test-then-set), reading the completion context in the first: two paths can both complete.
    /// Breaks S1.
    NonAtomicClaim,
    /// A teardown that finds a completion in flight returns without waiting for it. Breaks S2.
    TeardownDoesNotWait,
    /// Unload does not wait for classifies between reserve and publish: a pend published after the
    /// sweep is never completed. Breaks S1/S5.
    UnloadIgnoresReserved,
}

/// The second half of the planted test-then-set claim: marks the entry Completing if it still is
/// Pended, and — the bug — hands out the context read in the first half even if it is not.
pub(crate) fn claim_after_peek<C: Copy, N>(
    table: &mut PendTable<C, N>,
    id: PendId,
    peeked: C,
    key: crate::types::ConnectionKey,
) -> Result<Claimed<C>, VerdictError> {
    let _ = table.claim_by_id(id, Resolution::Verdict);
    Ok(Claimed { id, context: peeked, key, resolution: Resolution::Verdict, app_path: alloc::boxed::Box::default() })
}
