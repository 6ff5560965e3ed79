//! Realistic first bytes of TCP flows, built field by field: TLS ClientHellos (RFC 8446 §4.1.2)
//! shaped like current browsers' — GREASE (RFC 8701), an X25519MLKEM768 key share, an ECH outer
//! extension, shuffled extension order — and HTTP/1.1 request heads.
//!
//! For tests, the benchmark, the fuzz seed corpus, and the WFP model's simulated workload (feature
//! `samples`; never in the driver). Lengths are computed unless a test overrides a field to break
//! the hello.
#![allow(clippy::cast_possible_truncation, reason = "sample lengths are small and documented as such")]

use alloc::vec;
use alloc::vec::Vec;

/// Extension types (RFC 8446 §4.2 and the IANA registry).
pub mod ext {
    /// server_name (RFC 6066).
    pub const SERVER_NAME: u16 = 0;
    /// status_request.
    pub const STATUS_REQUEST: u16 = 5;
    /// supported_groups.
    pub const SUPPORTED_GROUPS: u16 = 10;
    /// ec_point_formats.
    pub const EC_POINT_FORMATS: u16 = 11;
    /// signature_algorithms.
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    /// application_layer_protocol_negotiation (RFC 7301).
    pub const ALPN: u16 = 16;
    /// signed_certificate_timestamp.
    pub const SCT: u16 = 18;
    /// padding (RFC 7685).
    pub const PADDING: u16 = 21;
    /// extended_master_secret.
    pub const EXTENDED_MASTER_SECRET: u16 = 23;
    /// compress_certificate.
    pub const COMPRESS_CERTIFICATE: u16 = 27;
    /// session_ticket.
    pub const SESSION_TICKET: u16 = 35;
    /// supported_versions.
    pub const SUPPORTED_VERSIONS: u16 = 43;
    /// psk_key_exchange_modes.
    pub const PSK_KEY_EXCHANGE_MODES: u16 = 45;
    /// key_share.
    pub const KEY_SHARE: u16 = 51;
    /// application_settings (ALPS).
    pub const APPLICATION_SETTINGS: u16 = 17613;
    /// encrypted_client_hello (draft-ietf-tls-esni).
    pub const ECH: u16 = 0xfe0d;
    /// renegotiation_info.
    pub const RENEGOTIATION_INFO: u16 = 0xff01;
}

/// A 2-byte big-endian length followed by `body` (`body` at most 65535 bytes).
#[must_use]
pub fn u16_prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A 1-byte length followed by `body` (`body` at most 255 bytes).
#[must_use]
pub fn u8_prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = vec![body.len() as u8];
    out.extend_from_slice(body);
    out
}

/// The body of a `server_name` extension with one `host_name` per entry of `names`.
#[must_use]
pub fn server_name_body(names: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.push(0);
        list.extend_from_slice(&u16_prefixed(name));
    }
    u16_prefixed(&list)
}

/// The body of an ALPN extension offering `ids`.
#[must_use]
pub fn alpn_body(ids: &[&[u8]]) -> Vec<u8> {
    let list: Vec<u8> = ids.iter().flat_map(|id| u8_prefixed(id)).collect();
    u16_prefixed(&list)
}

/// A small deterministic generator (xorshift64), for extension orders and key bytes.
#[derive(Clone, Debug)]
pub struct Xorshift(pub u64);

impl Xorshift {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % (bound.max(1) as u64)) as usize
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// A 32-byte random field (ClientHello `random`).
    pub fn random32(&mut self) -> [u8; 32] {
        let mut out = [0_u8; 32];
        for (slot, byte) in out.iter_mut().zip(self.bytes(32)) {
            *slot = byte;
        }
        out
    }

    /// One of the sixteen GREASE values (RFC 8701).
    pub fn grease(&mut self) -> u16 {
        let nibble = self.below(16) as u16;
        0x0a0a | (nibble << 12) | (nibble << 4)
    }
}

/// A ClientHello put together field by field, so that tests can send what a TLS library never
/// does.
#[derive(Clone, Debug)]
pub struct HelloBuilder {
    /// `legacy_version`.
    pub legacy_version: u16,
    /// `random`.
    pub random: [u8; 32],
    /// `legacy_session_id`.
    pub session_id: Vec<u8>,
    /// `cipher_suites`.
    pub cipher_suites: Vec<u16>,
    /// `legacy_compression_methods`.
    pub compression_methods: Vec<u8>,
    /// `None`: no extensions block at all (old clients).
    pub extensions: Option<Vec<(u16, Vec<u8>)>>,
}

impl HelloBuilder {
    /// The smallest sensible TLS 1.2 ClientHello: one suite, null compression, an empty extension
    /// block.
    #[must_use]
    pub fn minimal() -> HelloBuilder {
        HelloBuilder {
            legacy_version: 0x0303,
            random: [0x5a; 32],
            session_id: Vec::new(),
            cipher_suites: vec![0xc02f],
            compression_methods: vec![0],
            extensions: Some(Vec::new()),
        }
    }

    /// A hello shaped like current Chrome's: GREASE cipher suite and extensions (RFC 8701), an
    /// X25519MLKEM768 key share (1216 bytes) next to x25519, an ECH outer extension, ALPN `h2`,
    /// `http/1.1`, and the extensions in a random order (Chrome permutes them), `seed` choosing it.
    /// About 1.8 KB.
    #[must_use]
    pub fn chrome_like(sni: &[u8], seed: u64) -> HelloBuilder {
        let mut rng = Xorshift(seed.max(1));
        let grease_suite = rng.grease();
        let grease_group = rng.grease();
        let grease_version = rng.grease();
        let grease_ext_1 = rng.grease();
        let mut grease_ext_2 = rng.grease();
        if grease_ext_2 == grease_ext_1 {
            grease_ext_2 ^= 0x1010;
        }
        let mut cipher_suites = vec![grease_suite];
        cipher_suites.extend_from_slice(&[
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d,
            0x002f, 0x0035,
        ]);

        let groups: Vec<u8> =
            [grease_group, 0x11ec, 0x001d, 0x0017, 0x0018].iter().flat_map(|group| group.to_be_bytes()).collect();
        let mut key_shares = Vec::new();
        key_shares.extend_from_slice(&grease_group.to_be_bytes());
        key_shares.extend_from_slice(&u16_prefixed(&[0]));
        key_shares.extend_from_slice(&0x11ec_u16.to_be_bytes());
        key_shares.extend_from_slice(&u16_prefixed(&rng.bytes(1216)));
        key_shares.extend_from_slice(&0x001d_u16.to_be_bytes());
        key_shares.extend_from_slice(&u16_prefixed(&rng.bytes(32)));
        let signature_algorithms: Vec<u8> = [0x0403_u16, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
            .iter()
            .flat_map(|scheme| scheme.to_be_bytes())
            .collect();
        let versions: Vec<u8> =
            [grease_version, 0x0304, 0x0303].iter().flat_map(|version| version.to_be_bytes()).collect();
        // ECHClientHello outer (draft-ietf-tls-esni §5): type 0, HPKE KDF and AEAD ids, config id,
        // enc (an X25519 public key), payload (the encrypted inner hello; GREASE ECH sends random
        // bytes of a plausible size).
        let mut ech = vec![0, 0x00, 0x01, 0x00, 0x01, rng.next_u64() as u8];
        ech.extend_from_slice(&u16_prefixed(&rng.bytes(32)));
        ech.extend_from_slice(&u16_prefixed(&rng.bytes(208)));

        let mut shuffled: Vec<(u16, Vec<u8>)> = vec![
            (ext::SERVER_NAME, server_name_body(&[sni])),
            (ext::EXTENDED_MASTER_SECRET, Vec::new()),
            (ext::RENEGOTIATION_INFO, vec![0]),
            (ext::SUPPORTED_GROUPS, u16_prefixed(&groups)),
            (ext::EC_POINT_FORMATS, u8_prefixed(&[0])),
            (ext::SESSION_TICKET, Vec::new()),
            (ext::ALPN, alpn_body(&[b"h2", b"http/1.1"])),
            (ext::STATUS_REQUEST, vec![1, 0, 0, 0, 0]),
            (ext::SIGNATURE_ALGORITHMS, u16_prefixed(&signature_algorithms)),
            (ext::SCT, Vec::new()),
            (ext::KEY_SHARE, u16_prefixed(&key_shares)),
            (ext::PSK_KEY_EXCHANGE_MODES, u8_prefixed(&[1])),
            (ext::SUPPORTED_VERSIONS, u8_prefixed(&versions)),
            (ext::COMPRESS_CERTIFICATE, u8_prefixed(&[0x00, 0x02])),
            (ext::APPLICATION_SETTINGS, u16_prefixed(&u8_prefixed(b"h2"))),
            (ext::ECH, ech),
        ];
        // Fisher-Yates; the GREASE extensions stay first and last, as in Chrome.
        for index in (1..shuffled.len()).rev() {
            let other = rng.below(index + 1);
            shuffled.swap(index, other);
        }
        let mut extensions = vec![(grease_ext_1, Vec::new())];
        extensions.extend(shuffled);
        extensions.push((grease_ext_2, vec![0]));

        HelloBuilder {
            legacy_version: 0x0303,
            random: rng.random32(),
            session_id: rng.bytes(32),
            cipher_suites,
            compression_methods: vec![0],
            extensions: Some(extensions),
        }
    }

    /// A hello shaped like a TLS library's without browser extras (Firefox-like order, x25519
    /// only, no GREASE, no ECH): about 500 bytes with SNI and ALPN.
    #[must_use]
    pub fn library_like(sni: &[u8], alpn: &[&[u8]], seed: u64) -> HelloBuilder {
        let mut rng = Xorshift(seed.max(1));
        let groups: Vec<u8> = [0x001d_u16, 0x0017, 0x0018].iter().flat_map(|group| group.to_be_bytes()).collect();
        let mut key_shares = 0x001d_u16.to_be_bytes().to_vec();
        key_shares.extend_from_slice(&u16_prefixed(&rng.bytes(32)));
        let signature_algorithms: Vec<u8> =
            [0x0403_u16, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601]
                .iter()
                .flat_map(|scheme| scheme.to_be_bytes())
                .collect();
        let mut extensions = vec![(ext::SERVER_NAME, server_name_body(&[sni]))];
        if !alpn.is_empty() {
            extensions.push((ext::ALPN, alpn_body(alpn)));
        }
        extensions.extend([
            (ext::SUPPORTED_GROUPS, u16_prefixed(&groups)),
            (ext::SIGNATURE_ALGORITHMS, u16_prefixed(&signature_algorithms)),
            (ext::SUPPORTED_VERSIONS, u8_prefixed(&[0x03, 0x04, 0x03, 0x03])),
            (ext::PSK_KEY_EXCHANGE_MODES, u8_prefixed(&[1])),
            (ext::KEY_SHARE, u16_prefixed(&key_shares)),
        ]);
        HelloBuilder {
            legacy_version: 0x0303,
            random: rng.random32(),
            session_id: rng.bytes(32),
            cipher_suites: vec![0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9, 0xcca8],
            compression_methods: vec![0],
            extensions: Some(extensions),
        }
    }

    /// Adds an extension at the end.
    #[must_use]
    pub fn with(mut self, extension_type: u16, body: Vec<u8>) -> HelloBuilder {
        self.extensions.get_or_insert_with(Vec::new).push((extension_type, body));
        self
    }

    /// The ClientHello body (without the handshake header).
    #[must_use]
    pub fn body(&self) -> Vec<u8> {
        let mut body = self.legacy_version.to_be_bytes().to_vec();
        body.extend_from_slice(&self.random);
        body.extend_from_slice(&u8_prefixed(&self.session_id));
        let suites: Vec<u8> = self.cipher_suites.iter().flat_map(|suite| suite.to_be_bytes()).collect();
        body.extend_from_slice(&u16_prefixed(&suites));
        body.extend_from_slice(&u8_prefixed(&self.compression_methods));
        if let Some(extensions) = &self.extensions {
            let mut block = Vec::new();
            for (extension_type, data) in extensions {
                block.extend_from_slice(&extension_type.to_be_bytes());
                block.extend_from_slice(&u16_prefixed(data));
            }
            body.extend_from_slice(&u16_prefixed(&block));
        }
        body
    }

    /// The handshake message: type client_hello, 24-bit length, body.
    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        handshake_message(&self.body())
    }

    /// The message in one record.
    #[must_use]
    pub fn record(&self) -> Vec<u8> {
        records(&self.message(), &[])
    }
}

/// A client_hello handshake message around `body`.
#[must_use]
pub fn handshake_message(body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32;
    let mut message = vec![1, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    message.extend_from_slice(body);
    message
}

/// `message` in handshake records (version 0x0301, as clients send their first record), a new
/// record starting at each offset in `splits` (increasing, inside the message; others are ignored).
#[must_use]
pub fn records(message: &[u8], splits: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in splits.iter().copied().filter(|end| *end <= message.len()).chain([message.len()]) {
        let fragment = message.get(start..end).unwrap_or_default();
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
        out.extend_from_slice(fragment);
        start = end.max(start);
    }
    out
}

/// An HTTP/1.1 request head for `host` (RFC 9112 §3: request line, `Host` first, a few common
/// fields, the empty line).
#[must_use]
pub fn http_request(method: &str, target: &str, host: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [
        method,
        " ",
        target,
        " HTTP/1.1\r\nHost: ",
        host,
        "\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\n",
        "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AppProtocol;
    use crate::{Progress, inspect};

    #[test]
    fn every_sample_reads_back_with_its_name() {
        let chrome = HelloBuilder::chrome_like(b"www.example.com", 7).record();
        let library = HelloBuilder::library_like(b"api.example.com", &[b"h2"], 7).record();
        let request = http_request("GET", "/", "example.com");
        for (bytes, name, protocol) in [
            (chrome.as_slice(), &b"www.example.com"[..], AppProtocol::Tls),
            (library.as_slice(), b"api.example.com", AppProtocol::Tls),
            (request.as_slice(), b"example.com", AppProtocol::Http),
        ] {
            let inspection = inspect(bytes);
            assert_eq!(inspection.progress, Progress::Done);
            assert_eq!(inspection.identity.protocol, protocol);
            assert_eq!(inspection.identity.names.primary().map(|(_, n)| n.as_bytes()), Some(name));
        }
        assert!(chrome.len() > 1_600 && chrome.len() < 2_100, "{}", chrome.len());
    }

    #[test]
    fn records_split_where_asked() {
        let message = HelloBuilder::minimal().message();
        let split = records(&message, &[10, 20]);
        assert_eq!(split.len(), message.len() + 15);
        assert_eq!(split.get(..5), Some(&[22, 3, 1, 0, 10][..]));
    }
}
