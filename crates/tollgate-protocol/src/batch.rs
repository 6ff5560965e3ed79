//! The batch writer and the checked batch reader shared by every batch kind.
//!
//! # Writing
//! A record is appended whole or not at all: its length is known before a byte is written, the
//! writer checks that it fits (in the buffer and under the record limit) and only then encodes it
//! into exactly that range. The header is written last, by `finish`, from the records actually
//! appended, so a reply can never announce a record it does not hold.
//!
//! # Reading
//!
//! A batch is decoded in two steps: the decoder reads and checks every record once, and only a
//! batch that passed whole becomes a [`Records`]. Iterating it reads the records again without
//! checking them, allocates nothing, and can be repeated (the driver walks a blocklist twice).

use core::marker::PhantomData;

use crate::error::ProtocolError;
use crate::header::{HEADER_LEN, Header, MessageKind, read_header};
use crate::wire::{Reader, Writer};

pub(crate) struct RawBatchWriter<'b> {
    header: &'b mut [u8; HEADER_LEN],
    body: &'b mut [u8],
    kind: MessageKind,
    len: usize,
    count: u32,
    max_records: u32,
}

impl<'b> RawBatchWriter<'b> {
    pub(crate) fn new(buf: &'b mut [u8], kind: MessageKind, max_records: u32) -> Result<Self, ProtocolError> {
        let available = buf.len();
        let (header, body) = buf
            .split_at_mut_checked(HEADER_LEN)
            .ok_or(ProtocolError::BufferTooSmall { needed: HEADER_LEN, available })?;
        let header: &mut [u8; HEADER_LEN] =
            header.try_into().map_err(|_| ProtocolError::BufferTooSmall { needed: HEADER_LEN, available })?;
        Ok(RawBatchWriter { header, body, kind, len: 0, count: 0, max_records })
    }

    /// Appends one record of `record_len` bytes, encoded by `encode`, or nothing.
    pub(crate) fn append(
        &mut self,
        record_len: usize,
        encode: impl FnOnce(&mut Writer<'_>) -> Result<(), ProtocolError>,
    ) -> Result<(), ProtocolError> {
        if self.count >= self.max_records {
            return Err(ProtocolError::TooManyRecords { count: self.count.saturating_add(1), max: self.max_records });
        }
        let end = self
            .len
            .checked_add(record_len)
            .ok_or(ProtocolError::BufferTooSmall { needed: usize::MAX, available: self.capacity() })?;
        // The total length must fit the header's u32 as well as the buffer.
        let total = end.saturating_add(HEADER_LEN);
        if u32::try_from(total).is_err() {
            return Err(ProtocolError::BufferTooSmall { needed: total, available: self.capacity() });
        }
        let capacity = self.capacity();
        let dest = self
            .body
            .get_mut(self.len..end)
            .ok_or(ProtocolError::BufferTooSmall { needed: total, available: capacity })?;
        let mut w = Writer::new(dest);
        encode(&mut w)?;
        if w.position() != record_len {
            // An encoder that wrote fewer bytes than it announced would leave stale bytes inside
            // the message; refuse to commit the record rather than send them.
            return Err(ProtocolError::LengthMismatch { declared: record_len, actual: w.position() });
        }
        self.len = end;
        self.count = self.count.saturating_add(1);
        Ok(())
    }

    pub(crate) const fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of the message so far, header included.
    pub(crate) const fn message_len(&self) -> usize {
        self.len.saturating_add(HEADER_LEN)
    }

    /// The whole buffer's length.
    pub(crate) const fn capacity(&self) -> usize {
        self.body.len().saturating_add(HEADER_LEN)
    }

    /// Writes the header and returns the message length.
    pub(crate) fn finish(self) -> usize {
        let total = self.message_len();
        // `append` keeps `total` within u32.
        let total_length = u32::try_from(total).unwrap_or(u32::MAX);
        *self.header = Header { kind: self.kind, total_length, count: self.count }.to_bytes();
        total
    }
}

pub(crate) mod sealed {
    /// Only this crate's record kinds can be held by [`super::Records`].
    pub trait Sealed {}
}

/// A record kind a checked batch can hold: how one record is read from the wire.
///
/// Sealed: the record kinds are this crate's own.
pub trait Record<'a>: Sized + sealed::Sealed {
    /// Reads (and checks) one record at the reader's position.
    #[doc(hidden)]
    fn read(reader: &mut Reader<'a>) -> Result<Self, ProtocolError>;
}

/// Implements [`Record`] for a record type with the function that reads one.
macro_rules! impl_record {
    ($record:ty, $read:path) => {
        impl<'a> crate::batch::sealed::Sealed for $record {}

        impl<'a> crate::batch::Record<'a> for $record {
            fn read(reader: &mut crate::wire::Reader<'a>) -> Result<Self, crate::error::ProtocolError> {
                $read(reader)
            }
        }
    };
}
pub(crate) use impl_record;

/// A checked batch of records: every record was read and checked when the message was decoded.
pub struct Records<'a, T> {
    body: &'a [u8],
    count: u32,
    record: PhantomData<fn() -> T>,
}

impl<T> Clone for Records<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Records<'_, T> {}

impl<T> core::fmt::Debug for Records<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Records").field("count", &self.count).field("body_len", &self.body.len()).finish()
    }
}

impl<'a, T: Record<'a>> Records<'a, T> {
    /// Number of records.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.count as usize
    }

    /// No records.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of records, as the header carries it.
    pub(crate) const fn count(&self) -> u32 {
        self.count
    }

    /// The records, in wire order.
    #[must_use]
    pub const fn iter(&self) -> RecordIter<'a, T> {
        RecordIter { reader: Reader::new(self.body), left: self.count, record: PhantomData }
    }

    /// Reads `count` records with `reader`, handing each to `check` with its index, and returns the
    /// batch over `body` (the bytes the records start at). The first error ends the read.
    pub(crate) fn check(
        body: &'a [u8],
        count: u32,
        reader: &mut Reader<'a>,
        mut check: impl FnMut(usize, T) -> Result<(), ProtocolError>,
    ) -> Result<Self, ProtocolError> {
        for index in 0..count as usize {
            check(index, T::read(reader)?)?;
        }
        Ok(Records { body, count, record: PhantomData })
    }

    /// Decodes a message of variable-length records: the header of `kind`, at most `max_records`
    /// records (each also passed to `check`), and not a byte after the last. Error offsets are
    /// relative to the message.
    pub(crate) fn decode(
        buf: &'a [u8],
        kind: MessageKind,
        max_records: u32,
        check: impl FnMut(usize, T) -> Result<(), ProtocolError>,
    ) -> Result<Self, ProtocolError> {
        let (header, mut reader) = read_header(buf, kind)?;
        if header.count > max_records {
            return Err(ProtocolError::TooManyRecords { count: header.count, max: max_records });
        }
        let body = buf.get(HEADER_LEN..).unwrap_or_default();
        let records = Self::check(body, header.count, &mut reader, check)?;
        if reader.remaining() != 0 {
            return Err(ProtocolError::LengthMismatch { declared: reader.position(), actual: buf.len() });
        }
        Ok(records)
    }
}

impl<'a, T: Record<'a>> IntoIterator for &Records<'a, T> {
    type Item = T;
    type IntoIter = RecordIter<'a, T>;

    fn into_iter(self) -> RecordIter<'a, T> {
        self.iter()
    }
}

/// The records of a [`Records`], read one at a time.
pub struct RecordIter<'a, T> {
    reader: Reader<'a>,
    left: u32,
    record: PhantomData<fn() -> T>,
}

impl<T> Clone for RecordIter<'_, T> {
    fn clone(&self) -> Self {
        RecordIter { reader: self.reader.clone(), left: self.left, record: PhantomData }
    }
}

impl<'a, T: Record<'a>> Iterator for RecordIter<'a, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.left = self.left.checked_sub(1)?;
        // The batch was checked when decoded, so this cannot fail; if it ever did, ending the
        // iteration is the panic-free answer.
        T::read(&mut self.reader).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}
