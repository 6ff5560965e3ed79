//! `tollgatectl stats`: the driver's counters and the service's state.
//!
//! From a running `serve` through its control channel (the default, and the only way on the
//! model), or straight from the driver with `--driver` (Windows: `GET_STATS` on a handle of its
//! own, which any administrator may read while the service holds the service role).

use std::io::Write;

use crate::device::ControlDevice;
use crate::hub::{self, SocketName, StatsView};
use crate::service::read_stats;

/// What `stats` was asked to do.
#[derive(Clone, Debug)]
pub struct StatsOptions {
    /// The service's control channel.
    pub control: SocketName,
    /// Read the driver directly instead of asking the service.
    pub driver: bool,
    /// One JSON object instead of the table.
    pub json: bool,
}

/// Exit code: neither the service nor the driver could be asked.
pub const EXIT_UNAVAILABLE: u8 = 1;

/// The `stats` command: returns the exit code.
pub fn run(options: &StatsOptions, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let view = if options.driver {
        match driver_view() {
            Ok(view) => view,
            Err(message) => {
                let _ = writeln!(err, "tollgatectl stats: {message}");
                return EXIT_UNAVAILABLE;
            }
        }
    } else {
        match hub::request_stats(&options.control) {
            Ok(view) => view,
            Err(error) => {
                let _ = writeln!(
                    err,
                    "tollgatectl stats: no service on {} ({error}). Start `tollgatectl serve`, or read the driver \
                     directly with --driver (Windows).",
                    options.control.display()
                );
                return EXIT_UNAVAILABLE;
            }
        }
    };
    let text = if options.json {
        serde_json::to_string_pretty(&view).unwrap_or_default() + "\n"
    } else {
        hub::render_stats(&view)
    };
    let _ = out.write_all(text.as_bytes());
    0
}

/// The driver's counters read through `device` (a handle of the caller's own).
///
/// # Errors
/// The device could not be opened or read, in words.
pub fn view_from_device(device: &dyn ControlDevice) -> Result<StatsView, String> {
    device.open().map_err(|status| format!("cannot open the driver: {}", crate::device::status::describe(status)))?;
    let result = read_stats(device);
    device.close();
    let (stats, stream, refused) = result.map_err(|error| format!("cannot read the driver's counters: {error}"))?;
    Ok(StatsView {
        service: hub::ServiceState {
            rules: "(read from the driver, not the service)".to_owned(),
            ..Default::default()
        },
        counters: hub::counters(&stats, &stream, &refused),
    })
}

#[cfg(windows)]
fn driver_view() -> Result<StatsView, String> {
    view_from_device(&crate::device::windows::WindowsDevice::new())
}

#[cfg(not(windows))]
fn driver_view() -> Result<StatsView, String> {
    Err("--driver reads \\\\.\\Tollgate, which exists only on Windows with the driver loaded; \
         ask a running `tollgatectl serve` instead (without --driver)"
        .to_owned())
}
