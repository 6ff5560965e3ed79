//! `\\.\Tollgate`, the driver's control device, through kernel32: `CreateFileW`,
//! `DeviceIoControl` (synchronous) and `CloseHandle`.
//!
//! The handle is opened for synchronous I/O (no `FILE_FLAG_OVERLAPPED`), so a `GET_PENDED` that
//! finds nothing to deliver blocks in `DeviceIoControl` until the driver completes it: when a
//! connection pends, or with `STATUS_CANCELLED` when the handle is cleaned up or the driver
//! unloads. The I/O manager serializes requests on a synchronous handle, which suits the
//! service's loop (read a batch, decide, answer, read again) and is why one handle serves one
//! thread.
//!
//! Errors are `GetLastError()` values turned into the trait's NTSTATUS by
//! [`super::status::status_from_win32`] (`ERROR_FILE_NOT_FOUND`: the driver is not loaded;
//! `ERROR_ACCESS_DENIED`: not elevated; any other code stays recoverable).
//!
//! Never run yet: this module is only compiled (clippy for `x86_64-pc-windows-msvc` on Linux).

use std::os::windows::io::{AsRawHandle, FromRawHandle, IntoRawHandle, OwnedHandle};
use std::sync::{Mutex, PoisonError};

use windows_sys::Win32::Foundation::{CloseHandle, GENERIC_READ, GENERIC_WRITE, GetLastError, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_ATTRIBUTE_NORMAL, FILE_SHARE_READ, FILE_SHARE_WRITE, OPEN_EXISTING,
};
use windows_sys::Win32::System::IO::DeviceIoControl;

use super::ControlDevice;
use super::status::{STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, status_from_win32};

/// The control device's Win32 name (`\DosDevices\Tollgate`, created by the driver).
pub const DEVICE_PATH: &str = r"\\.\Tollgate";

/// One handle to `\\.\Tollgate`.
///
/// The handle lives behind a mutex that [`ControlDevice::ioctl`] holds for the whole (possibly
/// blocking) `DeviceIoControl`, so [`ControlDevice::close`] can never close a handle another
/// thread is still using (a closed handle value can be reused at once); a `close` from another
/// thread waits until the request in flight returns. Dropping the device closes the handle.
pub struct WindowsDevice {
    /// `DEVICE_PATH` as NUL-terminated UTF-16.
    path: Vec<u16>,
    handle: Mutex<Option<OwnedHandle>>,
}

impl WindowsDevice {
    /// The device at [`DEVICE_PATH`], not opened yet.
    #[must_use]
    pub fn new() -> WindowsDevice {
        WindowsDevice::at(DEVICE_PATH)
    }

    /// A device at another Win32 path (tests, a renamed device).
    #[must_use]
    pub fn at(path: &str) -> WindowsDevice {
        WindowsDevice { path: path.encode_utf16().chain(Some(0)).collect(), handle: Mutex::new(None) }
    }
}

impl Default for WindowsDevice {
    fn default() -> Self {
        WindowsDevice::new()
    }
}

impl Drop for WindowsDevice {
    fn drop(&mut self) {
        self.close();
    }
}

/// The calling thread's last Win32 error as the trait's status.
fn last_status() -> i32 {
    // SAFETY: GetLastError has no preconditions; it reads the calling thread's last-error value.
    let error = unsafe { GetLastError() };
    status_from_win32(error)
}

impl ControlDevice for WindowsDevice {
    fn open(&self) -> Result<(), i32> {
        // A second open replaces the first handle (closing it runs the driver's cleanup for it).
        self.close();
        // SAFETY: `path` is a NUL-terminated UTF-16 string owned by `self` and alive for the call;
        // no security attributes (null) and no template file (null) are valid arguments.
        let raw = unsafe {
            CreateFileW(
                self.path.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                core::ptr::null(),
                OPEN_EXISTING,
                FILE_ATTRIBUTE_NORMAL,
                core::ptr::null_mut(),
            )
        };
        if raw == INVALID_HANDLE_VALUE || raw.is_null() {
            return Err(last_status());
        }
        // SAFETY: `raw` is a valid handle that CreateFileW just returned and nothing else owns;
        // the OwnedHandle becomes its only owner.
        let owned = unsafe { OwnedHandle::from_raw_handle(raw) };
        *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = Some(owned);
        Ok(())
    }

    fn close(&self) {
        let owned = self.handle.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(owned) = owned {
            let raw = owned.into_raw_handle();
            // SAFETY: `raw` is the open handle we owned (taken out of the OwnedHandle, so it is
            // closed exactly once, here). A failure leaves nothing to undo.
            let _ = unsafe { CloseHandle(raw) };
        }
    }

    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, i32> {
        let guard = self.handle.lock().unwrap_or_else(PoisonError::into_inner);
        let handle = guard.as_ref().ok_or(STATUS_INVALID_HANDLE)?.as_raw_handle();
        let input_len = u32::try_from(input.len()).map_err(|_| STATUS_INVALID_PARAMETER)?;
        let output_len = u32::try_from(output.len()).map_err(|_| STATUS_INVALID_PARAMETER)?;
        let input_ptr = if input.is_empty() { core::ptr::null() } else { input.as_ptr().cast() };
        let output_ptr = if output.is_empty() { core::ptr::null_mut() } else { output.as_mut_ptr().cast() };
        let mut returned: u32 = 0;
        // SAFETY: `handle` is open and stays open for the call (the guard is held, so `close`
        // cannot run); the buffers are valid for their lengths (or null with length 0) and
        // outlive the call, which is synchronous (no OVERLAPPED: it returns only after the
        // request completed and the I/O manager copied the output back); `returned` is a local.
        let ok = unsafe {
            DeviceIoControl(
                handle,
                code,
                input_ptr,
                input_len,
                output_ptr,
                output_len,
                &raw mut returned,
                core::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(last_status());
        }
        drop(guard);
        Ok((returned as usize).min(output.len()))
    }
}
