//! `IOCTL_TOLLGATE_SUBMIT_VERDICTS`: a batch of verdicts in (kind [`MessageKind::VerdictBatch`]),
//! one result per verdict out (kind [`MessageKind::VerdictResults`]).
//!
//! # A verdict record (16 bytes)
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 8 | id (u64 LE) | the [`PendId`] from the pended record, unchanged |
//! | 8 | 1 | verdict | 0 = block, 1 = permit: a zeroed record fails closed |
//! | 9 | 7 | reserved | zero; pads the record to 8-byte alignment |
//!
//! # A result record (16 bytes)
//!
//! | offset | size | field | why |
//! |---:|---:|---|---|
//! | 0 | 8 | id (u64 LE) | the id of the verdict at the same index, so the service need not rely on order |
//! | 8 | 1 | result | a [`VerdictResult`] code: 0 accepted, 1 unknown id, 2 late, 3 being resolved, 4 unloading |
//! | 9 | 7 | reserved | zero |
//!
//! The reply has the same count, and therefore the same length, as the request, and result *i*
//! sits exactly where verdict *i* was. That is deliberate: with `METHOD_BUFFERED` the I/O manager
//! gives the driver *one* system buffer for both input and output
//! (<https://learn.microsoft.com/en-us/windows-hardware/drivers/kernel/buffer-descriptions-for-i-o-control-codes>),
//! so writing result *i* must not overwrite a verdict not yet read. [`respond_to_verdicts`] does the
//! whole exchange in place under that rule, and validates every verdict before applying any, so a
//! malformed batch changes nothing.
//!
//! A duplicate id within one batch is not a protocol error: the core answers the second one
//! (`BeingResolved` or `LateVerdict`), as it would across batches.

use tollgate_core::{PendId, Verdict, VerdictError};

use crate::MAX_BATCH_RECORDS;
use crate::batch::{RawBatchWriter, RecordIter, Records, impl_record};
use crate::error::{EnumField, ProtocolError};
use crate::header::{HEADER_LEN, Header, MessageKind, read_header, total_for};
use crate::wire::{Reader, Writer};

/// Size of a verdict record.
pub const VERDICT_RECORD_LEN: usize = 16;
/// Size of a result record (equal to [`VERDICT_RECORD_LEN`]; see the module docs for why).
pub const RESULT_RECORD_LEN: usize = 16;

const _: () = assert!(VERDICT_RECORD_LEN == RESULT_RECORD_LEN);

/// One verdict for one pended connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VerdictEntry {
    /// The id from the pended record.
    pub id: PendId,
    /// The decision.
    pub verdict: Verdict,
}

/// The wire byte of a verdict (also used by the configuration's default verdict).
#[must_use]
pub const fn verdict_to_u8(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Block => 0,
        Verdict::Permit => 1,
    }
}

/// The verdict of a wire byte.
///
/// # Errors
/// [`ProtocolError::BadEnum`] for anything but 0 or 1.
pub const fn verdict_from_u8(value: u8) -> Result<Verdict, ProtocolError> {
    match value {
        0 => Ok(Verdict::Block),
        1 => Ok(Verdict::Permit),
        value => Err(ProtocolError::BadEnum { field: EnumField::Verdict, value }),
    }
}

/// What the driver did with one verdict: the core's answer ([`VerdictError`]) on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum VerdictResult {
    /// Applied: the connection is being completed with this verdict.
    Accepted = 0,
    /// [`VerdictError::UnknownId`]: never issued, or forged.
    UnknownId = 1,
    /// [`VerdictError::LateVerdict`]: already resolved (answered, timed out, torn down, cleaned up).
    LateVerdict = 2,
    /// [`VerdictError::BeingResolved`]: another path is completing it right now.
    BeingResolved = 3,
    /// [`VerdictError::Unloading`]: the driver is unloading.
    Unloading = 4,
}

impl VerdictResult {
    /// The wire byte.
    #[must_use]
    pub const fn to_u8(self) -> u8 {
        self as u8
    }

    /// The result of a wire byte.
    ///
    /// # Errors
    /// [`ProtocolError::BadEnum`] for an undefined code.
    pub const fn from_u8(value: u8) -> Result<VerdictResult, ProtocolError> {
        match value {
            0 => Ok(VerdictResult::Accepted),
            1 => Ok(VerdictResult::UnknownId),
            2 => Ok(VerdictResult::LateVerdict),
            3 => Ok(VerdictResult::BeingResolved),
            4 => Ok(VerdictResult::Unloading),
            value => Err(ProtocolError::BadEnum { field: EnumField::VerdictResult, value }),
        }
    }

    /// Back to the core's vocabulary.
    ///
    /// # Errors
    /// The [`VerdictError`] this result stands for.
    pub const fn into_result(self) -> Result<(), VerdictError> {
        match self {
            VerdictResult::Accepted => Ok(()),
            VerdictResult::UnknownId => Err(VerdictError::UnknownId),
            VerdictResult::LateVerdict => Err(VerdictError::LateVerdict),
            VerdictResult::BeingResolved => Err(VerdictError::BeingResolved),
            VerdictResult::Unloading => Err(VerdictError::Unloading),
        }
    }
}

impl From<Result<(), VerdictError>> for VerdictResult {
    /// What `Core::apply_verdict` returned, as a result code.
    fn from(result: Result<(), VerdictError>) -> Self {
        match result {
            Ok(()) => VerdictResult::Accepted,
            Err(VerdictError::UnknownId) => VerdictResult::UnknownId,
            Err(VerdictError::LateVerdict) => VerdictResult::LateVerdict,
            Err(VerdictError::BeingResolved) => VerdictResult::BeingResolved,
            Err(VerdictError::Unloading) => VerdictResult::Unloading,
        }
    }
}

/// One result record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VerdictOutcome {
    /// The id the verdict named.
    pub id: PendId,
    /// What happened to it.
    pub result: VerdictResult,
}

fn decode_verdict(r: &mut Reader<'_>) -> Result<VerdictEntry, ProtocolError> {
    let id = PendId::from_raw(r.u64()?);
    let verdict = verdict_from_u8(r.u8()?)?;
    r.zeros(7)?;
    Ok(VerdictEntry { id, verdict })
}

fn encode_verdict(w: &mut Writer<'_>, entry: &VerdictEntry) -> Result<(), ProtocolError> {
    w.u64(entry.id.to_raw())?;
    w.u8(verdict_to_u8(entry.verdict))?;
    w.zeros(7)
}

fn decode_outcome(r: &mut Reader<'_>) -> Result<VerdictOutcome, ProtocolError> {
    let id = PendId::from_raw(r.u64()?);
    let result = VerdictResult::from_u8(r.u8()?)?;
    r.zeros(7)?;
    Ok(VerdictOutcome { id, result })
}

fn encode_outcome(w: &mut Writer<'_>, outcome: &VerdictOutcome) -> Result<(), ProtocolError> {
    w.u64(outcome.id.to_raw())?;
    w.u8(outcome.result.to_u8())?;
    w.zeros(7)
}

/// Checks the header and the count of a fixed-record batch; returns the count and the body.
fn read_fixed_batch(buf: &[u8], kind: MessageKind, record_len: usize) -> Result<(u32, &[u8]), ProtocolError> {
    let (header, mut r) = read_header(buf, kind)?;
    if header.count > MAX_BATCH_RECORDS {
        return Err(ProtocolError::TooManyRecords { count: header.count, max: MAX_BATCH_RECORDS });
    }
    let implied = total_for(header.count, record_len).map_or(usize::MAX, |n| n as usize);
    if implied != buf.len() {
        return Err(ProtocolError::LengthMismatch { declared: implied, actual: buf.len() });
    }
    Ok((header.count, r.bytes(r.remaining())?))
}

// ------------------------------------------------------------------ verdict batch

/// Builds a `SUBMIT_VERDICTS` request (the service's side).
pub struct VerdictWriter<'b> {
    raw: RawBatchWriter<'b>,
}

impl<'b> VerdictWriter<'b> {
    /// A writer that accepts up to `max_records` verdicts (clamped to [`MAX_BATCH_RECORDS`]; use the
    /// driver's `max_batch_records` from HELLO).
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] if `buf` cannot hold the header.
    pub fn new(buf: &'b mut [u8], max_records: u32) -> Result<Self, ProtocolError> {
        Ok(VerdictWriter {
            raw: RawBatchWriter::new(buf, MessageKind::VerdictBatch, max_records.min(MAX_BATCH_RECORDS))?,
        })
    }

    /// Appends one verdict, or nothing.
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] or [`ProtocolError::TooManyRecords`]; the buffer is unchanged.
    pub fn push(&mut self, entry: VerdictEntry) -> Result<(), ProtocolError> {
        self.raw.append(VERDICT_RECORD_LEN, |w| encode_verdict(w, &entry))
    }

    /// Verdicts appended so far.
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.raw.count()
    }

    /// Writes the header and returns the message length.
    #[must_use]
    pub fn finish(self) -> usize {
        self.raw.finish()
    }
}

/// Encodes a whole verdict batch.
///
/// # Errors
/// [`ProtocolError::BufferTooSmall`] or [`ProtocolError::TooManyRecords`].
pub fn encode_verdict_batch(entries: &[VerdictEntry], out: &mut [u8]) -> Result<usize, ProtocolError> {
    let mut writer = VerdictWriter::new(out, MAX_BATCH_RECORDS)?;
    for entry in entries {
        writer.push(*entry)?;
    }
    Ok(writer.finish())
}

/// A checked `SUBMIT_VERDICTS` request; its verdicts in order.
pub type VerdictBatch<'a> = Records<'a, VerdictEntry>;

/// The verdicts of a [`VerdictBatch`].
pub type VerdictIter<'a> = RecordIter<'a, VerdictEntry>;

impl_record!(VerdictEntry, decode_verdict);

/// Decodes and validates a `SUBMIT_VERDICTS` request.
///
/// # Errors
/// Any header error; [`ProtocolError::TooManyRecords`]; [`ProtocolError::LengthMismatch`] if the
/// length is not `16 + 16 * count`; [`ProtocolError::BadEnum`] / [`ProtocolError::NonZeroReserved`]
/// for a bad record.
pub fn decode_verdict_batch(buf: &[u8]) -> Result<VerdictBatch<'_>, ProtocolError> {
    let (count, body) = read_fixed_batch(buf, MessageKind::VerdictBatch, VERDICT_RECORD_LEN)?;
    Records::check(body, count, &mut Reader::new(body), |_, _| Ok(()))
}

// ------------------------------------------------------------------ results

/// Builds a `SUBMIT_VERDICTS` reply in a separate output buffer (the model driver and tests; the
/// real driver uses [`respond_to_verdicts`]).
pub struct VerdictResultWriter<'b> {
    raw: RawBatchWriter<'b>,
}

impl<'b> VerdictResultWriter<'b> {
    /// A writer for up to [`MAX_BATCH_RECORDS`] results.
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] if `buf` cannot hold the header.
    pub fn new(buf: &'b mut [u8]) -> Result<Self, ProtocolError> {
        Ok(VerdictResultWriter { raw: RawBatchWriter::new(buf, MessageKind::VerdictResults, MAX_BATCH_RECORDS)? })
    }

    /// Appends one result, or nothing.
    ///
    /// # Errors
    /// [`ProtocolError::BufferTooSmall`] or [`ProtocolError::TooManyRecords`].
    pub fn push(&mut self, outcome: VerdictOutcome) -> Result<(), ProtocolError> {
        self.raw.append(RESULT_RECORD_LEN, |w| encode_outcome(w, &outcome))
    }

    /// Results appended so far.
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.raw.count()
    }

    /// Writes the header and returns the message length.
    #[must_use]
    pub fn finish(self) -> usize {
        self.raw.finish()
    }
}

/// A checked `SUBMIT_VERDICTS` reply; its results in the order of the verdicts.
pub type VerdictResults<'a> = Records<'a, VerdictOutcome>;

/// The results of a [`VerdictResults`].
pub type ResultIter<'a> = RecordIter<'a, VerdictOutcome>;

impl_record!(VerdictOutcome, decode_outcome);

/// Decodes and validates a `SUBMIT_VERDICTS` reply.
///
/// # Errors
/// As [`decode_verdict_batch`], with [`EnumField::VerdictResult`] for an undefined code.
pub fn decode_verdict_results(buf: &[u8]) -> Result<VerdictResults<'_>, ProtocolError> {
    let (count, body) = read_fixed_batch(buf, MessageKind::VerdictResults, RESULT_RECORD_LEN)?;
    Records::check(body, count, &mut Reader::new(body), |_, _| Ok(()))
}

/// The driver's whole `SUBMIT_VERDICTS` exchange, in the `METHOD_BUFFERED` system buffer.
///
/// `system_buffer` is the one buffer the I/O manager allocated (`max(input, output)` bytes), of
/// which the first `input_len` hold the request, and `output_len` is the caller's output buffer
/// length. The request is validated completely first; then, for each verdict in order, `apply` is
/// called (the driver passes `Core::apply_verdict`, converted with [`VerdictResult::from`]) and
/// the verdict's record is overwritten by its result. Returns the reply length (`Information`),
/// which equals `input_len`.
///
/// # Errors
/// Every error of [`decode_verdict_batch`]; [`ProtocolError::TooShort`] if `input_len` exceeds the
/// buffer; [`ProtocolError::BufferTooSmall`] if `output_len < input_len`. On error `apply` was not
/// called, so no verdict was applied whose result the service could not read.
pub fn respond_to_verdicts(
    system_buffer: &mut [u8],
    input_len: usize,
    output_len: usize,
    mut apply: impl FnMut(PendId, Verdict) -> VerdictResult,
) -> Result<usize, ProtocolError> {
    let total = system_buffer.len();
    let input = system_buffer.get(..input_len).ok_or(ProtocolError::TooShort { needed: input_len, actual: total })?;
    let count = decode_verdict_batch(input)?.count();
    if output_len < input_len {
        return Err(ProtocolError::BufferTooSmall { needed: input_len, available: output_len });
    }
    let mut offset = HEADER_LEN;
    for _ in 0..count {
        let end = offset.saturating_add(VERDICT_RECORD_LEN);
        let record = system_buffer.get(offset..end).ok_or(ProtocolError::TooShort { needed: end, actual: total })?;
        // Copy the verdict out before its bytes are overwritten by its result.
        let entry = decode_verdict(&mut Reader::new(record))?;
        let result = apply(entry.id, entry.verdict);
        let dest = system_buffer
            .get_mut(offset..end)
            .ok_or(ProtocolError::BufferTooSmall { needed: end, available: total })?;
        encode_outcome(&mut Writer::new(dest), &VerdictOutcome { id: entry.id, result })?;
        offset = end;
    }
    let total_length = u32::try_from(input_len)
        .map_err(|_| ProtocolError::LengthMismatch { declared: input_len, actual: input_len })?;
    let header = Header { kind: MessageKind::VerdictResults, total_length, count }.to_bytes();
    let dest = system_buffer
        .get_mut(..HEADER_LEN)
        .ok_or(ProtocolError::BufferTooSmall { needed: HEADER_LEN, available: total })?;
    dest.copy_from_slice(&header);
    Ok(input_len)
}
