//! The FFI-free vocabulary shared by the core, the callout shims, the protocol and the model.
#![deny(unsafe_code)]

use core::net::IpAddr;

use crate::platform::Ticks;

/// `FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE`: identifies one transport endpoint for its whole
/// life. It is a kernel pointer value, so it is never sent to user mode (S9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointHandle(pub u64);

/// The 64-bit id user mode uses to answer one pended connection.
///
/// It encodes a table slot and that slot's generation, so an id stays unique for as long as
/// the slot is not reused 2³² times, a late or forged id can never reach another connection's
/// entry, and nothing in it is a pointer (S3, S9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PendId(u64);

impl PendId {
    pub(crate) const fn new(slot: u32, generation: u32) -> PendId {
        PendId(((generation as u64) << 32) | slot as u64)
    }

    /// The id as user mode sees it.
    #[must_use]
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// An id as user mode sent it back (it may be forged or stale; the core checks it).
    #[must_use]
    pub const fn from_raw(raw: u64) -> PendId {
        PendId(raw)
    }

    pub(crate) const fn slot(self) -> u32 {
        self.0 as u32
    }

    pub(crate) const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// A decision on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `FWP_ACTION_PERMIT`.
    Permit,
    /// `FWP_ACTION_BLOCK`.
    Block,
}

/// The layers where Tollgate pends (`FwpsPendOperation0` is documented for both; see
/// <https://learn.microsoft.com/en-us/windows-hardware/drivers/network/pending-a-classify>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PendLayer {
    /// FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V4/V6 (bind).
    ResourceAssignment,
    /// FWPS_LAYER_ALE_AUTH_CONNECT_V4/V6 (connect, and each new UDP remote).
    AuthConnect,
}

/// Which way the connection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Initiated by this machine.
    Outbound,
    /// Initiated by the peer.
    Inbound,
}

/// What the classify knows about a connection, borrowed from the layer's incoming values.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionFacts<'a> {
    /// The layer being classified.
    pub layer: PendLayer,
    /// IP protocol number (6 TCP, 17 UDP, …).
    pub protocol: u8,
    /// Direction.
    pub direction: Direction,
    /// Local address.
    pub local_address: IpAddr,
    /// Local port (0 where the layer has none).
    pub local_port: u16,
    /// Remote address (unspecified at resource assignment).
    pub remote_address: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// `FWPS_METADATA_FIELD_PROCESS_ID`.
    pub process_id: u64,
    /// `FWPS_FIELD_*_ALE_APP_ID`: the NT device path of the application, UTF-16, no terminator.
    pub app_path: &'a [u16],
}

impl ConnectionFacts<'_> {
    pub(crate) fn key(&self, endpoint: EndpointHandle) -> ConnectionKey {
        ConnectionKey {
            endpoint,
            layer: self.layer,
            protocol: self.protocol,
            remote_address: self.remote_address,
            remote_port: self.remote_port,
        }
    }
}

/// What a reauthorization classify is matched on: the endpoint plus the remote, because one UDP
/// endpoint is authorized once per remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    /// The endpoint.
    pub endpoint: EndpointHandle,
    /// The layer.
    pub layer: PendLayer,
    /// IP protocol.
    pub protocol: u8,
    /// Remote address.
    pub remote_address: IpAddr,
    /// Remote port.
    pub remote_port: u16,
}

/// Which notification tells the core that an endpoint is going away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TeardownSource {
    /// A classify at FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4/V6.
    EndpointClosure,
    /// A classify at FWPS_LAYER_ALE_RESOURCE_RELEASE_V4/V6.
    ResourceRelease,
    /// flowDeleteFn of a flow context that belongs to the endpoint.
    FlowDelete,
}

/// Who resolved a pend (the path that won its claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// User mode answered.
    Verdict,
    /// The endpoint was torn down (closure, release or flow delete).
    Teardown,
    /// Nobody answered in time; the default verdict was applied.
    Timeout,
    /// The verdict service's handle was cleaned up; the default verdict was applied.
    ServiceCleanup,
    /// The driver is unloading; the default verdict was applied.
    Unload,
}

/// Settings fixed when the core is created (they size its preallocated memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// Table slots allocated at start: the hard ceiling on pended connections. At most
    /// [`CoreConfig::MAX_CAPACITY`]; each costs at most 120 bytes (on x64, with the kernel platform).
    pub capacity: u32,
    /// Verdict-cache slots allocated at start. At most [`CoreConfig::MAX_CAPACITY`]; each costs
    /// at most 72 bytes (on x64).
    pub cache_capacity: u32,
    /// How long a cached verdict answers reauthorization.
    pub cache_ttl: Ticks,
    /// How many times a teardown that cannot pend its notification re-checks an in-flight
    /// completion before it gives up waiting (see [`crate::lifecycle`]).
    pub teardown_spin_limit: u32,
    /// The settings user mode may change later.
    pub runtime: RuntimeConfig,
}

impl CoreConfig {
    /// The largest `capacity` and `cache_capacity` (the tables index their slots with 24 bits).
    pub const MAX_CAPACITY: u32 = crate::index::MAX_SLOTS;
}

/// Settings the verdict service may change while the driver runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Applied on timeout, cap overflow, allocation failure, no service, service cleanup, unload
    /// and reauthorization without a cached verdict. Fail-closed (`Block`) by default (S7).
    pub default_verdict: Verdict,
    /// How long a pend may wait for a verdict (S7).
    pub pend_timeout: Ticks,
    /// Soft cap on pended connections, ≤ `CoreConfig::capacity` (S9).
    pub max_pended: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { default_verdict: Verdict::Block, pend_timeout: Ticks::from_millis(5_000), max_pended: 4_096 }
    }
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            capacity: 4_096,
            cache_capacity: 16_384,
            cache_ttl: Ticks::from_millis(600_000),
            teardown_spin_limit: 100_000,
            runtime: RuntimeConfig::default(),
        }
    }
}
