//! Tollgate's pend-lifecycle core: FFI-free, `no_std` + `alloc`.
//!
//! Everything Tollgate decides about a pended connection lives here, generic over a small
//! [`Platform`] trait, so the same code runs in the driver, in host tests, under loom and under
//! Miri:
//! - [`lifecycle`]: the [`Core`], its claim protocol and its state machine (start there);
//! - the per-endpoint pend table (slab + endpoint index + age list) and the bounded verdict cache;
//! - [`stream`]: the inspected-flow table of the stream callout (bounded copy-out, no pointers);
//! - [`platform`]: what the core needs from its host (lock, rundown, clock, pend/complete);
//! - `host` (feature `std`, and under loom): a host platform whose oracle fails loudly on a double
//!   or late completion.
//!
//! The crate has no `unsafe` outside the loom facade (`sync`), the platform trait's lock contract
//! and the host platform's lock: every other module denies `unsafe_code`.
#![no_std]

extern crate alloc;
#[cfg(any(loom, feature = "std"))]
extern crate std;

mod cache;
mod index;
pub mod lifecycle;
#[cfg(any(loom, feature = "planted-bugs"))]
pub mod planted;
pub mod platform;
mod stats;
pub mod stream;
mod sync;
mod table;
mod types;

#[cfg(any(loom, feature = "std"))]
pub mod host;

pub use lifecycle::{
    ClassifyDecision, ClassifyOutWrite, ClassifyRequest, Core, CoreError, DecisionReason, PendedConnection,
    TeardownOutcome,
};
pub use platform::{Platform, PlatformError, RawSpinLock, Rundown, Ticks};
pub use stats::StatsSnapshot;
pub use table::VerdictError;
pub use types::{
    ConnectionFacts, ConnectionKey, CoreConfig, Direction, EndpointHandle, PendId, PendLayer, Resolution,
    RuntimeConfig, TeardownSource, Verdict,
};

/// `STATUS_FWP_CANNOT_PEND` (ntstatus.h): what `FwpsPendOperation0` returns in a reauthorization.
pub const STATUS_FWP_CANNOT_PEND: i32 = 0xC022_0103_u32 as i32;
