//! The simulated machine's processes and the connections they open.
//!
//! A small catalog of realistic applications — browsers, a DNS client, an updater that phones
//! home, an SSH client, a game on UDP, an unknown binary from the Downloads folder — each with its
//! own protocol mix, remotes, lifetimes and traffic. The rules file used by `simulate`
//! (`simulate/rules.toml`) decides them the way a real policy would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tollgate_inspect::samples::{self, HelloBuilder};
use tollgate_wfp_model::Protocol;

/// One kind of application.
#[derive(Clone, Copy, Debug)]
pub struct AppProfile {
    /// Short name for the report.
    pub name: &'static str,
    /// NT device path, as `FWPS_FIELD_ALE_APP_ID` carries it.
    pub path: &'static str,
    /// Relative weight among new connections.
    pub weight: u32,
    /// Percentage of its connections that are UDP.
    pub udp_percent: u32,
    /// Remote ports it uses.
    pub ports: &'static [u16],
    /// Percentage of connections that stay open long (tens of seconds).
    pub long_lived_percent: u32,
    /// The names it connects to (TLS SNI / HTTP `Host` of its first bytes), a few of them caught by
    /// the simulation's domain block rule.
    pub domains: &'static [&'static str],
    /// The shape of its TLS ClientHello.
    pub tls: TlsStyle,
}

/// How an app's TLS stack writes its ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsStyle {
    /// A browser: GREASE, a post-quantum key share, ECH, shuffled extensions (about 1.8 KB: two
    /// TCP segments).
    Browser,
    /// A TLS library (about 500 bytes).
    Library,
}

/// The catalog.
pub const APPS: [AppProfile; 7] = [
    AppProfile {
        name: "firefox",
        path: r"\device\harddiskvolume3\program files\mozilla firefox\firefox.exe",
        weight: 30,
        udp_percent: 10,
        ports: &[443, 443, 443, 80],
        long_lived_percent: 20,
        domains: &[
            "www.example.com",
            "cdn.example.net",
            "static.example.org",
            "Telemetry.Mozilla.Org.",
            "incoming.telemetry.mozilla.org",
            "xn--bcher-kva.example",
        ],
        tls: TlsStyle::Browser,
    },
    AppProfile {
        name: "chrome",
        path: r"\device\harddiskvolume3\program files\google\chrome\application\chrome.exe",
        weight: 25,
        udp_percent: 20,
        ports: &[443, 443, 80],
        long_lived_percent: 20,
        domains: &[
            "www.example.com",
            "fonts.example.net",
            "video.example.com",
            "pagead.ads.example",
            "www.ads.example",
        ],
        tls: TlsStyle::Browser,
    },
    AppProfile {
        name: "svchost-dns",
        path: r"\device\harddiskvolume3\windows\system32\svchost.exe",
        weight: 20,
        udp_percent: 100,
        ports: &[53],
        long_lived_percent: 0,
        domains: &[],
        tls: TlsStyle::Library,
    },
    AppProfile {
        name: "updater",
        path: r"\device\harddiskvolume3\program files\vendor\updater.exe",
        weight: 8,
        udp_percent: 0,
        ports: &[443, 8443],
        long_lived_percent: 5,
        domains: &["update.vendor.example", "vortex.data.microsoft.com"],
        tls: TlsStyle::Library,
    },
    AppProfile {
        name: "ssh",
        path: r"\device\harddiskvolume3\windows\system32\openssh\ssh.exe",
        weight: 5,
        udp_percent: 0,
        ports: &[22],
        long_lived_percent: 80,
        domains: &[],
        tls: TlsStyle::Library,
    },
    AppProfile {
        name: "game",
        path: r"\device\harddiskvolume3\games\arena\arena.exe",
        weight: 7,
        udp_percent: 90,
        ports: &[27015, 27016, 3478],
        long_lived_percent: 50,
        domains: &["lobby.arena.example"],
        tls: TlsStyle::Library,
    },
    AppProfile {
        name: "unknown",
        path: r"\device\harddiskvolume3\users\alice\downloads\free_stuff.exe",
        weight: 5,
        udp_percent: 30,
        ports: &[443, 6667, 4444],
        long_lived_percent: 10,
        domains: &["c2.bad.example", "198.51.100.7"],
        tls: TlsStyle::Library,
    },
];

/// A running process of one of the apps.
#[derive(Clone, Copy, Debug)]
pub struct Process {
    /// Index into [`APPS`].
    pub app: usize,
    /// Its process id.
    pub pid: u64,
}

/// What one new connection will look like.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionPlan {
    /// Which process opens it.
    pub process: usize,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Local address.
    pub local: SocketAddr,
    /// Remote address.
    pub remote: SocketAddr,
    /// How long it stays open once established, in milliseconds.
    pub lifetime_ms: u64,
    /// If set: the endpoint is torn down this many milliseconds after opening, whatever it is
    /// doing (RST, process kill, the app giving up mid-pend).
    pub early_teardown_ms: Option<u64>,
    /// Stream segments it exchanges once established (TCP).
    pub segments: u32,
}

/// Picks an app by weight.
pub fn pick_app(rng: &mut ChaCha8Rng) -> usize {
    let total: u32 = APPS.iter().map(|a| a.weight).sum();
    let mut ticket = rng.random_range(0..total.max(1));
    for (index, app) in APPS.iter().enumerate() {
        if ticket < app.weight {
            return index;
        }
        ticket -= app.weight;
    }
    0
}

/// Plans a connection for `process`.
pub fn plan(
    rng: &mut ChaCha8Rng,
    process_index: usize,
    process: &Process,
    early_teardown_percent: u32,
) -> ConnectionPlan {
    let app = APPS.get(process.app).copied().unwrap_or(APPS[0]);
    let protocol = if rng.random_range(0..100) < app.udp_percent { Protocol::Udp } else { Protocol::Tcp };
    let v6 = rng.random_range(0..100) < 25;
    let port = app.ports.get(rng.random_range(0..app.ports.len().max(1))).copied().unwrap_or(443);
    let (local_ip, remote_ip) = if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10)),
            IpAddr::V6(Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, rng.random(), rng.random())),
        )
    } else {
        let remote = if app.name == "svchost-dns" {
            Ipv4Addr::new(192, 168, 1, 1)
        } else {
            Ipv4Addr::new(rng.random_range(1..224), rng.random(), rng.random(), rng.random_range(1..255))
        };
        (IpAddr::V4(Ipv4Addr::new(192, 168, 1, 23)), IpAddr::V4(remote))
    };
    let local = SocketAddr::new(local_ip, rng.random_range(49_152..=65_535));
    let remote = SocketAddr::new(remote_ip, port);
    let lifetime_ms = if rng.random_range(0..100) < app.long_lived_percent {
        rng.random_range(10_000..60_000)
    } else {
        rng.random_range(5..2_000)
    };
    let early_teardown_ms = (rng.random_range(0..100) < early_teardown_percent).then(|| rng.random_range(0..3_000));
    let segments = if protocol == Protocol::Tcp { rng.random_range(0..8) } else { 0 };
    ConnectionPlan { process: process_index, protocol, local, remote, lifetime_ms, early_teardown_ms, segments }
}

/// The first outbound bytes of a connection of `app` to `port`: a TLS ClientHello (SNI from the
/// app's names) on 443 and 8443, an HTTP request on 80, an SSH banner on 22, random bytes
/// elsewhere.
pub fn first_payload(rng: &mut ChaCha8Rng, app: &AppProfile, port: u16) -> Vec<u8> {
    let name = app.domains.get(rng.random_range(0..app.domains.len().max(1))).copied().unwrap_or("example.com");
    match port {
        443 | 8443 => {
            let seed = rng.random();
            match app.tls {
                TlsStyle::Browser => HelloBuilder::chrome_like(name.as_bytes(), seed).record(),
                TlsStyle::Library => HelloBuilder::library_like(name.as_bytes(), &[b"http/1.1"], seed).record(),
            }
        }
        80 => samples::http_request("GET", "/index.html", name),
        22 => b"SSH-2.0-OpenSSH_for_Windows_9.5\r\n".to_vec(),
        _ => {
            let length = rng.random_range(16..700_usize);
            (0..length).map(|_| rng.random::<u8>()).collect()
        }
    }
}
