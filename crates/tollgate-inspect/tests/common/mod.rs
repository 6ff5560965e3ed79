//! Test inputs shared by the integration tests, the benchmark and the fuzz seed corpus: real
//! ClientHellos from rustls, the RFC 8448 test vector, a small builder for ClientHellos rustls does
//! not send (GREASE, ECH, a post-quantum key share, odd extension orders, broken lengths), and the
//! split-point checker every valid input goes through.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use tollgate_inspect::identity::{Identity, NameSource};
pub use tollgate_inspect::samples::*;
use tollgate_inspect::{Progress, inspect};

/// Bytes from hex text (whitespace ignored).
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|byte| !byte.is_ascii_whitespace()).collect();
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
}

/// The ClientHello handshake message of RFC 8448 §3 ("Simple 1-RTT Handshake"), an IETF published
/// test vector: SNI `server`, TLS 1.3 only, x25519 key share.
pub const RFC8448_CLIENT_HELLO: &str = "
    01 00 00 c0 03 03 cb 34 ec b1 e7 81 63 ba 1c 38 c6 da cb 19 6a 6d ff a2 1a 8d 99 12 ec 18 a2 ef
    62 83 02 4d ec e7 00 00 06 13 01 13 03 13 02 01 00 00 91 00 00 00 0b 00 09 00 00 06 73 65 72 76
    65 72 ff 01 00 01 00 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03 01 04 00
    23 00 00 00 33 00 26 00 24 00 1d 00 20 99 38 1d e5 60 e4 bd 43 d2 3d 8e 43 5a 7d ba fe b3 c0 6e
    51 c1 3c ae 4d 54 13 69 1e 52 9a af 2c 00 2b 00 03 02 03 04 00 0d 00 20 00 1e 04 03 05 03 06 03
    02 03 08 04 08 05 08 06 04 01 05 01 06 01 02 01 04 02 05 02 06 02 02 02 00 2d 00 02 01 01 00 1c
    00 02 40 01";

/// The RFC 8448 §3 ClientHello as the client sent it: in one record with version 0x0301.
pub fn rfc8448_record() -> Vec<u8> {
    records(&hex(RFC8448_CLIENT_HELLO), &[])
}

/// The handshake message inside a stream of records (the inverse of [`records`]).
pub fn unwrap_records(stream: &[u8]) -> Vec<u8> {
    let mut message = Vec::new();
    let mut at = 0;
    while at + 5 <= stream.len() {
        let len = usize::from(u16::from_be_bytes([stream[at + 3], stream[at + 4]]));
        message.extend_from_slice(&stream[at + 5..at + 5 + len]);
        at += 5 + len;
    }
    message
}

/// The first flight rustls writes for a connection to `name`, offering `versions` and `alpn`.
pub fn rustls_hello(versions: &[&'static rustls::SupportedProtocolVersion], alpn: &[&str], name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("the ring provider supports these versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|id| id.as_bytes().to_vec()).collect();
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("a valid DNS name");
    let mut connection = rustls::ClientConnection::new(Arc::new(config), server_name).expect("a client connection");
    let mut out = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut out).expect("writing to a Vec");
    }
    out
}

/// A TLS 1.3 (and 1.2) rustls ClientHello for `name` with ALPN `h2`, `http/1.1`.
pub fn rustls_tls13_hello(name: &str) -> Vec<u8> {
    rustls_hello(&[&rustls::version::TLS13, &rustls::version::TLS12], &["h2", "http/1.1"], name)
}

/// A TLS 1.2-only rustls ClientHello for `name` without ALPN.
pub fn rustls_tls12_hello(name: &str) -> Vec<u8> {
    rustls_hello(&[&rustls::version::TLS12], &[], name)
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// The names as (source, bytes) pairs.
pub fn names(identity: &Identity) -> Vec<(NameSource, Vec<u8>)> {
    identity.names.iter().map(|(source, name)| (*source, name.as_bytes().to_vec())).collect()
}

/// Feeds `data[..k]` for every `k` and checks the contract on each prefix of a valid first
/// message: `NeedMore` with `at_least` beyond `k` (and not beyond the message: a valid message
/// never makes the parser ask for bytes it does not have), the same identity for every length below
/// `at_least` (fewer bytes than asked for cannot change anything), names that are a prefix of the
/// final names; and `Done` at the end. Returns the final identity.
pub fn check_every_split(data: &[u8]) -> Identity {
    let full = inspect(data);
    assert_eq!(full.progress, Progress::Done, "the whole message must be done");
    let full_names = names(&full.identity);
    let mut previous: Option<(usize, Identity)> = None;
    for cut in 0..data.len() {
        let inspection = inspect(&data[..cut]);
        let Progress::NeedMore { at_least } = inspection.progress else {
            panic!("done after {cut} of {} bytes: {inspection:?}", data.len());
        };
        assert!(at_least > cut, "at_least {at_least} after {cut} bytes");
        assert!(at_least <= data.len(), "at_least {at_least} beyond the message ({} bytes)", data.len());
        let prefix_names = names(&inspection.identity);
        assert!(full_names.starts_with(&prefix_names), "names after {cut} bytes: {prefix_names:?} vs {full_names:?}");
        if let Some((wanted, identity)) = &previous
            && cut < *wanted
        {
            assert_eq!(&inspection.identity, identity, "the identity changed at {cut} before {wanted} bytes");
            continue;
        }
        previous = Some((at_least, inspection.identity));
    }
    full.identity
}
