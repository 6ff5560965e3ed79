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
//!   recursion and no backtracking;
//! - a small stack: nothing bigger than the [`Identity`] being filled in (about 600 bytes) and one
//!   256-byte buffer for a name split over two TLS records.
//!
//! Modules:
//! - [`identity`]: what the parsers report ([`identity::Identity`]: protocol, names, ALPN, facts);
//! - [`name`]: DNS names — the strict check for the patterns user mode configures, and the lenient
//!   normalization of names seen on the wire (which must match however a client spells them);
//! - [`tls`]: the TLS ClientHello parser (SNI, ALPN, versions, GREASE, ECH);
//! - [`http`]: the HTTP/1.x request head parser (request-target authority, `Host`);
//! - `samples` (feature `samples`, allocates; never in the driver): browser-like ClientHellos and
//!   request heads for tests, the benchmark and the simulated workload.
//!
//! The driver calls [`inspect`] each time more of a flow's first outbound bytes have arrived,
//! always with everything from the first byte on, until it returns [`Progress::Done`] or the driver's
//! own bound (4096 bytes or 16 segments) is reached; then it uses the identity it has.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "samples")]
extern crate alloc;

pub mod http;
pub mod identity;
pub mod name;
#[cfg(feature = "samples")]
pub mod samples;
pub mod tls;

use identity::{AppProtocol, Identity};

/// Whether more bytes could change the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The first message was read to its end, or the bytes are not TLS or HTTP, or they are
    /// malformed in a way more bytes cannot fix. More bytes change nothing.
    Done,
    /// The first message is not complete yet. Calling again with at least `at_least` bytes in all
    /// (always more than the bytes given) can add to the identity; calling with fewer cannot.
    NeedMore {
        /// The smallest total length of the data at which the next call can make progress.
        at_least: usize,
    },
}

/// The result of [`inspect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// Whether more bytes could change the result.
    pub progress: Progress,
    /// Everything read so far, also on [`Progress::NeedMore`]: a name that lies completely inside
    /// the bytes given is reported even though the message goes on beyond them.
    pub identity: Identity,
}

impl Inspection {
    /// Done, with `identity`.
    #[must_use]
    pub const fn done(identity: Identity) -> Inspection {
        Inspection { progress: Progress::Done, identity }
    }

    /// Not done: wants at least `at_least` bytes in all. `at_least` is raised to `len + 1` if it
    /// is not above `len`, so that the contract "`at_least` > the bytes given" holds whatever a
    /// parser computed (the parsers never ask for less, this is a second line of defense).
    #[must_use]
    pub fn need_more(at_least: usize, len: usize, identity: Identity) -> Inspection {
        let at_least = if at_least > len { at_least } else { len.saturating_add(1) };
        Inspection { progress: Progress::NeedMore { at_least }, identity }
    }
}

/// The first byte of a TLS record holding a handshake message (RFC 8446 §5.1, `ContentType`
/// `handshake(22)`).
const TLS_HANDSHAKE_RECORD: u8 = 22;

/// Reads a flow's first client-to-server bytes (`data` always starts at the first byte of the
/// stream and grows between calls).
///
/// The protocol is told by the first bytes: a TLS handshake record (`0x16`, RFC 8446 §5.1) is read
/// as a ClientHello ([`tls::inspect_tls`]); an uppercase method token followed by SP (RFC 9112 §3)
/// as an HTTP/1.x request head ([`http::inspect_http`]); anything else, once enough bytes are there
/// to tell, is [`AppProtocol::Other`] and done.
///
/// The result is a function of `data` alone (no state is kept between calls), and it is
/// prefix-monotonic: the names reported for `data[..k]` are a prefix of the names reported for
/// `data`, because a name is only reported once the item holding it has ended.
#[must_use]
pub fn inspect(data: &[u8]) -> Inspection {
    match data.first() {
        None => Inspection::need_more(1, 0, Identity::default()),
        Some(&TLS_HANDSHAKE_RECORD) => tls::inspect_tls(data),
        Some(_) => match http::sniff(data) {
            http::Sniff::Http => http::inspect_http(data),
            http::Sniff::NeedMore => {
                Inspection::need_more(data.len().saturating_add(1), data.len(), Identity::default())
            }
            http::Sniff::NotHttp => Inspection::done(Identity { protocol: AppProtocol::Other, ..Identity::default() }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_data_needs_one_byte() {
        let inspection = inspect(&[]);
        assert_eq!(inspection.progress, Progress::NeedMore { at_least: 1 });
        assert_eq!(inspection.identity.protocol, AppProtocol::Unknown);
    }

    #[test]
    fn other_protocols_are_done_as_soon_as_they_can_be_told() {
        for data in [&b"SSH-2.0-OpenSSH_9.6\r\n"[..], b"\x80\x2e\x01\x03\x01", b"\0", b"get / HTTP/1.1\r\n"] {
            let inspection = inspect(data);
            assert_eq!(inspection.progress, Progress::Done, "{:?}", data.escape_ascii());
            assert_eq!(inspection.identity.protocol, AppProtocol::Other);
        }
        // "SSH-" could still be a method token until the `-` is followed by a digit.
        assert!(matches!(inspect(b"SSH").progress, Progress::NeedMore { at_least: 4 }));
    }

    #[test]
    fn need_more_always_asks_for_more_than_it_has() {
        let inspection = Inspection::need_more(3, 5, Identity::default());
        assert_eq!(inspection.progress, Progress::NeedMore { at_least: 6 });
    }
}
