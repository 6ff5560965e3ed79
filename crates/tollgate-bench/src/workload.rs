//! The connections the benchmarks pend: connection `n` is an outbound TCP connect on its own
//! endpoint to a remote derived from `n`, from a browser whose NT path is typical in length.
//!
//! `n` can be read back from what user mode sees of the connection ([`number_of`]), so the verdict
//! service's thread can run the reauthorization classify that `FwpsCompleteOperation0` triggers
//! for it (WFP runs it inside the completion, in the completing thread).

use core::net::{IpAddr, Ipv4Addr};

use tollgate_core::{
    ClassifyRequest, ConnectionFacts, ConnectionKey, CoreConfig, Direction, EndpointHandle, PendLayer, RuntimeConfig,
    Ticks, Verdict,
};

/// The core every benchmark runs: `capacity` entries (all of which may be pended) and
/// `cache_capacity` cached verdicts, with the timeout and the cache's TTL so far away that nothing
/// expires during a run (expiry is not what is measured, and would make runs differ).
#[must_use]
pub const fn core_config(capacity: u32, cache_capacity: u32) -> CoreConfig {
    CoreConfig {
        capacity,
        cache_capacity,
        cache_ttl: Ticks(u64::MAX / 2),
        teardown_spin_limit: 1_000,
        runtime: RuntimeConfig {
            default_verdict: Verdict::Block,
            pend_timeout: Ticks(u64::MAX / 2),
            max_pended: capacity,
        },
    }
}

/// A typical application path (`FWPS_FIELD_ALE_APP_ID`): 74 UTF-16 units.
pub const APP_PATH: &str = r"\device\harddiskvolume3\program files\google\chrome\application\chrome.exe";

/// [`APP_PATH`] as UTF-16.
#[must_use]
pub fn app_path() -> Vec<u16> {
    APP_PATH.encode_utf16().collect()
}

const LOCAL_PORT_BASE: u16 = 49_152;

/// Connection `n`'s endpoint: a kernel-address-like handle value.
#[must_use]
pub const fn endpoint(n: u64) -> EndpointHandle {
    EndpointHandle(0xffff_9000_0000_0000_u64.wrapping_add(n.wrapping_mul(0x140)))
}

/// Connection `n`'s remote address: its low 32 bits.
#[must_use]
pub fn remote_address(n: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from((n & 0xffff_ffff) as u32))
}

/// Connection `n`'s local port: its bits 32.. (up to 2^46 connections).
#[must_use]
pub const fn local_port(n: u64) -> u16 {
    LOCAL_PORT_BASE + ((n >> 32) & 0x3fff) as u16
}

/// What classify reads for connection `n`.
#[must_use]
pub fn facts(n: u64, app_path: &[u16]) -> ConnectionFacts<'_> {
    ConnectionFacts {
        layer: PendLayer::AuthConnect,
        protocol: 6,
        direction: Direction::Outbound,
        local_address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        local_port: local_port(n),
        remote_address: remote_address(n),
        remote_port: 443,
        process_id: 4_242,
        app_path,
    }
}

/// The classify of connection `n` (initial, or the reauthorization after its completion).
#[must_use]
pub fn request<H>(n: u64, reauthorization: bool, completion_handle: H, app_path: &[u16]) -> ClassifyRequest<'_, H> {
    ClassifyRequest {
        endpoint: endpoint(n),
        completion_handle,
        is_reauthorization: reauthorization,
        can_write_action: true,
        facts: facts(n, app_path),
    }
}

/// The key a reauthorization is matched on (what the baselines search their lists for).
#[must_use]
pub fn key(n: u64) -> ConnectionKey {
    ConnectionKey {
        endpoint: endpoint(n),
        layer: PendLayer::AuthConnect,
        protocol: 6,
        remote_address: remote_address(n),
        remote_port: 443,
    }
}

/// Connection number back from the local port and remote address user mode was given.
#[must_use]
pub fn number_of(local_port: u16, remote: IpAddr) -> Option<u64> {
    let high = u64::from(local_port.checked_sub(LOCAL_PORT_BASE)?);
    match remote {
        IpAddr::V4(address) => Some((high << 32) | u64::from(u32::from(address))),
        IpAddr::V6(_) => None,
    }
}

/// A cheap, reproducible sequence of indices below `n` (xorshift64*), the same for both sides of a
/// comparison, so lookups hit random places of the table instead of one hot line.
#[derive(Clone, Debug)]
pub struct Picker {
    state: u64,
    n: u64,
}

impl Picker {
    /// Indices below `n` (`n` ≥ 1).
    #[must_use]
    pub const fn new(n: u64) -> Picker {
        Picker { state: 0x9e37_79b9_7f4a_7c15, n: if n == 0 { 1 } else { n } }
    }

    /// The next index.
    pub fn next_index(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) % self.n
    }
}
