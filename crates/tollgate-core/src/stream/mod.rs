//! Inline stream inspection: the stream callout's flow table, the events it reports, and the
//! kernel's domain blocklist.
//!
//! - [`flows`]: one entry per inspected flow, the copy discipline of S6 and the per-flow facts;
//! - [`event`]: what is reported to user mode about a flow;
//! - [`blocklist`]: the domain patterns whose flows are dropped inline.

pub mod blocklist;
pub mod event;
pub mod flows;

pub use blocklist::{BlocklistBusy, BlocklistError, DomainBlocklist, DomainSet};
pub use event::{FlowCounters, FlowEndpoints, FlowEvent, FlowEventKind, InspectionEnd, StreamStats, StreamVerdict};
pub use flows::*;
