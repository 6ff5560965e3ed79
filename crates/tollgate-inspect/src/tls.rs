//! The TLS ClientHello parser: SNI, ALPN, offered versions, GREASE and ECH from the first bytes a
//! client sends.
//!
//! The bytes are read as they lie in the stream: records (RFC 8446 §5.1) carrying one handshake
//! message (RFC 8446 §4), the ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2). A handshake message
//! may be fragmented over several records (RFC 8446 §5.1: "a single message MAY be fragmented across
//! several records"), so the parser reads the message through a cursor that steps over each
//! 5-byte record header in place: nothing is copied, except a name that happens to straddle two
//! records, which is gathered into one 256-byte buffer.
//!
//! Every length is checked against the length that encloses it (record, handshake message,
//! ClientHello field, extensions block, extension, list inside an extension), and an overrun is
//! reported as the matching [`Malformed`] variant. Two kinds of problem are told apart:
//! - **fatal**: the framing itself is broken (a bad record header, a ClientHello field or an
//!   extension that overruns what encloses it). Nothing after it can be trusted, so the parser stops
//!   with [`Progress::Done`](crate::Progress::Done).
//! - **noted**: the framing is intact but something inside an extension is wrong (a duplicate
//!   extension, two `host_name`s, a list length that disagrees with its extension). The parser notes
//!   the first such problem in [`Identity::malformed`] and reads on, because a block rule must not be
//!   dodged by a malformed detail that a lenient server would ignore.
//!
//! Results are recorded as soon as the item holding them is complete, each extension as soon as its
//! last byte is there: the driver stops reading at a byte bound and then uses what it has, and an
//! SNI that arrived must be reported even if the ClientHello goes on beyond the bound (a large
//! post-quantum `key_share` easily pushes it past one segment).

use crate::Inspection;
use crate::identity::{Alpn, AppProtocol, Ech, Identity, Malformed, NameSource};
use crate::name::{HOST_CAPACITY, HostName};

/// `ContentType` `handshake(22)` (RFC 8446 §5.1).
const CONTENT_TYPE_HANDSHAKE: u8 = 22;
/// The major version byte of every TLS and SSL 3 record (`legacy_record_version` 0x0300–0x0304,
/// RFC 8446 §5.1, RFC 6101 §5.2.1).
const RECORD_MAJOR_VERSION: u8 = 3;
/// `type` (1) + `legacy_record_version` (2) + `length` (2) (RFC 8446 §5.1).
const RECORD_HEADER_LEN: usize = 5;
/// The largest record length accepted: 2^14 (RFC 8446 §5.1, `TLSPlaintext.length`) plus the 2048
/// bytes of expansion RFC 5246 §6.2.3 allows a `TLSCiphertext`; the widest bound any TLS version
/// puts on a record, so no real client exceeds it.
const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
/// `HandshakeType` `client_hello(1)` (RFC 8446 §4).
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// The shortest ClientHello body: `legacy_version` (2), `random` (32), an empty `legacy_session_id`
/// (1), one cipher suite (2 + 2), one compression method (1 + 1), no extensions (RFC 5246 §7.4.1.2).
const MIN_CLIENT_HELLO_LEN: usize = 2 + 32 + 1 + (2 + 2) + (1 + 1);
/// The longest ClientHello body the vector bounds allow: `legacy_version` (2), `random` (32),
/// `legacy_session_id<0..32>`, `cipher_suites<2..2^16-2>`, `legacy_compression_methods<1..2^8-1>`,
/// `extensions<8..2^16-1>` (RFC 8446 §4.1.2). A longer handshake length is impossible.
const MAX_CLIENT_HELLO_LEN: usize = 2 + 32 + (1 + 32) + (2 + 65534) + (1 + 255) + (2 + 65535);
/// `legacy_session_id<0..32>` (RFC 8446 §4.1.2).
const MAX_SESSION_ID_LEN: usize = 32;
/// The length of `random` (RFC 8446 §4.1.2).
const RANDOM_LEN: usize = 32;

/// `server_name(0)` (RFC 6066 §3).
const EXT_SERVER_NAME: u16 = 0;
/// `application_layer_protocol_negotiation(16)` (RFC 7301 §3.1).
const EXT_ALPN: u16 = 16;
/// `supported_versions(43)` (RFC 8446 §4.2.1).
const EXT_SUPPORTED_VERSIONS: u16 = 43;
/// `encrypted_client_hello(0xfe0d)` (draft-ietf-tls-esni-25 §11.1).
const EXT_ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
/// `NameType` `host_name(0)` (RFC 6066 §3).
const NAME_TYPE_HOST_NAME: u8 = 0;
/// TLS 1.3's `ProtocolVersion` (RFC 8446 §4.2.1).
const TLS13: u16 = 0x0304;
/// `ECHClientHelloType` `outer(0)` (draft-ietf-tls-esni-25 §5).
const ECH_OUTER: u8 = 0;
/// `ECHClientHelloType` `inner(1)` (draft-ietf-tls-esni-25 §5).
const ECH_INNER: u8 = 1;

/// Reads a TLS ClientHello from the first bytes of a stream (`data[0]` is the first byte of the
/// first record).
///
/// [`Progress::Done`](crate::Progress::Done) once the whole ClientHello has been read, or at the
/// first fatal problem; otherwise [`Progress::NeedMore`](crate::Progress::NeedMore) with the length
/// at which the next item the parser waits for (a record header, a field, a whole vector, a whole
/// extension) can be complete. The identity holds everything read so far in either case.
#[must_use]
pub fn inspect_tls(data: &[u8]) -> Inspection {
    let mut identity = Identity { protocol: AppProtocol::Tls, ..Identity::default() };
    match read_client_hello(data, &mut identity) {
        Ok(()) => Inspection::done(identity),
        Err(Stop::NeedMore { at_least }) => Inspection::need_more(at_least, data.len(), identity),
        Err(Stop::Malformed(problem)) => {
            note(&mut identity, problem);
            Inspection::done(identity)
        }
    }
}

/// Whether `value` is one of the sixteen GREASE values `0x0A0A, 0x1A1A, …, 0xFAFA` (RFC 8701 §2),
/// which clients put among cipher suites and extension types to keep servers tolerant of unknown
/// values.
#[must_use]
pub const fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// Why reading stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// The bytes end inside the item being read; it can be complete at `at_least` bytes.
    NeedMore { at_least: usize },
    /// A fatal problem: the framing is broken.
    Malformed(Malformed),
}

impl From<Malformed> for Stop {
    fn from(problem: Malformed) -> Stop {
        Stop::Malformed(problem)
    }
}

/// Records `problem` unless an earlier one is recorded (the first problem is the one reported).
fn note(identity: &mut Identity, problem: Malformed) {
    if identity.malformed.is_none() {
        identity.malformed = Some(problem);
    }
}

/// A position in the handshake byte stream carried by the records in `data`.
///
/// The handshake stream is the concatenation of the record payloads; the cursor moves through it
/// and steps over each record header when it reaches the end of a record, checking the header as
/// it does (type, version, length). `offset` counts handshake bytes, which is what every length in
/// the ClientHello is measured in; `pos` is where those bytes are in `data`.
#[derive(Clone, Copy, Debug)]
struct Cursor<'a> {
    data: &'a [u8],
    /// The index in `data` of the next handshake byte, or of the next record header when
    /// `pos == record_end`.
    pos: usize,
    /// The index in `data` just past the current record's payload (beyond `data.len()` while the
    /// record is incomplete).
    record_end: usize,
    /// How many handshake bytes lie before `pos`.
    offset: usize,
}

impl<'a> Cursor<'a> {
    /// At the first record header, which is at `data[0]`.
    const fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data, pos: 0, record_end: 0, offset: 0 }
    }

    /// Steps over the record header at `pos`, checking it (RFC 8446 §5.1): a handshake record of
    /// version 3.x whose length is 1..=[`MAX_RECORD_LEN`]. A ClientHello's records are all handshake
    /// records ("Handshake messages MUST NOT be interleaved with other record types"), and none is
    /// empty ("Implementations MUST NOT send zero-length fragments of Handshake types").
    ///
    /// The header is checked once all five bytes are there, not byte by byte, so that fewer bytes
    /// than the `at_least` asked for never change the result.
    fn enter_record(&mut self) -> Result<(), Stop> {
        let header = self.data.get(self.pos..).unwrap_or_default();
        let Some(&[content_type, major, _minor, high, low]) = header.get(..RECORD_HEADER_LEN) else {
            return Err(Stop::NeedMore { at_least: self.pos.saturating_add(RECORD_HEADER_LEN) });
        };
        let length = usize::from(u16::from_be_bytes([high, low]));
        if content_type != CONTENT_TYPE_HANDSHAKE
            || major != RECORD_MAJOR_VERSION
            || length == 0
            || length > MAX_RECORD_LEN
        {
            return Err(Malformed::TlsRecord.into());
        }
        self.pos = self.pos.saturating_add(RECORD_HEADER_LEN);
        self.record_end = self.pos.saturating_add(length);
        Ok(())
    }

    /// The smallest length of `data` at which the next of `wanted` handshake bytes can be read or a
    /// record header checked: the end of the `wanted` bytes if they lie in the current record,
    /// otherwise the end of the next record header. Only called when `pos` is at the end of `data`
    /// and inside a record, so the result is always beyond `data`.
    fn next_progress(&self, wanted: usize) -> usize {
        let in_record = self.record_end.saturating_sub(self.pos);
        if wanted <= in_record {
            self.pos.saturating_add(wanted)
        } else {
            self.record_end.saturating_add(RECORD_HEADER_LEN)
        }
    }

    /// Up to `max` (≥ 1) next handshake bytes: as many as lie in the current record and in `data`,
    /// at least one.
    fn chunk(&mut self, max: usize) -> Result<&'a [u8], Stop> {
        if self.pos == self.record_end {
            self.enter_record()?;
        }
        let end = self.record_end.min(self.data.len()).min(self.pos.saturating_add(max));
        match self.data.get(self.pos..end) {
            Some(chunk) if !chunk.is_empty() => {
                self.pos = end;
                self.offset = self.offset.saturating_add(chunk.len());
                Ok(chunk)
            }
            _ => Err(Stop::NeedMore { at_least: self.next_progress(max) }),
        }
    }

    /// Moves past the next `count` handshake bytes.
    fn skip(&mut self, count: usize) -> Result<(), Stop> {
        let mut left = count;
        while left > 0 {
            // `chunk` returns at least one byte, so this loop ends.
            left = left.saturating_sub(self.chunk(left)?.len());
        }
        Ok(())
    }

    /// The next `count` handshake bytes as a [`Span`], and moves past them.
    fn span(&mut self, count: usize) -> Result<Span<'a>, Stop> {
        // Field by field rather than `*self`: a whole-struct copy right after the field updates of
        // the previous read stalls on store forwarding, measurably in the extension loop.
        let (pos, record_end, offset) = (self.pos, self.record_end, self.offset);
        self.skip(count)?;
        Ok(Span { start: Cursor { data: self.data, pos, record_end, offset }, len: count })
    }

    /// The next `N` bytes when they all lie in the current record and in `data` (the common case,
    /// read without stepping through [`Cursor::chunk`]); `None` otherwise, and nothing moves.
    #[inline(always)]
    fn fixed_in_record<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        if end > self.record_end {
            return None;
        }
        let bytes: [u8; N] = self.data.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        self.offset = self.offset.saturating_add(N);
        Some(bytes)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, Stop> {
        if let Some([byte]) = self.fixed_in_record::<1>() {
            return Ok(byte);
        }
        match self.chunk(1)?.first() {
            Some(byte) => Ok(*byte),
            None => Err(Stop::NeedMore { at_least: self.next_progress(1) }),
        }
    }

    #[inline(always)]
    fn u16(&mut self) -> Result<u16, Stop> {
        if let Some(bytes) = self.fixed_in_record::<2>() {
            return Ok(u16::from_be_bytes(bytes));
        }
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }

    fn u24(&mut self) -> Result<usize, Stop> {
        let [high, middle, low] = [self.u8()?, self.u8()?, self.u8()?];
        Ok(usize::from(high) << 16 | usize::from(middle) << 8 | usize::from(low))
    }

    /// Handshake bytes left before `end` (an offset).
    const fn left_before(&self, end: usize) -> usize {
        end.saturating_sub(self.offset)
    }

    /// Fails with `problem` unless `count` more handshake bytes fit before `end`: the nested
    /// bounds check every length goes through.
    const fn fits(&self, count: usize, end: usize, problem: Malformed) -> Result<(), Stop> {
        if count <= self.left_before(end) { Ok(()) } else { Err(Stop::Malformed(problem)) }
    }
}

/// A run of handshake bytes that are all in `data`, possibly over several records.
#[derive(Clone, Copy, Debug)]
struct Span<'a> {
    start: Cursor<'a>,
    len: usize,
}

impl<'a> Span<'a> {
    /// The bytes as one slice, when they lie in one record (the common case).
    fn contiguous(&self) -> Option<&'a [u8]> {
        let Cursor { data, pos, record_end, .. } = self.start;
        let end = pos.checked_add(self.len)?;
        if self.len == 0 {
            Some(&[])
        } else if pos < record_end && end <= record_end {
            data.get(pos..end)
        } else {
            None
        }
    }

    /// Calls `each` with the pieces of the span in order.
    fn for_each_chunk(&self, mut each: impl FnMut(&'a [u8])) {
        let mut cursor = self.start;
        let mut left = self.len;
        while left > 0 {
            // The bytes were all read once already, so this cannot fail; stop if it somehow does.
            let Ok(chunk) = cursor.chunk(left) else { return };
            left = left.saturating_sub(chunk.len());
            each(chunk);
        }
    }

    /// A reader over the span that cannot read past its end.
    const fn reader(&self) -> Within<'a> {
        Within { cursor: self.start, end: self.start.offset.saturating_add(self.len) }
    }
}

/// Reads inside an extension, whose bytes are all present: every read either fits before `end`
/// or returns `None`, which the caller reports as the extension's problem.
#[derive(Clone, Copy, Debug)]
struct Within<'a> {
    cursor: Cursor<'a>,
    end: usize,
}

impl<'a> Within<'a> {
    const fn left(&self) -> usize {
        self.cursor.left_before(self.end)
    }

    fn u8(&mut self) -> Option<u8> {
        if self.left() < 1 { None } else { self.cursor.u8().ok() }
    }

    fn u16(&mut self) -> Option<u16> {
        if self.left() < 2 { None } else { self.cursor.u16().ok() }
    }

    fn span(&mut self, count: usize) -> Option<Span<'a>> {
        if self.left() < count { None } else { self.cursor.span(count).ok() }
    }

    /// The next `count` bytes as a reader of their own (for a length-prefixed list).
    fn nested(&mut self, count: usize) -> Option<Within<'a>> {
        self.span(count).map(|span| span.reader())
    }

    /// A list with a length prefix (`u8` or `u16` wide, as `length` read it): the list, bounded by
    /// the prefix or, if the prefix disagrees with what is left, by whatever is shorter. A
    /// disagreement is noted as `Malformed::TlsExtension`; the entries inside are still read, so
    /// that a lenient server and this parser see the same names.
    fn list(&mut self, length: Option<usize>, identity: &mut Identity) -> Option<Within<'a>> {
        let Some(length) = length else {
            note(identity, Malformed::TlsExtension);
            return None;
        };
        if length != self.left() {
            note(identity, Malformed::TlsExtension);
        }
        self.nested(length.min(self.left()))
    }
}

/// Reads the handshake message in `data`'s records, filling in `identity` as each item completes.
fn read_client_hello(data: &[u8], identity: &mut Identity) -> Result<(), Stop> {
    let mut cursor = Cursor::new(data);

    // Handshake header (RFC 8446 §4): msg_type (1), length (3).
    if cursor.u8()? != HANDSHAKE_CLIENT_HELLO {
        return Err(Malformed::TlsHandshake.into());
    }
    let length = cursor.u24()?;
    if !(MIN_CLIENT_HELLO_LEN..=MAX_CLIENT_HELLO_LEN).contains(&length) {
        return Err(Malformed::TlsHandshake.into());
    }
    let body_end = cursor.offset.saturating_add(length);

    // ClientHello (RFC 8446 §4.1.2). The fixed fields up to the session id's length byte fit in
    // the minimum length checked above.
    identity.tls.legacy_version = cursor.u16()?;
    cursor.skip(RANDOM_LEN)?;

    let session_id_len = usize::from(cursor.u8()?);
    if session_id_len > MAX_SESSION_ID_LEN {
        return Err(Malformed::TlsClientHello.into());
    }
    cursor.fits(session_id_len, body_end, Malformed::TlsClientHello)?;
    cursor.skip(session_id_len)?;

    // cipher_suites<2..2^16-2>: a non-empty list of 2-byte values.
    cursor.fits(2, body_end, Malformed::TlsClientHello)?;
    let suites_len = usize::from(cursor.u16()?);
    if suites_len < 2 || suites_len % 2 != 0 {
        return Err(Malformed::TlsClientHello.into());
    }
    cursor.fits(suites_len, body_end, Malformed::TlsClientHello)?;
    let suites = cursor.span(suites_len)?;
    if any_grease(suites) {
        identity.tls.grease = true;
    }

    // legacy_compression_methods<1..2^8-1>.
    cursor.fits(1, body_end, Malformed::TlsClientHello)?;
    let compression_len = usize::from(cursor.u8()?);
    if compression_len == 0 {
        return Err(Malformed::TlsClientHello.into());
    }
    cursor.fits(compression_len, body_end, Malformed::TlsClientHello)?;
    cursor.skip(compression_len)?;

    // The extensions block is absent when the ClientHello ends here (RFC 5246 §7.4.1.2: "the
    // presence of extensions can be detected by determining whether there are bytes following the
    // compression_methods"); old clients send none.
    if cursor.left_before(body_end) == 0 {
        return Ok(());
    }
    cursor.fits(2, body_end, Malformed::TlsClientHello)?;
    let extensions_len = usize::from(cursor.u16()?);
    cursor.fits(extensions_len, body_end, Malformed::TlsClientHello)?;
    let extensions_end = cursor.offset.saturating_add(extensions_len);
    read_extensions(&mut cursor, extensions_end, identity)?;

    // Bytes after the extensions block inside the ClientHello: the block's length and the
    // message's disagree. Read to the message's end, then report it.
    let trailing = cursor.left_before(body_end);
    if trailing > 0 {
        cursor.skip(trailing)?;
        note(identity, Malformed::TlsClientHello);
    }
    Ok(())
}

/// Reads the extensions block (RFC 8446 §4.2), recording each extension as soon as all of its
/// bytes are in `data`.
fn read_extensions(cursor: &mut Cursor<'_>, end: usize, identity: &mut Identity) -> Result<(), Stop> {
    let mut seen = SeenExtensions::default();
    while cursor.left_before(end) > 0 {
        // Extension: extension_type (2), extension_data<0..2^16-1>.
        cursor.fits(4, end, Malformed::TlsExtension)?;
        let extension_type = cursor.u16()?;
        let length = usize::from(cursor.u16()?);
        cursor.fits(length, end, Malformed::TlsExtension)?;
        let body = cursor.span(length)?;

        if is_grease(extension_type) {
            identity.tls.grease = true;
        }
        // RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type in a given
        // extension block." The first one is kept; a second one is not read, so a client cannot
        // replace a name it sent first.
        if !seen.insert(extension_type) {
            note(identity, Malformed::TlsDuplicateExtension);
            continue;
        }
        match extension_type {
            EXT_SERVER_NAME => read_server_name(body, identity),
            EXT_ALPN => read_alpn(body, identity),
            EXT_SUPPORTED_VERSIONS => read_supported_versions(body, identity),
            EXT_ENCRYPTED_CLIENT_HELLO => read_ech(body, identity),
            _ => {}
        }
    }
    Ok(())
}

/// `server_name` (RFC 6066 §3): `ServerName server_name_list<1..2^16-1>`, each entry a `NameType`
/// (1) and, for `host_name`, `HostName<1..2^16-1>`.
///
/// The first non-empty `host_name` becomes the SNI. "The ServerNameList MUST NOT contain more than
/// one name of the same name_type", and a name is never empty: either is noted as
/// [`Malformed::TlsServerName`]. An empty first `host_name` does not hide a second one (a decoy must
/// not dodge a rule). Entries of other name types (none is defined) are read with the same 2-byte
/// length prefix, as deployed servers do.
fn read_server_name(body: Span<'_>, identity: &mut Identity) {
    let mut extension = body.reader();
    let list_len = extension.u16().map(usize::from);
    let Some(mut list) = extension.list(list_len, identity) else { return };
    if list.left() == 0 {
        note(identity, Malformed::TlsServerName);
    }
    let mut host_names = 0_usize;
    while list.left() > 0 {
        let (Some(name_type), Some(name_len)) = (list.u8(), list.u16()) else {
            note(identity, Malformed::TlsExtension);
            return;
        };
        let Some(name) = list.span(usize::from(name_len)) else {
            note(identity, Malformed::TlsExtension);
            return;
        };
        if name_type != NAME_TYPE_HOST_NAME {
            continue;
        }
        host_names = host_names.saturating_add(1);
        if host_names > 1 {
            note(identity, Malformed::TlsServerName);
        }
        let host = host_name_of(name);
        if host.is_empty() {
            note(identity, Malformed::TlsServerName);
        } else if identity.names.is_empty() {
            identity.names.push(NameSource::TlsSni, host);
        }
    }
}

/// `application_layer_protocol_negotiation` (RFC 7301 §3.1): `ProtocolName
/// protocol_name_list<2..2^16-1>`, each `opaque ProtocolName<1..2^8-1>`. Keeps the first id and
/// counts all; an empty id ("Empty strings MUST NOT be included") or an overrun ends the list and
/// is noted as [`Malformed::TlsExtension`], the ids before it are kept.
fn read_alpn(body: Span<'_>, identity: &mut Identity) {
    let mut extension = body.reader();
    let list_len = extension.u16().map(usize::from);
    let Some(mut list) = extension.list(list_len, identity) else { return };
    let mut first: Option<Span<'_>> = None;
    let mut offered = 0_u8;
    while list.left() > 0 {
        let id = match list.u8() {
            Some(0) | None => None,
            Some(len) => list.span(usize::from(len)),
        };
        let Some(id) = id else {
            note(identity, Malformed::TlsExtension);
            break;
        };
        first.get_or_insert(id);
        offered = offered.saturating_add(1);
    }
    match first {
        Some(id) => identity.alpn = alpn_of(id, offered),
        None => note(identity, Malformed::TlsExtension),
    }
}

/// `supported_versions` in a ClientHello (RFC 8446 §4.2.1): `ProtocolVersion versions<2..254>`.
fn read_supported_versions(body: Span<'_>, identity: &mut Identity) {
    let mut extension = body.reader();
    let list_len = extension.u8().map(usize::from);
    let Some(mut list) = extension.list(list_len, identity) else { return };
    if list.left() < 2 || list.left() % 2 != 0 {
        note(identity, Malformed::TlsExtension);
    }
    while let Some(version) = list.u16() {
        if version == TLS13 {
            identity.tls.offers_tls13 = true;
        }
    }
}

/// `encrypted_client_hello` (draft-ietf-tls-esni-25 §5): the first byte is the `ECHClientHelloType`.
fn read_ech(body: Span<'_>, identity: &mut Identity) {
    identity.tls.ech = match body.reader().u8() {
        Some(ECH_OUTER) => Ech::Outer,
        Some(ECH_INNER) => Ech::Inner,
        Some(_) | None => Ech::Unknown,
    };
}

/// Whether a list of 2-byte values (cipher suites) holds a GREASE value.
fn any_grease(span: Span<'_>) -> bool {
    if let Some(bytes) = span.contiguous() {
        let values = bytes.chunks_exact(2).filter_map(|pair| <[u8; 2]>::try_from(pair).ok());
        return values.map(u16::from_be_bytes).any(is_grease);
    }
    // Split over records: read value by value (all bytes are present).
    let mut reader = span.reader();
    let mut found = false;
    while let Some(value) = reader.u16() {
        found |= is_grease(value);
    }
    found
}

/// The normalized name in `span`: read in place when it lies in one record, otherwise gathered
/// piece by piece into a [`NameTail`].
fn host_name_of(span: Span<'_>) -> HostName {
    if let Some(bytes) = span.contiguous() {
        return HostName::from_wire(bytes);
    }
    let mut tail = NameTail::new();
    span.for_each_chunk(|chunk| chunk.iter().for_each(|byte| tail.push(*byte)));
    tail.finish()
}

/// The first ALPN id in `span` (cut to [`Alpn::CAPACITY`]), with the count of ids offered.
fn alpn_of(span: Span<'_>, offered: u8) -> Alpn {
    if let Some(bytes) = span.contiguous() {
        return Alpn::new(bytes, offered);
    }
    // One byte more than is kept, so that `Alpn::new` sees that a longer id was cut.
    let mut kept = [0_u8; Alpn::CAPACITY + 1];
    let mut len = 0_usize;
    span.for_each_chunk(|chunk| {
        for byte in chunk {
            if let Some(slot) = kept.get_mut(len) {
                *slot = *byte;
                len = len.saturating_add(1);
            }
        }
    });
    Alpn::new(kept.get(..len).unwrap_or_default(), offered)
}

/// Gathers a name that arrives in pieces and gives the same [`HostName`] as
/// [`HostName::from_wire`] on the whole name, in one pass and 256 bytes: the last 256 bytes that
/// are not trailing dots, in a ring. Dots are held back until a byte that is not a dot shows they
/// are not trailing. One byte more than [`HOST_CAPACITY`] is kept so that `from_wire` sees a name
/// that is too long and marks it truncated.
#[derive(Debug)]
struct NameTail {
    ring: [u8; NameTail::LEN],
    /// Bytes put in the ring so far (the ring holds the last `LEN` of them).
    total: usize,
    /// Dots seen since the last byte that is not a dot.
    pending_dots: usize,
}

impl NameTail {
    const LEN: usize = HOST_CAPACITY + 1;

    const fn new() -> NameTail {
        NameTail { ring: [0; NameTail::LEN], total: 0, pending_dots: 0 }
    }

    fn push(&mut self, byte: u8) {
        if byte == b'.' {
            self.pending_dots = self.pending_dots.saturating_add(1);
            return;
        }
        // The dots are inside the name after all. Those that would fall out of the ring at once
        // are only counted.
        let overflow = self.pending_dots.saturating_sub(NameTail::LEN);
        self.total = self.total.saturating_add(overflow);
        for _ in overflow..self.pending_dots {
            self.put(b'.');
        }
        self.pending_dots = 0;
        self.put(byte);
    }

    fn put(&mut self, byte: u8) {
        if let Some(slot) = self.ring.get_mut(self.total % NameTail::LEN) {
            *slot = byte;
        }
        self.total = self.total.saturating_add(1);
    }

    fn finish(mut self) -> HostName {
        // Oldest byte first: once the ring has wrapped, the oldest byte is the next one overwritten.
        if self.total > NameTail::LEN {
            self.ring.rotate_left(self.total % NameTail::LEN);
        }
        let kept = self.total.min(NameTail::LEN);
        HostName::from_wire(self.ring.get(..kept).unwrap_or_default())
    }
}

/// Which extension types a ClientHello has sent so far, to find duplicates without a 64 Kbit set:
/// every type below 64 (all the ones this parser reads but ECH, and most that are deployed) in a
/// bit mask, and up to [`SeenExtensions::OTHERS`] other types in a list. A hello with more distinct
/// types than that is not checked for duplicates of the rest; the extensions read for names are
/// always checked (`server_name` is type 0; ECH is in the list unless 32 other unusual types came
/// first, and only its first byte is read).
#[derive(Debug, Default)]
struct SeenExtensions {
    low: u64,
    others: [u16; SeenExtensions::OTHERS],
    others_len: usize,
}

impl SeenExtensions {
    const OTHERS: usize = 32;

    /// Adds `extension_type`; false if it was there already.
    fn insert(&mut self, extension_type: u16) -> bool {
        if let Some(bit) = 1_u64.checked_shl(u32::from(extension_type)) {
            let fresh = self.low & bit == 0;
            self.low |= bit;
            return fresh;
        }
        let known = self.others.get(..self.others_len).unwrap_or_default();
        if known.contains(&extension_type) {
            return false;
        }
        if let Some(slot) = self.others.get_mut(self.others_len) {
            *slot = extension_type;
            self.others_len = self.others_len.saturating_add(1);
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic, clippy::cast_possible_truncation)]
mod tests {
    extern crate std;
    use super::*;
    use crate::Progress;
    use std::vec::Vec;

    /// `payload` in one handshake record.
    fn record(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::from([CONTENT_TYPE_HANDSHAKE, 3, 1]);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A minimal ClientHello handshake message with the given extensions block contents.
    fn hello_message(extensions: &[u8]) -> Vec<u8> {
        let mut body = Vec::from([3, 3]);
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
        let mut message = Vec::from([HANDSHAKE_CLIENT_HELLO, 0]);
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&body);
        message
    }

    const SNI_EXAMPLE: &[u8] = b"\x00\x00\x00\x10\x00\x0e\x00\x00\x0bExample.COM";

    fn primary_name(identity: &Identity) -> Option<&[u8]> {
        identity.names.primary().map(|(_, name)| name.as_bytes())
    }

    #[test]
    fn grease_values_are_exactly_the_sixteen() {
        let count = (0..=u16::MAX).filter(|value| is_grease(*value)).count();
        assert_eq!(count, 16);
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301) && !is_grease(0x0b0b));
    }

    #[test]
    fn minimal_hello_with_sni() {
        let data = record(&hello_message(SNI_EXAMPLE));
        let inspection = inspect_tls(&data);
        assert_eq!(inspection.progress, Progress::Done);
        let identity = inspection.identity;
        assert_eq!(identity.malformed, None);
        assert_eq!(identity.tls.legacy_version, 0x0303);
        assert_eq!(identity.names.primary().map(|(source, _)| *source), Some(NameSource::TlsSni));
        assert_eq!(primary_name(&identity), Some(&b"example.com"[..]));
    }

    #[test]
    fn sni_is_reported_once_its_extension_is_complete() {
        let mut extensions = Vec::from(SNI_EXAMPLE);
        // A padding extension (21) of 30 bytes after the SNI.
        extensions.extend_from_slice(&[0, 21, 0, 30]);
        extensions.extend_from_slice(&[0; 30]);
        let data = record(&hello_message(&extensions));
        let sni_end = data.len() - 34;
        for cut in 0..data.len() {
            let inspection = inspect_tls(&data[..cut]);
            let Progress::NeedMore { at_least } = inspection.progress else {
                panic!("done at {cut}");
            };
            assert!(at_least > cut && at_least <= data.len(), "cut {cut}: {at_least}");
            assert_eq!(inspection.identity.names.len(), usize::from(cut >= sni_end), "cut {cut}");
        }
    }

    #[test]
    fn a_name_split_over_records_is_gathered() {
        let message = hello_message(SNI_EXAMPLE);
        // Split the message in the middle of the name.
        let split = message.len() - 5;
        let mut data = record(&message[..split]);
        data.extend_from_slice(&record(&message[split..]));
        let identity = inspect_tls(&data).identity;
        assert_eq!(primary_name(&identity), Some(&b"example.com"[..]));
        assert_eq!(identity.malformed, None);
    }

    #[test]
    fn name_tail_matches_from_wire() {
        let mut long = [b'a'; 700];
        long[10..400].fill(b'.');
        long[690..].fill(b'.');
        let cases: [&[u8]; 8] =
            [b"a.b.", b"...", b"", b"A..b...c....", &[b'x'; 300], &[b'.'; 300], &[b'y'; 256], &long];
        for case in cases {
            let mut tail = NameTail::new();
            case.iter().for_each(|byte| tail.push(*byte));
            assert_eq!(tail.finish(), HostName::from_wire(case), "{:?}", case.escape_ascii());
        }
    }

    #[test]
    fn seen_extensions_finds_duplicates_high_and_low() {
        let mut seen = SeenExtensions::default();
        assert!(seen.insert(0) && seen.insert(63) && seen.insert(64) && seen.insert(0xfe0d));
        assert!(!seen.insert(0) && !seen.insert(63) && !seen.insert(64) && !seen.insert(0xfe0d));
    }

    #[test]
    fn bad_record_headers_are_final_once_complete() {
        assert_eq!(inspect_tls(&[22, 2]).progress, Progress::NeedMore { at_least: 5 });
        assert_eq!(inspect_tls(&[22, 2, 0, 0, 9]).identity.malformed, Some(Malformed::TlsRecord));
        assert_eq!(inspect_tls(&[22, 3, 1, 0, 0]).identity.malformed, Some(Malformed::TlsRecord));
        assert_eq!(inspect_tls(&[22, 3, 1, 0x48, 1]).identity.malformed, Some(Malformed::TlsRecord));
        assert_eq!(inspect_tls(&[22, 3, 1, 0, 4, 2]).identity.malformed, Some(Malformed::TlsHandshake));
        assert_eq!(inspect_tls(&[22, 3, 1]).progress, Progress::NeedMore { at_least: 5 });
        assert_eq!(inspect_tls(&[22, 3, 1, 0, 4]).progress, Progress::NeedMore { at_least: 6 });
    }
}
