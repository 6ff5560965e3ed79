//! The status values a [`ControlDevice`](super::ControlDevice) reports, and how a Win32 error
//! from `CreateFileW` / `DeviceIoControl` becomes one.
//!
//! The trait speaks NTSTATUS (the model's device returns the driver's status as is). On Windows,
//! the driver's NTSTATUS reaches user mode only as a Win32 error: the I/O manager completes the
//! request and kernel32 turns the status into `GetLastError()` with `RtlNtStatusToDosError`,
//! which is many-to-one (`STATUS_DELETE_PENDING` and `STATUS_ACCESS_DENIED` both become
//! `ERROR_ACCESS_DENIED`, for example). The exact status cannot be recovered, so
//! [`status_from_win32`] maps each Win32 error to one value:
//!
//! | Win32 error (`GetLastError()`) | NTSTATUS | what it means here |
//! |---|---|---|
//! | `ERROR_FILE_NOT_FOUND` (2) | `STATUS_OBJECT_NAME_NOT_FOUND` | `\\.\Tollgate` does not exist: **the driver is not loaded** |
//! | `ERROR_PATH_NOT_FOUND` (3) | `STATUS_OBJECT_PATH_NOT_FOUND` | the same |
//! | `ERROR_ACCESS_DENIED` (5) | `STATUS_ACCESS_DENIED` | not elevated (the device admits SYSTEM and Administrators only), or the driver is unloading (`STATUS_DELETE_PENDING` also becomes 5) |
//! | `ERROR_INVALID_HANDLE` (6) | `STATUS_INVALID_HANDLE` | the handle is not open |
//! | `ERROR_INVALID_FUNCTION` (1) | `STATUS_INVALID_DEVICE_REQUEST` | the driver does not know the control code |
//! | `ERROR_GEN_FAILURE` (31) | `STATUS_UNSUCCESSFUL` | |
//! | `ERROR_SHARING_VIOLATION` (32) | `STATUS_SHARING_VIOLATION` | another handle is the verdict service |
//! | `ERROR_INVALID_PARAMETER` (87) | `STATUS_INVALID_PARAMETER` | |
//! | `ERROR_INSUFFICIENT_BUFFER` (122) | `STATUS_BUFFER_TOO_SMALL` | |
//! | `ERROR_OPERATION_ABORTED` (995) | `STATUS_CANCELLED` | the driver cancelled the parked read (cleanup or unload) |
//! | `ERROR_REVISION_MISMATCH` (1306) | `STATUS_REVISION_MISMATCH` | a message version the other side does not speak |
//! | `ERROR_NO_SYSTEM_RESOURCES` (1450) | `STATUS_INSUFFICIENT_RESOURCES` | |
//! | `ERROR_INVALID_USER_BUFFER` (1784) | `STATUS_INVALID_BUFFER_SIZE` | a malformed buffer |
//! | any other `e` | `NTSTATUS_FROM_WIN32(e)` = `0x8007_0000 \| (e & 0xFFFF)` | |
//!
//! The mapping is injective (every Win32 code below 0x10000 gets its own value, and the
//! `0x8007_xxxx` range of `NTSTATUS_FROM_WIN32` holds none of the table's statuses), so
//! [`win32_from_status`] gives the `GetLastError()` value back and [`describe`] can show both.

/// `STATUS_UNSUCCESSFUL` (ntstatus.h).
pub const STATUS_UNSUCCESSFUL: i32 = 0xC000_0001_u32 as i32;
/// `STATUS_INVALID_HANDLE` (ntstatus.h).
pub const STATUS_INVALID_HANDLE: i32 = 0xC000_0008_u32 as i32;
/// `STATUS_INVALID_PARAMETER` (ntstatus.h).
pub const STATUS_INVALID_PARAMETER: i32 = tollgate_protocol::error::STATUS_INVALID_PARAMETER;
/// `STATUS_INVALID_DEVICE_REQUEST` (ntstatus.h).
pub const STATUS_INVALID_DEVICE_REQUEST: i32 = tollgate_protocol::error::STATUS_INVALID_DEVICE_REQUEST;
/// `STATUS_ACCESS_DENIED` (ntstatus.h).
pub const STATUS_ACCESS_DENIED: i32 = 0xC000_0022_u32 as i32;
/// `STATUS_BUFFER_TOO_SMALL` (ntstatus.h).
pub const STATUS_BUFFER_TOO_SMALL: i32 = tollgate_protocol::error::STATUS_BUFFER_TOO_SMALL;
/// `STATUS_OBJECT_NAME_NOT_FOUND` (ntstatus.h).
pub const STATUS_OBJECT_NAME_NOT_FOUND: i32 = 0xC000_0034_u32 as i32;
/// `STATUS_OBJECT_PATH_NOT_FOUND` (ntstatus.h).
pub const STATUS_OBJECT_PATH_NOT_FOUND: i32 = 0xC000_003A_u32 as i32;
/// `STATUS_SHARING_VIOLATION` (ntstatus.h): another handle is the verdict service.
pub const STATUS_SHARING_VIOLATION: i32 = tollgate_control::STATUS_SHARING_VIOLATION;
/// `STATUS_DELETE_PENDING` (ntstatus.h): the driver is unloading.
pub const STATUS_DELETE_PENDING: i32 = tollgate_control::STATUS_DELETE_PENDING;
/// `STATUS_REVISION_MISMATCH` (ntstatus.h).
pub const STATUS_REVISION_MISMATCH: i32 = tollgate_protocol::error::STATUS_REVISION_MISMATCH;
/// `STATUS_INSUFFICIENT_RESOURCES` (ntstatus.h).
pub const STATUS_INSUFFICIENT_RESOURCES: i32 = 0xC000_009A_u32 as i32;
/// `STATUS_CANCELLED` (ntstatus.h).
pub const STATUS_CANCELLED: i32 = 0xC000_0120_u32 as i32;
/// `STATUS_INVALID_BUFFER_SIZE` (ntstatus.h).
pub const STATUS_INVALID_BUFFER_SIZE: i32 = tollgate_protocol::error::STATUS_INVALID_BUFFER_SIZE;

/// `FACILITY_NTWIN32 << 16 | ERROR_SEVERITY_WARNING`: the high half of `NTSTATUS_FROM_WIN32`.
const NTWIN32_BASE: u32 = 0x8007_0000;

/// The Win32 errors with a status of their own (see the module docs), in both directions.
const TABLE: [(u32, i32); 13] = [
    (1, STATUS_INVALID_DEVICE_REQUEST),    // ERROR_INVALID_FUNCTION
    (2, STATUS_OBJECT_NAME_NOT_FOUND),     // ERROR_FILE_NOT_FOUND
    (3, STATUS_OBJECT_PATH_NOT_FOUND),     // ERROR_PATH_NOT_FOUND
    (5, STATUS_ACCESS_DENIED),             // ERROR_ACCESS_DENIED
    (6, STATUS_INVALID_HANDLE),            // ERROR_INVALID_HANDLE
    (31, STATUS_UNSUCCESSFUL),             // ERROR_GEN_FAILURE
    (32, STATUS_SHARING_VIOLATION),        // ERROR_SHARING_VIOLATION
    (87, STATUS_INVALID_PARAMETER),        // ERROR_INVALID_PARAMETER
    (122, STATUS_BUFFER_TOO_SMALL),        // ERROR_INSUFFICIENT_BUFFER
    (995, STATUS_CANCELLED),               // ERROR_OPERATION_ABORTED
    (1306, STATUS_REVISION_MISMATCH),      // ERROR_REVISION_MISMATCH
    (1450, STATUS_INSUFFICIENT_RESOURCES), // ERROR_NO_SYSTEM_RESOURCES
    (1784, STATUS_INVALID_BUFFER_SIZE),    // ERROR_INVALID_USER_BUFFER
];

/// The status a failed `CreateFileW` / `DeviceIoControl` reports, from its `GetLastError()`.
/// See the module docs for the table. Never returns a success status (0 maps to `0x8007_0000`).
#[must_use]
pub fn status_from_win32(error: u32) -> i32 {
    match TABLE.iter().find(|(win32, _)| *win32 == error) {
        Some(&(_, status)) => status,
        None => (NTWIN32_BASE | (error & 0xFFFF)) as i32,
    }
}

/// The `GetLastError()` value a status came from, if it came from [`status_from_win32`].
#[must_use]
pub fn win32_from_status(status: i32) -> Option<u32> {
    if let Some(&(win32, _)) = TABLE.iter().find(|(_, s)| *s == status) {
        return Some(win32);
    }
    let raw = status as u32;
    (raw & 0xFFFF_0000 == NTWIN32_BASE).then_some(raw & 0xFFFF)
}

/// Whether the status says the control device does not exist: the driver is not loaded (or is
/// being unloaded).
#[must_use]
pub fn is_not_loaded(status: i32) -> bool {
    status == STATUS_OBJECT_NAME_NOT_FOUND || status == STATUS_OBJECT_PATH_NOT_FOUND
}

/// A one-line explanation of a status from the control device, for the service's messages.
#[must_use]
pub fn describe(status: i32) -> String {
    let meaning = match status {
        STATUS_OBJECT_NAME_NOT_FOUND | STATUS_OBJECT_PATH_NOT_FOUND => {
            "driver not loaded: \\\\.\\Tollgate does not exist (start it with `sc.exe start tollgate`)"
        }
        STATUS_ACCESS_DENIED => {
            "access denied: the control device admits only SYSTEM and Administrators (run elevated); \
             an open handle also gets this while the driver is unloading"
        }
        STATUS_SHARING_VIOLATION => "another handle is already the verdict service (only one at a time)",
        STATUS_DELETE_PENDING => "the driver is unloading",
        STATUS_CANCELLED => "the driver cancelled the request (its handle was cleaned up, or it is unloading)",
        STATUS_INVALID_HANDLE => "the control device is not open",
        STATUS_INVALID_DEVICE_REQUEST => "the driver does not know this control code (a different driver version?)",
        STATUS_REVISION_MISMATCH => "the driver does not speak this message version",
        STATUS_INVALID_BUFFER_SIZE | STATUS_BUFFER_TOO_SMALL | STATUS_INVALID_PARAMETER => {
            "the driver rejected the request's buffer"
        }
        STATUS_INSUFFICIENT_RESOURCES => "the driver is out of resources",
        _ => "",
    };
    let code = match win32_from_status(status) {
        Some(win32) => format!("NTSTATUS 0x{:08X}, Win32 error {win32}", status as u32),
        None => format!("NTSTATUS 0x{:08X}", status as u32),
    };
    if meaning.is_empty() { code } else { format!("{meaning} ({code})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_entries_round_trip_and_are_errors() {
        for &(win32, status) in &TABLE {
            assert_eq!(status_from_win32(win32), status);
            assert_eq!(win32_from_status(status), Some(win32));
            assert!(status < 0, "{status:#X} is not an error status");
        }
    }

    #[test]
    fn every_win32_code_maps_to_its_own_value() {
        let mut seen = std::collections::HashSet::new();
        for win32 in 0..=0xFFFF_u32 {
            let status = status_from_win32(win32);
            assert!(seen.insert(status), "{win32} collides");
            assert_ne!(status, 0);
            assert_eq!(win32_from_status(status), Some(win32));
        }
    }

    #[test]
    fn other_codes_use_ntstatus_from_win32() {
        // ERROR_DEVICE_NOT_CONNECTED (1167)
        assert_eq!(status_from_win32(1167) as u32, 0x8007_048F);
        assert_eq!(win32_from_status(0xC000_0043_u32 as i32), Some(32));
        assert_eq!(win32_from_status(STATUS_DELETE_PENDING), None);
    }

    #[test]
    fn descriptions_name_the_usual_causes() {
        assert!(describe(status_from_win32(2)).starts_with("driver not loaded"));
        assert!(describe(status_from_win32(2)).contains("Win32 error 2"));
        assert!(describe(status_from_win32(5)).starts_with("access denied"));
        assert!(is_not_loaded(status_from_win32(3)));
        assert_eq!(describe(status_from_win32(1167)), "NTSTATUS 0x8007048F, Win32 error 1167");
        assert_eq!(describe(STATUS_DELETE_PENDING), "the driver is unloading (NTSTATUS 0xC0000056)");
    }
}
