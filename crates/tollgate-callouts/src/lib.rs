//! Tollgate's callouts as the kernel sees them, without the WDK:
//! - [`translate`]: reads `FWPS_INCOMING_VALUES0` / `FWPS_INCOMING_METADATA_VALUES0` /
//!   `FWPS_STREAM_CALLOUT_IO_PACKET0` into the core's FFI-free types, and writes
//!   `FWPS_CLASSIFY_OUT0` from the core's decisions;
//! - [`registration`]: the provider, sublayer, callouts and filters, added in one Fwpm
//!   transaction on a dynamic session and unwound on any failure.
#![no_std]

pub mod registration;
pub mod translate;
