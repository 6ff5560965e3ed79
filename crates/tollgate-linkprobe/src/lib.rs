//! The link probe of the Linux cross-link gate (`crates/tollgate-linkcheck/link-gate.sh`).
//!
//! Everything of the driver except the KMDF shell (which needs the WDK) — the core over the real
//! kernel platform (`tollgate-kernel`), the callout shims and Fwpm registration
//! (`tollgate-callouts`), the WFP bindings, the protocol and the control device — linked into one
//! kernel-mode image by rust-lld for `x86_64-pc-windows-msvc`, so `tollgate-linkcheck` can prove
//! what the image imports and that it is a native-subsystem driver. The image is **never loaded or
//! run**: it is only linked and inspected. Its `DriverEntry` wires the crates together as the
//! shell's `initialize` and unload do, only so that the real code is linked and nothing is
//! dead-stripped.
//!
//! The code exists only under `cfg(tollgate_linkprobe)`, which `build.rs` sets when
//! `TOLLGATE_LINKPROBE=1` and the target is `x86_64-pc-windows-msvc`. In every other build (host
//! `cargo test`/`clippy --workspace`) this crate is empty.
#![cfg_attr(tollgate_linkprobe, no_std)]

#[cfg(tollgate_linkprobe)]
mod probe;
