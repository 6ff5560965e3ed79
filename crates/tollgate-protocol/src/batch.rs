//! The append-only batch writer shared by every batch kind.
//!
//! A record is appended whole or not at all: its length is known before a byte is written, the
//! writer checks that it fits (in the buffer and under the record limit) and only then encodes it
//! into exactly that range. The header is written last, by `finish`, from the records actually
//! appended, so a reply can never announce a record it does not hold.

use crate::error::ProtocolError;
use crate::header::{HEADER_LEN, Header, MessageKind};
use crate::wire::Writer;

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
