//! Panic-free little-endian cursors over byte slices.
//!
//! Every read and write of the protocol goes through these two types, so the bounds checks live in
//! one place: a cursor never indexes, it asks `get`/`get_mut` for the exact range and turns a miss
//! into an error. The parsers and encoders then read like the layout tables in the module docs —
//! one call per field, in wire order.

use crate::error::ProtocolError;

/// Reads fields in order from a message that is already known to be `buf.len()` bytes long.
///
/// `pub` only so that the sealed `Record` trait can name it; this module is private, so no one
/// outside the crate can.
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) const fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) const fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub(crate) const fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes. A short buffer is [`ProtocolError::TooShort`]: the sender declared (or
    /// the layout implies) more bytes than it sent.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end =
            self.pos.checked_add(n).ok_or(ProtocolError::TooShort { needed: usize::MAX, actual: self.buf.len() })?;
        let slice =
            self.buf.get(self.pos..end).ok_or(ProtocolError::TooShort { needed: end, actual: self.buf.len() })?;
        self.pos = end;
        Ok(slice)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let slice = self.bytes(N)?;
        // `bytes(N)` returned exactly N bytes, so the conversion cannot fail; mapping the impossible
        // error keeps the function panic-free without an `expect`.
        slice.try_into().map_err(|_| ProtocolError::TooShort { needed: N, actual: slice.len() })
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// `n` reserved or padding bytes, which must be zero: a sender that sets them is either broken
    /// or probing, and accepting them would let two different byte strings mean the same message
    /// (and would make the bytes unusable for a later version that gives them a meaning).
    pub(crate) fn zeros(&mut self, n: usize) -> Result<(), ProtocolError> {
        if self.bytes(n)?.iter().all(|&b| b == 0) { Ok(()) } else { Err(ProtocolError::NonZeroReserved) }
    }
}

/// Writes fields in order into a slice that the caller has already checked is large enough.
///
/// Every byte of a record is written explicitly, padding and reserved bytes included: the driver's
/// output buffer is the I/O manager's system buffer, which may still hold the caller's input or
/// earlier contents, and nothing but the message may reach user mode (S9).
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub(crate) const fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        let available = self.buf.len();
        let end =
            self.pos.checked_add(data.len()).ok_or(ProtocolError::BufferTooSmall { needed: usize::MAX, available })?;
        let dest = self.buf.get_mut(self.pos..end).ok_or(ProtocolError::BufferTooSmall { needed: end, available })?;
        // `dest` is exactly `data.len()` long (the range above), so this copy cannot panic.
        dest.copy_from_slice(data);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), ProtocolError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), ProtocolError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), ProtocolError> {
        self.bytes(&v.to_le_bytes())
    }

    /// `units` as consecutive little-endian `u16`s: one bounds check for all of them, and a loop
    /// the compiler vectorizes (an app path is about a hundred units, written for every pend the
    /// driver delivers).
    pub(crate) fn u16s(&mut self, units: &[u16]) -> Result<(), ProtocolError> {
        let available = self.buf.len();
        let end = units
            .len()
            .checked_mul(2)
            .and_then(|len| self.pos.checked_add(len))
            .ok_or(ProtocolError::BufferTooSmall { needed: usize::MAX, available })?;
        let dest = self.buf.get_mut(self.pos..end).ok_or(ProtocolError::BufferTooSmall { needed: end, available })?;
        for (pair, unit) in dest.chunks_exact_mut(2).zip(units) {
            // Each chunk is exactly two bytes long, so this copy cannot panic.
            pair.copy_from_slice(&unit.to_le_bytes());
        }
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), ProtocolError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn zeros(&mut self, n: usize) -> Result<(), ProtocolError> {
        let available = self.buf.len();
        let end = self.pos.checked_add(n).ok_or(ProtocolError::BufferTooSmall { needed: usize::MAX, available })?;
        let dest = self.buf.get_mut(self.pos..end).ok_or(ProtocolError::BufferTooSmall { needed: end, available })?;
        dest.fill(0);
        self.pos = end;
        Ok(())
    }
}

/// `n` rounded up to a multiple of 8 (saturating; only ever called on small record sizes).
pub(crate) const fn align8(n: usize) -> usize {
    n.saturating_add(padding8(n))
}

/// The zero bytes that pad `n` bytes to a multiple of 8 (cannot overflow, unlike `align8(n) - n`).
pub(crate) const fn padding8(n: usize) -> usize {
    (8 - n % 8) % 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u16s_writes_little_endian_units_or_nothing() {
        let mut buf = [0xee_u8; 7];
        let mut w = Writer::new(&mut buf);
        assert_eq!(w.u8(1), Ok(()));
        assert_eq!(w.u16s(&[0x0201, 0x0403, 0xfffe]), Ok(()));
        assert_eq!(w.position(), 7);
        assert_eq!(buf, [1, 0x01, 0x02, 0x03, 0x04, 0xfe, 0xff]);
        let mut short = [0xee_u8; 3];
        let mut w = Writer::new(&mut short);
        assert_eq!(w.u16s(&[1, 2]), Err(ProtocolError::BufferTooSmall { needed: 4, available: 3 }));
        assert_eq!((w.position(), short), (0, [0xee; 3]), "nothing written on error");
        let mut w = Writer::new(&mut short);
        assert_eq!(w.u16s(&[]), Ok(()));
    }
}
