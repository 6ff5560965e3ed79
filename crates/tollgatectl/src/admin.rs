//! `tollgatectl install | uninstall | start | stop`: the driver's service on Windows, through the
//! Service Control Manager and `pnputil`, with clear errors when the prompt is not elevated or
//! test signing is off.
//!
//! - `install --inf DIR\tollgate.inf`: checks elevation and test signing (a test-signed driver
//!   does not load without it), then `pnputil /add-driver <inf> /install` (the INF's
//!   `DefaultInstall` section creates the kernel service).
//! - `start` / `stop`: `StartServiceW` / `ControlService(SERVICE_CONTROL_STOP)` on the `tollgate`
//!   service, waiting up to 15 s for it to be running / stopped.
//! - `uninstall`: stops the service, finds the published `oemNN.inf` whose driver is
//!   `tollgate.sys` in `%WINDIR%\INF`, and `pnputil /delete-driver oemNN.inf /uninstall /force`.
//!
//! Elsewhere they say they are Windows only and exit 2. This module has never run: like the
//! driver, it compiles for `x86_64-pc-windows-msvc` in CI and is exercised by
//! `tests\windows\Test-Tollgate.ps1` on a VM.

use std::io::Write;
use std::path::PathBuf;

/// The driver's service name (the INF's `AddService`).
pub const SERVICE_NAME: &str = "tollgate";

/// Exit code: the operation failed (not elevated, test signing off, the SCM refused...).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: not available on this platform.
pub const EXIT_USAGE: u8 = 2;

/// An administrative operation on the driver's service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Install the driver package.
    Install {
        /// The package's INF.
        inf: PathBuf,
        /// Install even when test signing is off (a production-signed package).
        skip_test_signing_check: bool,
    },
    /// Stop and remove the driver package.
    Uninstall,
    /// Start the driver.
    Start,
    /// Stop the driver.
    Stop,
}

/// Runs `command`; returns the exit code.
pub fn run(command: &AdminCommand, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match platform::run(command, out) {
        Ok(()) => 0,
        Err(Failure { message, code }) => {
            let _ = writeln!(err, "tollgatectl: {message}");
            code
        }
    }
}

/// Why an operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong and what to do about it.
    pub message: String,
    /// The exit code.
    pub code: u8,
}

#[cfg_attr(not(windows), allow(dead_code, reason = "only the Windows operations fail this way"))]
fn failed(message: impl Into<String>) -> Failure {
    Failure { message: message.into(), code: EXIT_FAILED }
}

#[cfg(not(windows))]
mod platform {
    use std::io::Write;

    use super::{AdminCommand, EXIT_USAGE, Failure};

    pub(super) fn run(command: &AdminCommand, _out: &mut dyn Write) -> Result<(), Failure> {
        let verb = match command {
            AdminCommand::Install { .. } => "install",
            AdminCommand::Uninstall => "uninstall",
            AdminCommand::Start => "start",
            AdminCommand::Stop => "stop",
        };
        Err(Failure {
            message: format!(
                "`{verb}` manages the Tollgate driver's Windows service; there is none on this machine. Here, \
                 `tollgatectl serve` answers the driver logic running on the WFP model."
            ),
            code: EXIT_USAGE,
        })
    }
}

#[cfg(windows)]
mod platform {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use windows_sys::Wdk::System::SystemInformation::{NtQuerySystemInformation, SystemCodeIntegrityInformation};
    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_ACCESS_DENIED, ERROR_INVALID_IMAGE_HASH, ERROR_SERVICE_ALREADY_RUNNING,
        ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_NOT_ACTIVE, GetLastError, HANDLE,
    };
    use windows_sys::Win32::Security::{GetTokenInformation, TOKEN_ELEVATION, TOKEN_QUERY, TokenElevation};
    use windows_sys::Win32::System::Services::{
        CloseServiceHandle, ControlService, OpenSCManagerW, OpenServiceW, QueryServiceStatus, SC_HANDLE,
        SC_MANAGER_CONNECT, SERVICE_CONTROL_STOP, SERVICE_QUERY_STATUS, SERVICE_RUNNING, SERVICE_START, SERVICE_STATUS,
        SERVICE_STOP, SERVICE_STOPPED, StartServiceW,
    };
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
    use windows_sys::Win32::System::WindowsProgramming::{
        CODEINTEGRITY_OPTION_TESTSIGN, SYSTEM_CODEINTEGRITY_INFORMATION,
    };

    use super::{AdminCommand, Failure, SERVICE_NAME, failed};

    pub(super) fn run(command: &AdminCommand, out: &mut dyn Write) -> Result<(), Failure> {
        if !is_elevated() {
            return Err(failed(
                "this needs an elevated prompt (Run as administrator): the Service Control Manager and pnputil \
                 refuse driver changes otherwise",
            ));
        }
        match command {
            AdminCommand::Install { inf, skip_test_signing_check } => install(inf, *skip_test_signing_check, out),
            AdminCommand::Uninstall => uninstall(out),
            AdminCommand::Start => start(out),
            AdminCommand::Stop => stop(out),
        }
    }

    fn wide(text: &str) -> Vec<u16> {
        text.encode_utf16().chain(std::iter::once(0)).collect()
    }

    /// Whether this process's token is elevated (`TokenElevation`).
    fn is_elevated() -> bool {
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: returns the current-process pseudo-handle; no preconditions.
        let process = unsafe { GetCurrentProcess() };
        // SAFETY: `process` is the current-process pseudo-handle; `token` is a local out-pointer.
        let opened = unsafe { OpenProcessToken(process, TOKEN_QUERY, &raw mut token) };
        if opened == 0 {
            return false;
        }
        let mut elevation = TOKEN_ELEVATION { TokenIsElevated: 0 };
        let mut returned = 0_u32;
        let size = u32::try_from(size_of::<TOKEN_ELEVATION>()).unwrap_or(0);
        // SAFETY: `token` was opened above with TOKEN_QUERY; `elevation` is a local of the size
        // passed; `returned` is a local.
        let ok =
            unsafe { GetTokenInformation(token, TokenElevation, (&raw mut elevation).cast(), size, &raw mut returned) };
        // SAFETY: `token` is the handle opened above, closed once.
        unsafe { CloseHandle(token) };
        ok != 0 && elevation.TokenIsElevated != 0
    }

    /// Whether the running kernel accepts test-signed drivers
    /// (`SystemCodeIntegrityInformation`, `CODEINTEGRITY_OPTION_TESTSIGN`).
    fn test_signing_enabled() -> Option<bool> {
        let mut info = SYSTEM_CODEINTEGRITY_INFORMATION {
            Length: u32::try_from(size_of::<SYSTEM_CODEINTEGRITY_INFORMATION>()).unwrap_or(0),
            CodeIntegrityOptions: 0,
        };
        let mut returned = 0_u32;
        // SAFETY: `info` is a local of the length it declares; `returned` is a local.
        let status = unsafe {
            NtQuerySystemInformation(
                SystemCodeIntegrityInformation,
                (&raw mut info).cast(),
                info.Length,
                &raw mut returned,
            )
        };
        (status >= 0).then_some(info.CodeIntegrityOptions & CODEINTEGRITY_OPTION_TESTSIGN != 0)
    }

    /// An SCM or service handle, closed on drop.
    struct ScHandle(SC_HANDLE);

    impl Drop for ScHandle {
        fn drop(&mut self) {
            // SAFETY: a handle OpenSCManagerW / OpenServiceW returned, closed once.
            unsafe { CloseServiceHandle(self.0) };
        }
    }

    fn last_error() -> u32 {
        // SAFETY: reads the calling thread's last-error value.
        unsafe { GetLastError() }
    }

    fn open_service(access: u32) -> Result<(ScHandle, ScHandle), Failure> {
        // SAFETY: NULL machine and database name mean the local SCM's active database.
        let manager = unsafe { OpenSCManagerW(std::ptr::null(), std::ptr::null(), SC_MANAGER_CONNECT) };
        if manager.is_null() {
            return Err(failed(format!("cannot open the Service Control Manager (error {})", last_error())));
        }
        let manager = ScHandle(manager);
        let name = wide(SERVICE_NAME);
        // SAFETY: `manager` is open; `name` is NUL-terminated and outlives the call.
        let service = unsafe { OpenServiceW(manager.0, name.as_ptr(), access) };
        if service.is_null() {
            return Err(match last_error() {
                ERROR_SERVICE_DOES_NOT_EXIST => failed(
                    "the tollgate service is not installed: run `tollgatectl install --inf <package>\\tollgate.inf`",
                ),
                ERROR_ACCESS_DENIED => failed("access denied opening the tollgate service: use an elevated prompt"),
                error => failed(format!("cannot open the tollgate service (error {error})")),
            });
        }
        Ok((manager, ScHandle(service)))
    }

    fn state(service: &ScHandle) -> Option<u32> {
        // SAFETY: SERVICE_STATUS is plain integers; all-zero is a valid value.
        let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
        // SAFETY: `service` is open with SERVICE_QUERY_STATUS; `status` is a local.
        let ok = unsafe { QueryServiceStatus(service.0, &raw mut status) };
        (ok != 0).then_some(status.dwCurrentState)
    }

    fn wait_for(service: &ScHandle, wanted: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if state(service) == Some(wanted) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }

    fn start(out: &mut dyn Write) -> Result<(), Failure> {
        let (_manager, service) = open_service(SERVICE_START | SERVICE_QUERY_STATUS)?;
        // SAFETY: `service` is open with SERVICE_START; no arguments.
        let ok = unsafe { StartServiceW(service.0, 0, std::ptr::null()) };
        if ok == 0 {
            match last_error() {
                ERROR_SERVICE_ALREADY_RUNNING => {}
                ERROR_INVALID_IMAGE_HASH => {
                    return Err(failed(
                        "Windows refused tollgate.sys's signature. A test-signed driver needs test signing: \
                         `bcdedit /set testsigning on` and a reboot",
                    ));
                }
                error => return Err(failed(format!("the tollgate service did not start (error {error})"))),
            }
        }
        if !wait_for(&service, SERVICE_RUNNING) {
            return Err(failed("the tollgate service did not reach RUNNING within 15 s"));
        }
        let _ = writeln!(
            out,
            "tollgate: RUNNING. With no verdict service every new connection gets the default verdict (block): \
             start `tollgatectl serve`."
        );
        Ok(())
    }

    fn stop(out: &mut dyn Write) -> Result<(), Failure> {
        let (_manager, service) = open_service(SERVICE_STOP | SERVICE_QUERY_STATUS)?;
        // SAFETY: SERVICE_STATUS is plain integers; all-zero is a valid value.
        let mut status: SERVICE_STATUS = unsafe { std::mem::zeroed() };
        // SAFETY: `service` is open with SERVICE_STOP; `status` is a local.
        let ok = unsafe { ControlService(service.0, SERVICE_CONTROL_STOP, &raw mut status) };
        if ok == 0 {
            match last_error() {
                ERROR_SERVICE_NOT_ACTIVE => {}
                error => return Err(failed(format!("the tollgate service did not stop (error {error})"))),
            }
        }
        if !wait_for(&service, SERVICE_STOPPED) {
            return Err(failed(
                "the tollgate service did not stop within 15 s: a process still holds \\\\.\\Tollgate open \
                 (stop `tollgatectl serve` first)",
            ));
        }
        let _ = writeln!(out, "tollgate: STOPPED");
        Ok(())
    }

    fn install(inf: &Path, skip_test_signing_check: bool, out: &mut dyn Write) -> Result<(), Failure> {
        if !skip_test_signing_check && test_signing_enabled() == Some(false) {
            return Err(failed(
                "test signing is off, so Windows will not load a test-signed tollgate.sys: run \
                 `bcdedit /set testsigning on`, reboot, and install again (or pass --skip-test-signing-check for a \
                 production-signed package)",
            ));
        }
        if !inf.is_file() {
            return Err(failed(format!("{} is not a file: pass the package's tollgate.inf", inf.display())));
        }
        pnputil(&["/add-driver", &inf.display().to_string(), "/install"], out)?;
        let _ = writeln!(out, "tollgate: installed. Start it with `tollgatectl start`.");
        Ok(())
    }

    fn uninstall(out: &mut dyn Write) -> Result<(), Failure> {
        match stop(out) {
            Ok(()) => {}
            Err(failure) if failure.message.contains("not installed") => {}
            Err(failure) => return Err(failure),
        }
        let published = published_infs();
        if published.is_empty() {
            return Err(failed("no published driver package names tollgate.sys in %WINDIR%\\INF: nothing to remove"));
        }
        for inf in published {
            let name = inf.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            pnputil(&["/delete-driver", &name, "/uninstall", "/force"], out)?;
        }
        let _ = writeln!(out, "tollgate: uninstalled");
        Ok(())
    }

    /// `%WINDIR%\INF\oem*.inf` files that install tollgate.sys (pnputil's copies of our INF; the
    /// check reads the file, so it does not depend on pnputil's localized output).
    fn published_infs() -> Vec<PathBuf> {
        let windows = std::env::var_os("WINDIR").map_or_else(|| PathBuf::from(r"C:\Windows"), PathBuf::from);
        let Ok(entries) = std::fs::read_dir(windows.join("INF")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
                name.starts_with("oem") && name.ends_with(".inf")
            })
            .filter(|path| {
                std::fs::read(path).is_ok_and(|bytes| inf_text(&bytes).to_ascii_lowercase().contains("tollgate.sys"))
            })
            .collect()
    }

    /// An INF's text: UTF-16LE with a byte order mark, or 8-bit.
    fn inf_text(bytes: &[u8]) -> String {
        match bytes {
            [0xFF, 0xFE, rest @ ..] => {
                let units: Vec<u16> = rest
                    .chunks_exact(2)
                    .filter_map(|pair| match pair {
                        [low, high] => Some(u16::from_le_bytes([*low, *high])),
                        _ => None,
                    })
                    .collect();
                String::from_utf16_lossy(&units)
            }
            _ => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    fn pnputil(arguments: &[&str], out: &mut dyn Write) -> Result<(), Failure> {
        let _ = writeln!(out, "> pnputil {}", arguments.join(" "));
        let output = Command::new("pnputil.exe")
            .args(arguments)
            .output()
            .map_err(|error| failed(format!("cannot run pnputil.exe: {error}")))?;
        let _ = out.write_all(&output.stdout);
        if output.status.success() {
            Ok(())
        } else {
            Err(failed(format!(
                "pnputil {} failed ({}): {}",
                arguments.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }
}
