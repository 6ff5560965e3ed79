//! The service's view of the control device: open, close, and `DeviceIoControl`.
//!
//! On Windows this is `\\.\Tollgate` (`windows::WindowsDevice`, Windows only: CreateFileW / DeviceIoControl /
//! CloseHandle); on any machine, [`model`] puts the same calls on the driver logic running against
//! the WFP model. [`status`] holds the statuses they report and how Win32 errors map to them.

pub mod live_model;
pub mod model;
pub mod status;
#[cfg(windows)]
pub mod windows;

/// `STATUS_INVALID_HANDLE`: an IOCTL on a device that is not open.
pub use status::STATUS_INVALID_HANDLE;

/// One handle to the control device.
pub trait ControlDevice {
    /// Opens the handle (`CreateFileW`).
    ///
    /// # Errors
    /// The NTSTATUS of the failed open.
    fn open(&self) -> Result<(), i32>;

    /// Closes the handle (`CloseHandle`; the driver's cleanup callback runs).
    fn close(&self);

    /// `DeviceIoControl` with a `METHOD_BUFFERED` code: returns the bytes written to `output`
    /// (0 when a `GET_PENDED` found nothing to deliver).
    ///
    /// # Errors
    /// The NTSTATUS the driver completed the request with.
    fn ioctl(&self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, i32>;
}
