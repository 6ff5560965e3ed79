//! Tollgate's stream parsers and DNS-name rules: what the stream callout reads out of the first
//! outbound bytes of a TCP flow, and how names are compared.
//!
//! The stream callout runs in classifyFn at IRQL ≤ DISPATCH_LEVEL on bytes that any local process
//! (or a man in the middle of its own connection) chooses, so this crate is on the kernel's attack
//! surface:
//! - `no_std`, no allocation, no `unsafe`, no dependencies;
//! - no panics: every read is a checked `get`, every length is checked against what is left
//!   (the workspace lints deny `unwrap`, `expect`, indexing and `panic!`), and the fuzz targets in
//!   `fuzz/` run every parser on arbitrary bytes;
//! - bounded work: each parser makes one pass over at most the bytes it is given, with no
//!   recursion and no backtracking.
//!
//! Modules:
//! - [`identity`]: what the parsers report ([`identity::Identity`]: protocol, names, ALPN, facts);
//! - [`name`]: DNS names — the strict check for the patterns user mode configures, and the lenient
//!   normalization of names seen on the wire (which must match however a client spells them).
#![no_std]
#![forbid(unsafe_code)]

pub mod identity;
pub mod name;
