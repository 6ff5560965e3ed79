//! The simulated machine's processes and the connections they open.
//!
//! A small catalog of realistic applications — browsers, a DNS client, an updater that phones
//! home, an SSH client, a game on UDP, an unknown binary from the Downloads folder — each with its
//! own protocol mix, remotes, lifetimes and traffic. The rules file used by `simulate`
//! (`simulate/rules.toml`) decides them the way a real policy would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
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
    },
    AppProfile {
        name: "chrome",
        path: r"\device\harddiskvolume3\program files\google\chrome\application\chrome.exe",
        weight: 25,
        udp_percent: 20,
        ports: &[443, 443, 80],
        long_lived_percent: 20,
    },
    AppProfile {
        name: "svchost-dns",
        path: r"\device\harddiskvolume3\windows\system32\svchost.exe",
        weight: 20,
        udp_percent: 100,
        ports: &[53],
        long_lived_percent: 0,
    },
    AppProfile {
        name: "updater",
        path: r"\device\harddiskvolume3\program files\vendor\updater.exe",
        weight: 8,
        udp_percent: 0,
        ports: &[443, 8443],
        long_lived_percent: 5,
    },
    AppProfile {
        name: "ssh",
        path: r"\device\harddiskvolume3\windows\system32\openssh\ssh.exe",
        weight: 5,
        udp_percent: 0,
        ports: &[22],
        long_lived_percent: 80,
    },
    AppProfile {
        name: "game",
        path: r"\device\harddiskvolume3\games\arena\arena.exe",
        weight: 7,
        udp_percent: 90,
        ports: &[27015, 27016, 3478],
        long_lived_percent: 50,
    },
    AppProfile {
        name: "unknown",
        path: r"\device\harddiskvolume3\users\alice\downloads\free_stuff.exe",
        weight: 5,
        udp_percent: 30,
        ports: &[443, 6667, 4444],
        long_lived_percent: 10,
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

/// The first outbound bytes of a connection to `port`: a TLS ClientHello record head, an HTTP
/// request, or an SSH banner (only their shape matters to the model's stream callout).
pub fn first_payload(rng: &mut ChaCha8Rng, port: u16) -> Vec<u8> {
    match port {
        80 => b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: sim\r\n\r\n".to_vec(),
        22 => b"SSH-2.0-OpenSSH_for_Windows_9.5\r\n".to_vec(),
        _ => {
            let length = rng.random_range(200..700_usize);
            let mut hello = vec![0x16, 0x03, 0x01];
            hello.extend_from_slice(&u16::try_from(length).unwrap_or(512).to_be_bytes());
            hello.extend((0..length).map(|_| rng.random::<u8>()));
            hello
        }
    }
}
