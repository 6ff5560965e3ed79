//! Test inputs shared by the integration tests, the benchmark and the fuzz seed corpus: real
//! ClientHellos from rustls, the RFC 8448 test vector, a small builder for ClientHellos rustls does
//! not send (GREASE, ECH, a post-quantum key share, odd extension orders, broken lengths), and the
//! split-point checker every valid input goes through.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use tollgate_inspect::identity::{Identity, NameSource};
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

/// `message` in handshake records, a new record starting at each offset in `splits` (increasing,
/// inside the message).
pub fn records(message: &[u8], splits: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in splits.iter().copied().chain([message.len()]) {
        let fragment = &message[start..end];
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
        out.extend_from_slice(fragment);
        start = end;
    }
    out
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

/// Extension types (RFC 8446 §4.2 and the registry).
pub mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const STATUS_REQUEST: u16 = 5;
    pub const SUPPORTED_GROUPS: u16 = 10;
    pub const EC_POINT_FORMATS: u16 = 11;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const SCT: u16 = 18;
    pub const PADDING: u16 = 21;
    pub const EXTENDED_MASTER_SECRET: u16 = 23;
    pub const COMPRESS_CERTIFICATE: u16 = 27;
    pub const SESSION_TICKET: u16 = 35;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const PSK_KEY_EXCHANGE_MODES: u16 = 45;
    pub const KEY_SHARE: u16 = 51;
    pub const APPLICATION_SETTINGS: u16 = 17613;
    pub const ECH: u16 = 0xfe0d;
    pub const RENEGOTIATION_INFO: u16 = 0xff01;
}

/// A ClientHello put together field by field (RFC 8446 §4.1.2), so that tests can send what rustls
/// never does. Lengths are computed unless a test overrides them to break the hello.
#[derive(Clone, Debug)]
pub struct HelloBuilder {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<u16>,
    pub compression_methods: Vec<u8>,
    /// `None`: no extensions block at all (old clients).
    pub extensions: Option<Vec<(u16, Vec<u8>)>>,
}

/// A 2-byte big-endian length followed by `body`.
pub fn u16_prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A 1-byte length followed by `body`.
pub fn u8_prefixed(body: &[u8]) -> Vec<u8> {
    let mut out = vec![body.len() as u8];
    out.extend_from_slice(body);
    out
}

/// The body of a `server_name` extension with one `host_name` per entry of `names`.
pub fn server_name_body(names: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.push(0);
        list.extend_from_slice(&u16_prefixed(name));
    }
    u16_prefixed(&list)
}

/// The body of an ALPN extension offering `ids`.
pub fn alpn_body(ids: &[&[u8]]) -> Vec<u8> {
    let list: Vec<u8> = ids.iter().flat_map(|id| u8_prefixed(id)).collect();
    u16_prefixed(&list)
}

/// A small deterministic generator (xorshift64), for extension orders and key bytes.
#[derive(Clone, Debug)]
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// One of the sixteen GREASE values (RFC 8701).
    pub fn grease(&mut self) -> u16 {
        let nibble = self.below(16) as u16;
        0x0a0a | nibble << 12 | nibble << 4
    }
}

impl HelloBuilder {
    /// The smallest sensible TLS 1.2 ClientHello: one suite, null compression, an empty extension
    /// block.
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
        let mut ech = vec![0, 0x00, 0x01, 0x00, 0x01, rng.next() as u8];
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
            random: rng.bytes(32).try_into().unwrap(),
            session_id: rng.bytes(32),
            cipher_suites,
            compression_methods: vec![0],
            extensions: Some(extensions),
        }
    }

    /// Adds an extension at the end.
    pub fn with(mut self, extension_type: u16, body: Vec<u8>) -> HelloBuilder {
        self.extensions.get_or_insert_with(Vec::new).push((extension_type, body));
        self
    }

    /// The ClientHello body (without the handshake header).
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
    pub fn message(&self) -> Vec<u8> {
        handshake_message(&self.body())
    }

    /// The message in one record.
    pub fn record(&self) -> Vec<u8> {
        records(&self.message(), &[])
    }
}

/// A client_hello handshake message around `body`.
pub fn handshake_message(body: &[u8]) -> Vec<u8> {
    let len = body.len() as u32;
    let mut message = vec![1, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    message.extend_from_slice(body);
    message
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
