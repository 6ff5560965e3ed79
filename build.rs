//! Build script of the KMDF shell.
//!
//! On Windows (eWDK environment) it hands the build to `wdk-build`, which finds the WDK, sets the
//! kernel link arguments and exports the driver configuration. Everywhere else there is no WDK and the
//! shell compiles to an empty library, so this does nothing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(windows)]
    wdk_build::configure_wdk_binary_build()?;
    Ok(())
}
