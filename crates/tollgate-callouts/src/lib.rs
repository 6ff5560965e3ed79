//! Tollgate's callouts as the kernel sees them, without the WDK:
//! - [`translate`]: reads `FWPS_INCOMING_VALUES0` / `FWPS_INCOMING_METADATA_VALUES0` /
//!   `FWPS_STREAM_CALLOUT_IO_PACKET0` into the core's FFI-free types, and writes
//!   `FWPS_CLASSIFY_OUT0` from the core's decisions;
//! - [`registration`]: the provider, sublayer, callouts and filters, added in one Fwpm
//!   transaction on a dynamic session and unwound on any failure;
//! - `shims` (Windows only): the `extern "system"` classifyFn / notifyFn / flowDeleteFn that WFP
//!   calls, and the gate through which they reach the driver's state. Only compiled for the
//!   driver's target: they call WFP, which cannot be linked into a host test binary.
#![no_std]

pub mod registration;
#[cfg(windows)]
pub mod shims;
pub mod translate;
