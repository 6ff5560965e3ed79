//! Tollgate KMDF shell. Off Windows this crate is empty: see the workspace crates for the driver logic.
#![no_std]
