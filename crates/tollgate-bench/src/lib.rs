//! Tollgate's performance harnesses: host-only dev tooling, never part of the driver.
//!
//! Everything measured here is the real code: [`tollgate_core::Core`], the real protocol
//! encoders and decoders of `tollgate_protocol`, and `tollgate_control::ControlDevice::device_control`
//! (what the KMDF shell calls for every IOCTL). The baselines are minimal re-implementations of the
//! patterns named in the performance issue, written here:
//! - [`baseline::ListDriver`]: one global spin lock over a doubly linked list of pended
//!   connections, searched by walking it (the pattern of Microsoft's `inspect` sample);
//! - [`roundtrip::Service::OnePerIoctl`]: one connection read per IOCTL and one verdict written per
//!   IOCTL (Portmaster's read/write pattern), over the same core and protocol.
//!
//! The modules:
//! - [`platform`]: the benchmark platform (a spinning lock, a counter for completions, optional
//!   pend-to-completion latency) and a platform with the kernel's associated types for memory;
//! - [`workload`]: the connections (one endpoint per connection, a typical app path);
//! - [`fastpath`]: item 1, the classify fast path at 1 to 1M live entries;
//! - [`roundtrip`]: item 2, pend → GET_PENDED → SUBMIT_VERDICTS → completion with the service in
//!   another thread;
//! - [`memory`]: item 3, the bytes the core allocates per entry (a counting global allocator);
//! - [`contention`]: item 4, whole lifecycles on 1 and 2 threads;
//! - [`report`]: the summary lines (figure, baseline, ratio, goal).
//!
//! Run with `cargo bench -p tollgate-bench` (`-- --quick` for a short run); see `docs/performance.md`.

pub mod baseline;
pub mod contention;
pub mod fastpath;
pub mod ioctl;
pub mod memory;
pub mod platform;
pub mod report;
pub mod roundtrip;
pub mod workload;
