//! What the parsers report about a flow's first outbound bytes.
//!
//! [`Identity`] is plain data (`Copy`, no pointers, no lifetimes): the stream callout keeps it, and
//! the driver reports it to user mode, long after the bytes it came from are gone (S6: nothing may
//! point into stream data after classifyFn returns).

use crate::name::HostName;

/// The application protocol the first outbound bytes speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AppProtocol {
    /// Not decided yet (no bytes, or too few to tell).
    #[default]
    Unknown,
    /// A TLS handshake (first record is a handshake record holding a ClientHello).
    Tls,
    /// An HTTP/1.x request.
    Http,
    /// Something else (SSH, SMTP, a server-speaks-first protocol, HTTP/2 prior knowledge, …).
    Other,
}

/// Where a name came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NameSource {
    /// No name.
    #[default]
    None,
    /// TLS `server_name` extension, `host_name` entry (RFC 6066 §3).
    TlsSni,
    /// HTTP `Host` header field (RFC 9110 §7.2).
    HttpHost,
    /// The authority of an HTTP request target in absolute form (`GET http://host/ …`) or
    /// authority form (`CONNECT host:443 …`) (RFC 9112 §3.2.2, §3.2.3).
    HttpAuthority,
}

/// `encrypted_client_hello` (extension 0xfe0d, draft-ietf-tls-esni) as seen in the ClientHello.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Ech {
    /// No ECH extension.
    #[default]
    None,
    /// An outer ClientHello (`ECHClientHelloType` 0): the SNI is the client-facing server's
    /// public name, the real one is encrypted.
    Outer,
    /// An inner ClientHello marker (type 1), which should never be seen on the wire.
    Inner,
    /// The extension is present but too short or of an unknown type.
    Unknown,
}

/// The first ALPN protocol id the client offered (RFC 7301), up to [`Alpn::CAPACITY`] bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Alpn {
    bytes: [u8; Alpn::CAPACITY],
    len: u8,
    /// How many protocol ids the client offered in all.
    pub offered: u8,
    /// The first id was longer than [`Alpn::CAPACITY`] and is cut.
    pub truncated: bool,
}

impl Alpn {
    /// Longest id kept (`http/1.1`, `h2`, `h3`, `acme-tls/1` all fit).
    pub const CAPACITY: usize = 32;

    /// An id as offered.
    #[must_use]
    pub fn new(id: &[u8], offered: u8) -> Alpn {
        let mut alpn = Alpn { offered, truncated: id.len() > Alpn::CAPACITY, ..Alpn::default() };
        for (slot, byte) in alpn.bytes.iter_mut().zip(id) {
            *slot = *byte;
        }
        alpn.len = u8::try_from(id.len().min(Alpn::CAPACITY)).unwrap_or(0);
        alpn
    }

    /// The first id (possibly cut), empty if none was offered.
    #[must_use]
    pub fn first(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl core::fmt::Debug for Alpn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Alpn")
            .field("first", &self.first().escape_ascii())
            .field("offered", &self.offered)
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// Why the bytes could not be read as the protocol they started as. The names found before the
/// problem are still reported (a block rule must not be dodged by a malformed tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// A TLS record header that is not a handshake record of a TLS/SSL 3.x version, or whose
    /// length is 0 or above 2^14 + 2048.
    TlsRecord,
    /// The first handshake message is not a ClientHello, or its length is impossible.
    TlsHandshake,
    /// A ClientHello field overruns its enclosing length (session id, cipher suites, compression
    /// methods, extensions block).
    TlsClientHello,
    /// An extension overruns the extensions block, or an extension's own lengths are inconsistent.
    TlsExtension,
    /// The same extension type twice (RFC 8446 §4.2: "MUST NOT").
    TlsDuplicateExtension,
    /// More than one `host_name` in `server_name` (RFC 6066 §3: "MUST NOT"), or an empty one.
    TlsServerName,
    /// A request line that is not `method SP target SP HTTP/1.x`.
    HttpRequestLine,
    /// A header line without a colon, with whitespace before the colon, or an obsolete line fold.
    HttpHeader,
    /// More than one `Host` field, or `Host` names that disagree with the request target.
    HttpConflictingHost,
}

/// Facts about a TLS ClientHello.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsFacts {
    /// `legacy_version` of the ClientHello (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    /// `supported_versions` (extension 43) lists TLS 1.3 (0x0304).
    pub offers_tls13: bool,
    /// A GREASE value (RFC 8701, `0x?A?A`) was seen among the extension types or cipher suites.
    pub grease: bool,
    /// The `encrypted_client_hello` extension.
    pub ech: Ech,
}

/// Facts about an HTTP/1.x request head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HttpFacts {
    /// The method token, up to 15 bytes (`GET`, `CONNECT`, …).
    pub method: [u8; 15],
    /// Length of `method`.
    pub method_len: u8,
    /// The minor version (`HTTP/1.0` → 0, `HTTP/1.1` → 1).
    pub minor_version: u8,
}

/// Names read from the bytes: at most [`Names::CAPACITY`], in the order found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names {
    entries: [(NameSource, HostName); Names::CAPACITY],
    len: u8,
}

impl Default for Names {
    fn default() -> Self {
        Names { entries: [(NameSource::None, HostName::EMPTY); Names::CAPACITY], len: 0 }
    }
}

impl Names {
    /// How many names are kept: an SNI, or a request target's authority and a `Host` field.
    pub const CAPACITY: usize = 2;

    /// Adds a name; false (and nothing changes) when full or when `name` is empty.
    pub fn push(&mut self, source: NameSource, name: HostName) -> bool {
        if name.is_empty() {
            return false;
        }
        let Some(slot) = self.entries.get_mut(usize::from(self.len)) else {
            return false;
        };
        *slot = (source, name);
        self.len = self.len.saturating_add(1);
        true
    }

    /// The names, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &(NameSource, HostName)> {
        self.entries.iter().take(usize::from(self.len))
    }

    /// The first name, if any: the one reported as the flow's name.
    #[must_use]
    pub fn primary(&self) -> Option<&(NameSource, HostName)> {
        self.iter().next()
    }

    /// How many names there are.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are none.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Everything read from a flow's first outbound bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The protocol.
    pub protocol: AppProtocol,
    /// The names (SNI; or request-target authority and `Host`). A name that was read completely
    /// before a problem or the end of the data is kept.
    pub names: Names,
    /// The first ALPN id (TLS).
    pub alpn: Alpn,
    /// TLS facts (zero unless `protocol` is TLS).
    pub tls: TlsFacts,
    /// HTTP facts (zero unless `protocol` is HTTP).
    pub http: HttpFacts,
    /// The first problem found, if any.
    pub malformed: Option<Malformed>,
}
