//! Why a buffer was rejected, and the NTSTATUS the driver completes the IOCTL with.
//!
//! Every parser returns one of these instead of panicking; the driver's IOCTL dispatch completes
//! the request with [`ProtocolError::ntstatus`], so a hostile or buggy service learns *what* was
//! wrong (S9: "unknown/duplicate/late verdict ids are rejected with a clear status" — the same
//! applies to every malformed buffer).
//!
//! NTSTATUS values are from `ntstatus.h`, as listed in [MS-ERREF] §2.3.1
//! (<https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-erref/596a1078-e883-4972-9bbc-49e60bebca55>)
//! and <https://learn.microsoft.com/en-us/windows-hardware/drivers/kernel/using-ntstatus-values>.
//!
//! | variant | NTSTATUS | why that one |
//! |---|---|---|
//! | [`TooShort`](ProtocolError::TooShort) | `STATUS_INVALID_BUFFER_SIZE` 0xC0000206 | the input is shorter than its header or a record |
//! | [`BufferTooSmall`](ProtocolError::BufferTooSmall) | `STATUS_BUFFER_TOO_SMALL` 0xC0000023 | the *output* buffer cannot hold the reply |
//! | [`UnexpectedInput`](ProtocolError::UnexpectedInput) | `STATUS_INVALID_BUFFER_SIZE` 0xC0000206 | an IOCTL that takes no input got some |
//! | [`BadMagic`](ProtocolError::BadMagic) | `STATUS_INVALID_PARAMETER` 0xC000000D | not a Tollgate message at all |
//! | [`UnsupportedVersion`](ProtocolError::UnsupportedVersion) | `STATUS_REVISION_MISMATCH` 0xC0000059 | a layout version this side does not speak |
//! | [`BadVersionRange`](ProtocolError::BadVersionRange) | `STATUS_UNKNOWN_REVISION` 0xC0000058 | a HELLO whose version range is empty or names version 0 |
//! | [`WrongKind`](ProtocolError::WrongKind) | `STATUS_INVALID_PARAMETER_MIX` 0xC0000030 | a valid kind, but not the one this IOCTL carries |
//! | [`UnsupportedKind`](ProtocolError::UnsupportedKind) | `STATUS_NOT_SUPPORTED` 0xC00000BB | a reserved or unknown message kind |
//! | [`UnknownIoctl`](ProtocolError::UnknownIoctl) | `STATUS_INVALID_DEVICE_REQUEST` 0xC0000010 | the conventional answer to an unknown control code |
//! | [`ReservedIoctl`](ProtocolError::ReservedIoctl) | `STATUS_NOT_IMPLEMENTED` 0xC0000002 | a control code kept for a later version |
//! | [`LengthMismatch`](ProtocolError::LengthMismatch) | `STATUS_INFO_LENGTH_MISMATCH` 0xC0000004 | the declared length is not the buffer's, or not what the count implies |
//! | [`CountMismatch`](ProtocolError::CountMismatch) | `STATUS_INVALID_PARAMETER` 0xC000000D | a single-body message whose count is not 1 |
//! | [`TooManyRecords`](ProtocolError::TooManyRecords) | `STATUS_IMPLEMENTATION_LIMIT` 0xC000042B | more records than a batch may hold |
//! | [`BadEnum`](ProtocolError::BadEnum) | `STATUS_INVALID_PARAMETER` 0xC000000D | an enumeration byte out of range |
//! | [`BadAddressFamily`](ProtocolError::BadAddressFamily) | `STATUS_INVALID_ADDRESS_COMPONENT` 0xC0000207 | an address family other than 4 or 6 |
//! | [`PathTooLong`](ProtocolError::PathTooLong) | `STATUS_NAME_TOO_LONG` 0xC0000106 | an app path over [`MAX_APP_PATH_UNITS`](crate::MAX_APP_PATH_UNITS) |
//! | [`NonZeroReserved`](ProtocolError::NonZeroReserved) | `STATUS_INVALID_PARAMETER` 0xC000000D | reserved or padding bytes are not zero |
//! | [`InvalidConfig`](ProtocolError::InvalidConfig) | `STATUS_INVALID_PARAMETER` 0xC000000D | a configuration outside its documented bounds |
//! | [`FieldTooLong`](ProtocolError::FieldTooLong) | `STATUS_NAME_TOO_LONG` 0xC0000106 | a stream event's host name, name list, ALPN id or HTTP method longer than its field |
//! | [`BadHostName`](ProtocolError::BadHostName) | `STATUS_OBJECT_NAME_INVALID` 0xC0000033 | a stream event's host name not in the normalized form the driver sends |
//! | [`BadPattern`](ProtocolError::BadPattern) | `STATUS_OBJECT_NAME_INVALID` 0xC0000033 | a blocklist pattern that is not a canonical DNS name |
//! | [`DuplicatePattern`](ProtocolError::DuplicatePattern) | `STATUS_OBJECT_NAME_COLLISION` 0xC0000035 | a blocklist pattern equal to the one before it |
//! | [`UnsortedPatterns`](ProtocolError::UnsortedPatterns) | `STATUS_INVALID_PARAMETER` 0xC000000D | a blocklist pattern that sorts before the one before it |
//! | [`MessageTooLong`](ProtocolError::MessageTooLong) | `STATUS_IMPLEMENTATION_LIMIT` 0xC000042B | a message over its kind's size limit (the blocklist's [`MAX_BLOCKLIST_MESSAGE_LEN`](crate::MAX_BLOCKLIST_MESSAGE_LEN)) |

use core::fmt;

use tollgate_inspect::name::NameError;

/// `STATUS_NOT_IMPLEMENTED`.
pub const STATUS_NOT_IMPLEMENTED: i32 = 0xC000_0002_u32 as i32;
/// `STATUS_INFO_LENGTH_MISMATCH`.
pub const STATUS_INFO_LENGTH_MISMATCH: i32 = 0xC000_0004_u32 as i32;
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: i32 = 0xC000_000D_u32 as i32;
/// `STATUS_INVALID_DEVICE_REQUEST`.
pub const STATUS_INVALID_DEVICE_REQUEST: i32 = 0xC000_0010_u32 as i32;
/// `STATUS_BUFFER_TOO_SMALL`.
pub const STATUS_BUFFER_TOO_SMALL: i32 = 0xC000_0023_u32 as i32;
/// `STATUS_OBJECT_NAME_INVALID`.
pub const STATUS_OBJECT_NAME_INVALID: i32 = 0xC000_0033_u32 as i32;
/// `STATUS_OBJECT_NAME_COLLISION`.
pub const STATUS_OBJECT_NAME_COLLISION: i32 = 0xC000_0035_u32 as i32;
/// `STATUS_INVALID_PARAMETER_MIX`.
pub const STATUS_INVALID_PARAMETER_MIX: i32 = 0xC000_0030_u32 as i32;
/// `STATUS_UNKNOWN_REVISION`.
pub const STATUS_UNKNOWN_REVISION: i32 = 0xC000_0058_u32 as i32;
/// `STATUS_REVISION_MISMATCH`.
pub const STATUS_REVISION_MISMATCH: i32 = 0xC000_0059_u32 as i32;
/// `STATUS_NOT_SUPPORTED`.
pub const STATUS_NOT_SUPPORTED: i32 = 0xC000_00BB_u32 as i32;
/// `STATUS_NAME_TOO_LONG`.
pub const STATUS_NAME_TOO_LONG: i32 = 0xC000_0106_u32 as i32;
/// `STATUS_INVALID_BUFFER_SIZE`.
pub const STATUS_INVALID_BUFFER_SIZE: i32 = 0xC000_0206_u32 as i32;
/// `STATUS_INVALID_ADDRESS_COMPONENT`.
pub const STATUS_INVALID_ADDRESS_COMPONENT: i32 = 0xC000_0207_u32 as i32;
/// `STATUS_IMPLEMENTATION_LIMIT`.
pub const STATUS_IMPLEMENTATION_LIMIT: i32 = 0xC000_042B_u32 as i32;

/// Which one-byte enumeration held an undefined value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnumField {
    /// A pended record's layer ([`tollgate_core::PendLayer`]).
    Layer,
    /// A pended record's direction ([`tollgate_core::Direction`]).
    Direction,
    /// A verdict byte ([`tollgate_core::Verdict`]), in a verdict batch or a configuration.
    Verdict,
    /// A per-verdict result code ([`crate::VerdictResult`]).
    VerdictResult,
    /// A pended record's flags byte (undefined bits set).
    RecordFlags,
    /// A stream event's kind ([`tollgate_core::stream::FlowEventKind`]).
    FlowEventKind,
    /// A stream event's inspection end ([`tollgate_core::stream::InspectionEnd`]).
    InspectionEnd,
    /// A stream event's verdict ([`tollgate_core::stream::StreamVerdict`]).
    StreamVerdict,
    /// A stream event's application protocol ([`tollgate_inspect::identity::AppProtocol`]).
    AppProtocol,
    /// A stream event's ECH code ([`tollgate_inspect::identity::Ech`]).
    Ech,
    /// A stream event's malformed code ([`tollgate_inspect::identity::Malformed`], 0 = none).
    Malformed,
    /// A stream event's flags byte (undefined bits set).
    EventFlags,
    /// A stream event name's source ([`tollgate_inspect::identity::NameSource`]).
    NameSource,
    /// A stream event name's flags byte (undefined bits set).
    NameFlags,
    /// A blocklist pattern's kind ([`tollgate_inspect::name::PatternKind`]).
    PatternKind,
}

/// Which length or count field of a stream event is over its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LengthField {
    /// A host name's length (bound: [`HOST_CAPACITY`](tollgate_inspect::name::HOST_CAPACITY), 255).
    HostName,
    /// The number of names (bound: [`MAX_EVENT_NAMES`](crate::MAX_EVENT_NAMES), 2).
    NameCount,
    /// The ALPN id's length (bound: [`Alpn::CAPACITY`](tollgate_inspect::identity::Alpn::CAPACITY), 32).
    Alpn,
    /// The HTTP method's length (bound: 15, the size of [`HttpFacts::method`](tollgate_inspect::identity::HttpFacts::method)).
    HttpMethod,
}

/// What is wrong with a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfigIssue {
    /// `pend_timeout` below [`MIN_PEND_TIMEOUT`](crate::MIN_PEND_TIMEOUT).
    TimeoutTooShort,
    /// `pend_timeout` above [`MAX_PEND_TIMEOUT`](crate::MAX_PEND_TIMEOUT).
    TimeoutTooLong,
    /// `max_pended` is zero.
    ZeroCap,
}

/// Why a buffer was rejected. See the module docs for the NTSTATUS of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolError {
    /// The input ends before its header, or before a record the header announced.
    TooShort {
        /// Bytes the parse needed.
        needed: usize,
        /// Bytes there were.
        actual: usize,
    },
    /// The output buffer cannot hold the reply (or the next record, for a batch writer).
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// An IOCTL that takes no input buffer was given one.
    UnexpectedInput {
        /// Its length.
        len: usize,
    },
    /// The first four bytes are not [`MAGIC`](crate::MAGIC).
    BadMagic,
    /// The header's version is not the one this build speaks for that message kind.
    UnsupportedVersion {
        /// The version in the header.
        found: u16,
        /// The version this build speaks.
        supported: u16,
    },
    /// A HELLO's version range is empty (`min > max`) or starts at 0.
    BadVersionRange {
        /// Lowest version offered.
        min: u16,
        /// Highest version offered.
        max: u16,
    },
    /// A defined message kind, but not the one expected here.
    WrongKind {
        /// The kind this parser accepts.
        expected: u16,
        /// The kind in the header.
        found: u16,
    },
    /// A reserved (not yet implemented) or undefined message kind.
    UnsupportedKind {
        /// The kind in the header.
        found: u16,
    },
    /// A control code that is not Tollgate's.
    UnknownIoctl {
        /// The control code.
        code: u32,
    },
    /// A control code reserved for a later version of the protocol.
    ReservedIoctl {
        /// The control code.
        code: u32,
    },
    /// The header's total length is not the buffer's length, or not what its record count implies,
    /// or bytes are left over after the last record.
    LengthMismatch {
        /// Length declared (or implied).
        declared: usize,
        /// Length found.
        actual: usize,
    },
    /// A single-body message (HELLO, STATS, CONFIG) whose record count is not 1.
    CountMismatch {
        /// The count in the header.
        found: u32,
    },
    /// More records than a batch may hold.
    TooManyRecords {
        /// The count in the header (or the record that would exceed the limit).
        count: u32,
        /// The limit.
        max: u32,
    },
    /// An enumeration byte with an undefined value.
    BadEnum {
        /// Which field.
        field: EnumField,
        /// The value.
        value: u8,
    },
    /// An address family byte other than 4 or 6.
    BadAddressFamily {
        /// The value.
        value: u8,
    },
    /// An app path longer than [`MAX_APP_PATH_UNITS`](crate::MAX_APP_PATH_UNITS).
    PathTooLong {
        /// Its length in UTF-16 units.
        units: u16,
    },
    /// Reserved or padding bytes (including the unused 12 bytes of an IPv4 address) are not zero.
    NonZeroReserved,
    /// A configuration outside its bounds.
    InvalidConfig(ConfigIssue),
    /// A stream event's host name, name count, ALPN id or HTTP method longer than its field holds.
    FieldTooLong {
        /// Which field.
        field: LengthField,
        /// The length (or count) found.
        len: u16,
        /// The most the field holds.
        max: u16,
    },
    /// A stream event's host name that is not in the form the driver sends (the form
    /// [`HostName::from_wire`](tollgate_inspect::name::HostName::from_wire) produces): empty, with an
    /// ASCII uppercase letter or a trailing dot, or marked truncated without being 255 bytes long.
    BadHostName,
    /// A blocklist pattern whose name is not a canonical DNS name.
    BadPattern {
        /// The pattern's index in the list (from 0).
        index: u32,
        /// What is wrong with it.
        issue: NameError,
    },
    /// A blocklist pattern equal to the one before it.
    DuplicatePattern {
        /// The second one's index.
        index: u32,
    },
    /// A blocklist pattern that sorts before the one before it (patterns are sorted by kind, then
    /// name bytes).
    UnsortedPatterns {
        /// The index of the pattern out of order.
        index: u32,
    },
    /// A message longer than its kind allows.
    MessageTooLong {
        /// Its length (or the length it would reach).
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl ProtocolError {
    /// The NTSTATUS the driver completes the IOCTL with (see the table in the module docs).
    #[must_use]
    pub const fn ntstatus(self) -> i32 {
        match self {
            ProtocolError::TooShort { .. } | ProtocolError::UnexpectedInput { .. } => STATUS_INVALID_BUFFER_SIZE,
            ProtocolError::BufferTooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
            ProtocolError::UnsupportedVersion { .. } => STATUS_REVISION_MISMATCH,
            ProtocolError::BadVersionRange { .. } => STATUS_UNKNOWN_REVISION,
            ProtocolError::WrongKind { .. } => STATUS_INVALID_PARAMETER_MIX,
            ProtocolError::UnsupportedKind { .. } => STATUS_NOT_SUPPORTED,
            ProtocolError::UnknownIoctl { .. } => STATUS_INVALID_DEVICE_REQUEST,
            ProtocolError::ReservedIoctl { .. } => STATUS_NOT_IMPLEMENTED,
            ProtocolError::LengthMismatch { .. } => STATUS_INFO_LENGTH_MISMATCH,
            ProtocolError::TooManyRecords { .. } => STATUS_IMPLEMENTATION_LIMIT,
            ProtocolError::BadAddressFamily { .. } => STATUS_INVALID_ADDRESS_COMPONENT,
            ProtocolError::PathTooLong { .. } | ProtocolError::FieldTooLong { .. } => STATUS_NAME_TOO_LONG,
            ProtocolError::BadHostName | ProtocolError::BadPattern { .. } => STATUS_OBJECT_NAME_INVALID,
            ProtocolError::DuplicatePattern { .. } => STATUS_OBJECT_NAME_COLLISION,
            ProtocolError::MessageTooLong { .. } => STATUS_IMPLEMENTATION_LIMIT,
            ProtocolError::BadMagic
            | ProtocolError::CountMismatch { .. }
            | ProtocolError::BadEnum { .. }
            | ProtocolError::NonZeroReserved
            | ProtocolError::InvalidConfig(_)
            | ProtocolError::UnsortedPatterns { .. } => STATUS_INVALID_PARAMETER,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProtocolError::TooShort { needed, actual } => {
                write!(f, "message too short: needed {needed} bytes, got {actual}")
            }
            ProtocolError::BufferTooSmall { needed, available } => {
                write!(f, "output buffer too small: needed {needed} bytes, have {available}")
            }
            ProtocolError::UnexpectedInput { len } => write!(f, "this request takes no input, got {len} bytes"),
            ProtocolError::BadMagic => f.write_str("bad magic: not a Tollgate message"),
            ProtocolError::UnsupportedVersion { found, supported } => {
                write!(f, "unsupported protocol version {found} (this side speaks {supported})")
            }
            ProtocolError::BadVersionRange { min, max } => write!(f, "bad version range {min}..={max}"),
            ProtocolError::WrongKind { expected, found } => {
                write!(f, "wrong message kind {found:#06x} (expected {expected:#06x})")
            }
            ProtocolError::UnsupportedKind { found } => write!(f, "unsupported message kind {found:#06x}"),
            ProtocolError::UnknownIoctl { code } => write!(f, "unknown control code {code:#010x}"),
            ProtocolError::ReservedIoctl { code } => write!(f, "reserved control code {code:#010x}"),
            ProtocolError::LengthMismatch { declared, actual } => {
                write!(f, "length mismatch: declared {declared} bytes, found {actual}")
            }
            ProtocolError::CountMismatch { found } => write!(f, "record count {found} where 1 is required"),
            ProtocolError::TooManyRecords { count, max } => write!(f, "{count} records exceed the limit of {max}"),
            ProtocolError::BadEnum { field, value } => write!(f, "undefined {field:?} value {value}"),
            ProtocolError::BadAddressFamily { value } => write!(f, "bad address family {value}"),
            ProtocolError::PathTooLong { units } => write!(f, "app path of {units} UTF-16 units is too long"),
            ProtocolError::NonZeroReserved => f.write_str("reserved or padding bytes are not zero"),
            ProtocolError::InvalidConfig(issue) => write!(f, "invalid configuration: {issue:?}"),
            ProtocolError::FieldTooLong { field, len, max } => {
                write!(f, "{field:?} length {len} exceeds the field's {max}")
            }
            ProtocolError::BadHostName => f.write_str("host name not in the normalized form"),
            ProtocolError::BadPattern { index, issue } => {
                write!(f, "blocklist pattern {index}: {} ({issue:?})", issue.describe())
            }
            ProtocolError::DuplicatePattern { index } => {
                write!(f, "blocklist pattern {index} repeats the one before it")
            }
            ProtocolError::UnsortedPatterns { index } => {
                write!(f, "blocklist pattern {index} sorts before the one before it")
            }
            ProtocolError::MessageTooLong { len, max } => {
                write!(f, "message of {len} bytes exceeds the limit of {max}")
            }
        }
    }
}

impl core::error::Error for ProtocolError {}
