//! `IOCTL_TOLLGATE_PUSH_BLOCKLIST` input: the domain blocklist (kind
//! [`MessageKind::DomainBlocklist`]), which replaces the driver's whole list. A stream whose TLS SNI
//! or HTTP Host matches a pattern is dropped by the stream callout.
//!
//! The header's count is the number of patterns, 0 to [`MAX_BLOCKLIST_PATTERNS`] (0 clears the
//! list); the whole message is at most [`MAX_BLOCKLIST_MESSAGE_LEN`] bytes. Records follow back to
//! back, each padded to a multiple of 8 bytes.
//!
//! # A pattern record
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 1 | kind | 0 = exact (`example.com`: that name only), 1 = below (`*.example.com`: every name under it, not the name itself) ([`PatternKind`]) |
//! | 1 | 1 | length *n* | 1 to 253 ([`MAX_NAME_LEN`]) |
//! | 2 | *n* | name | the name without `*.` and without a trailing dot, in canonical form: lowercase, a valid DNS name ([`validate_canonical`]) |
//! | 2 + *n* | 0–7 | padding | zero, up to a multiple of 8 |
//!
//! Patterns are strictly increasing by (kind code, name bytes): all exact patterns first, each
//! group in byte order. So a duplicate or an unsorted list is rejected
//! ([`ProtocolError::DuplicatePattern`], [`ProtocolError::UnsortedPatterns`]) and a set of patterns
//! has exactly one encoding; the driver can build its tables without sorting or deduplicating, and
//! a name's validity is checked once, here, with the error naming the pattern's index
//! ([`ProtocolError::BadPattern`]).
//!
//! Why these bounds: 65,536 records of up to 256 bytes would be 16 MiB in one request; 4 MiB bounds
//! the copy the I/O manager makes of the input (and the driver's tables) at a quarter of that, which
//! still holds all 65,536 patterns when their names average under 62 bytes. The limits are
//! constants of the protocol, not fields of the HELLO reply, whose layout never changes.

use core::cmp::Ordering;

use tollgate_inspect::name::{MAX_NAME_LEN, PatternKind, validate_canonical};

use crate::batch::{RawBatchWriter, RecordIter, Records, impl_record};
use crate::error::{EnumField, ProtocolError};
use crate::header::{HEADER_LEN, MessageKind};
use crate::wire::{Reader, Writer, align8, padding8};

/// The most patterns one blocklist may hold.
pub const MAX_BLOCKLIST_PATTERNS: u32 = 65_536;
/// The largest blocklist message, header included: 4 MiB.
pub const MAX_BLOCKLIST_MESSAGE_LEN: usize = 4 * 1024 * 1024;
/// Size of a pattern record without its name (kind and length).
pub const BLOCKLIST_RECORD_HEADER_LEN: usize = 2;
/// The largest pattern record: a 253-byte name, padded.
pub const MAX_BLOCKLIST_RECORD_LEN: usize = align8(BLOCKLIST_RECORD_HEADER_LEN + MAX_NAME_LEN);

const _: () = assert!(MAX_BLOCKLIST_RECORD_LEN == 256);
const _: () = assert!(MAX_NAME_LEN <= u8::MAX as usize);

/// The wire byte of a pattern kind.
#[must_use]
pub const fn pattern_kind_to_u8(kind: PatternKind) -> u8 {
    match kind {
        PatternKind::Exact => 0,
        PatternKind::Below => 1,
    }
}

/// The pattern kind of a wire byte.
///
/// # Errors
/// [`ProtocolError::BadEnum`] for anything but 0 or 1.
pub const fn pattern_kind_from_u8(value: u8) -> Result<PatternKind, ProtocolError> {
    match value {
        0 => Ok(PatternKind::Exact),
        1 => Ok(PatternKind::Below),
        value => Err(ProtocolError::BadEnum { field: EnumField::PatternKind, value }),
    }
}

/// The encoded length of one pattern record.
const fn record_len(name: &[u8]) -> usize {
    align8(BLOCKLIST_RECORD_HEADER_LEN.saturating_add(name.len()))
}

/// A record index as carried by the errors (the count is bounded far below `u32::MAX`).
fn index_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// The wire order of two patterns: by kind code, then by name bytes.
fn wire_order(a: (PatternKind, &[u8]), b: (PatternKind, &[u8])) -> Ordering {
    (pattern_kind_to_u8(a.0), a.1).cmp(&(pattern_kind_to_u8(b.0), b.1))
}

/// Checks pattern `index` against its predecessor: valid name, strictly after `previous`.
fn check_pattern(
    index: usize,
    pattern: (PatternKind, &[u8]),
    previous: Option<(PatternKind, &[u8])>,
) -> Result<(), ProtocolError> {
    let index = index_u32(index);
    validate_canonical(pattern.1).map_err(|error| ProtocolError::BadPattern { index, issue: error })?;
    match previous.map(|previous| wire_order(pattern, previous)) {
        Some(Ordering::Equal) => Err(ProtocolError::DuplicatePattern { index }),
        Some(Ordering::Less) => Err(ProtocolError::UnsortedPatterns { index }),
        Some(Ordering::Greater) | None => Ok(()),
    }
}

fn encode_pattern(w: &mut Writer<'_>, kind: PatternKind, name: &[u8]) -> Result<(), ProtocolError> {
    w.u8(pattern_kind_to_u8(kind))?;
    // Checked by `validate_canonical` (≤ 253) before a byte is written.
    w.u8(u8::try_from(name.len()).unwrap_or(0))?;
    w.bytes(name)?;
    w.zeros(padding8(BLOCKLIST_RECORD_HEADER_LEN.saturating_add(name.len())))
}

/// Reads one record's structure (kind code, length, bytes, zero padding); the name's validity and
/// the order are checked by [`decode_blocklist`].
fn read_pattern<'a>(r: &mut Reader<'a>) -> Result<(PatternKind, &'a [u8]), ProtocolError> {
    let kind = pattern_kind_from_u8(r.u8()?)?;
    let len = usize::from(r.u8()?);
    let name = r.bytes(len)?;
    r.zeros(padding8(BLOCKLIST_RECORD_HEADER_LEN.saturating_add(len)))?;
    Ok((kind, name))
}

/// The length of the message [`encode_blocklist`] makes of `patterns` (saturating; valid or not),
/// to size its buffer.
pub fn blocklist_len<'p>(patterns: impl IntoIterator<Item = (PatternKind, &'p [u8])>) -> usize {
    patterns.into_iter().fold(HEADER_LEN, |total, (_, name)| total.saturating_add(record_len(name)))
}

/// Encodes a blocklist into `out`; returns its length. The patterns must already be in wire order
/// (sorted by kind, exact first, then by name bytes) and unique, and every name canonical — the
/// same checks the driver makes, so the service cannot send a list the driver would reject. With
/// the `std` feature, `encode_blocklist_to_vec` sorts and deduplicates first.
///
/// # Errors
/// [`ProtocolError::BadPattern`], [`ProtocolError::DuplicatePattern`],
/// [`ProtocolError::UnsortedPatterns`] (naming the first offending index);
/// [`ProtocolError::TooManyRecords`] over [`MAX_BLOCKLIST_PATTERNS`];
/// [`ProtocolError::MessageTooLong`] over [`MAX_BLOCKLIST_MESSAGE_LEN`];
/// [`ProtocolError::BufferTooSmall`] if `out` is too short (see [`blocklist_len`]). On error `out`
/// holds no valid message.
pub fn encode_blocklist<'p>(
    patterns: impl IntoIterator<Item = (PatternKind, &'p [u8])>,
    out: &mut [u8],
) -> Result<usize, ProtocolError> {
    let mut raw = RawBatchWriter::new(out, MessageKind::DomainBlocklist, MAX_BLOCKLIST_PATTERNS)?;
    let mut previous = None;
    for (index, (kind, name)) in patterns.into_iter().enumerate() {
        check_pattern(index, (kind, name), previous)?;
        let len = record_len(name);
        let total = raw.message_len().saturating_add(len);
        if total > MAX_BLOCKLIST_MESSAGE_LEN {
            return Err(ProtocolError::MessageTooLong { len: total, max: MAX_BLOCKLIST_MESSAGE_LEN });
        }
        raw.append(len, |w| encode_pattern(w, kind, name))?;
        previous = Some((kind, name));
    }
    Ok(raw.finish())
}

/// Encodes a blocklist from patterns in any order, with duplicates: validates every name (the
/// error names its index in `patterns`), sorts, deduplicates, and encodes into a new buffer. For
/// the user-mode service.
///
/// # Errors
/// [`ProtocolError::BadPattern`]; [`ProtocolError::TooManyRecords`] or
/// [`ProtocolError::MessageTooLong`] if the unique patterns exceed the bounds.
#[cfg(feature = "std")]
pub fn encode_blocklist_to_vec<'p>(
    patterns: impl IntoIterator<Item = (PatternKind, &'p [u8])>,
) -> Result<std::vec::Vec<u8>, ProtocolError> {
    let mut list = std::vec::Vec::new();
    for (index, (kind, name)) in patterns.into_iter().enumerate() {
        validate_canonical(name)
            .map_err(|error| ProtocolError::BadPattern { index: index_u32(index), issue: error })?;
        list.push((kind, name));
    }
    list.sort_unstable_by(|a, b| wire_order(*a, *b));
    list.dedup();
    let count = u32::try_from(list.len()).unwrap_or(u32::MAX);
    if count > MAX_BLOCKLIST_PATTERNS {
        return Err(ProtocolError::TooManyRecords { count, max: MAX_BLOCKLIST_PATTERNS });
    }
    let len = blocklist_len(list.iter().copied());
    if len > MAX_BLOCKLIST_MESSAGE_LEN {
        return Err(ProtocolError::MessageTooLong { len, max: MAX_BLOCKLIST_MESSAGE_LEN });
    }
    let mut out = std::vec![0_u8; len];
    let written = encode_blocklist(list.iter().copied(), &mut out)?;
    out.truncate(written);
    Ok(out)
}

/// A checked blocklist: every pattern was validated when it was decoded. Iterating it allocates
/// nothing and checks nothing again, so the driver may walk it twice (once to size its tables,
/// once to fill them). The patterns come in wire order, borrowing their names from the message.
pub type Blocklist<'a> = Records<'a, (PatternKind, &'a [u8])>;

/// The patterns of a [`Blocklist`].
pub type BlocklistIter<'a> = RecordIter<'a, (PatternKind, &'a [u8])>;

impl_record!((PatternKind, &'a [u8]), read_pattern);

/// Decodes and validates a blocklist (the driver's side of `PUSH_BLOCKLIST`).
///
/// # Errors
/// Any header error; [`ProtocolError::TooManyRecords`] over [`MAX_BLOCKLIST_PATTERNS`];
/// [`ProtocolError::MessageTooLong`] over [`MAX_BLOCKLIST_MESSAGE_LEN`]; for a record,
/// [`ProtocolError::BadEnum`] (kind), [`ProtocolError::TooShort`] (cut short),
/// [`ProtocolError::NonZeroReserved`] (padding), [`ProtocolError::BadPattern`],
/// [`ProtocolError::DuplicatePattern`], [`ProtocolError::UnsortedPatterns`];
/// [`ProtocolError::LengthMismatch`] for bytes after the last record.
pub fn decode_blocklist(buf: &[u8]) -> Result<Blocklist<'_>, ProtocolError> {
    // Refused before a byte of it is parsed: the driver's tables are sized from this message.
    if buf.len() > MAX_BLOCKLIST_MESSAGE_LEN {
        return Err(ProtocolError::MessageTooLong { len: buf.len(), max: MAX_BLOCKLIST_MESSAGE_LEN });
    }
    let mut previous = None;
    Records::decode(buf, MessageKind::DomainBlocklist, MAX_BLOCKLIST_PATTERNS, |index, pattern| {
        check_pattern(index, pattern, previous)?;
        previous = Some(pattern);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_order_is_kind_then_bytes() {
        let exact_z = (PatternKind::Exact, &b"z.test"[..]);
        let below_a = (PatternKind::Below, &b"a.test"[..]);
        assert_eq!(wire_order(exact_z, below_a), Ordering::Less);
        assert_eq!(wire_order((PatternKind::Exact, b"a.test"), (PatternKind::Exact, b"a.test.x")), Ordering::Less);
        assert_eq!(wire_order((PatternKind::Exact, b"b"), (PatternKind::Exact, b"a.test.x")), Ordering::Greater);
        assert_eq!(check_pattern(1, below_a, Some(exact_z)), Ok(()));
        assert_eq!(check_pattern(1, exact_z, Some(below_a)), Err(ProtocolError::UnsortedPatterns { index: 1 }));
        assert_eq!(check_pattern(4, below_a, Some(below_a)), Err(ProtocolError::DuplicatePattern { index: 4 }));
    }

    #[test]
    fn a_record_reads_back() {
        let mut buf = [0xEE_u8; 16];
        let mut w = Writer::new(&mut buf);
        assert_eq!(encode_pattern(&mut w, PatternKind::Below, b"ads.test"), Ok(()));
        assert_eq!(w.position(), record_len(b"ads.test"));
        assert_eq!(buf, *b"\x01\x08ads.test\0\0\0\0\0\0");
        let mut r = Reader::new(&buf);
        assert_eq!(read_pattern(&mut r), Ok((PatternKind::Below, &b"ads.test"[..])));
        assert_eq!(r.remaining(), 0);
        for kind in [PatternKind::Exact, PatternKind::Below] {
            assert_eq!(pattern_kind_from_u8(pattern_kind_to_u8(kind)), Ok(kind));
        }
    }
}
