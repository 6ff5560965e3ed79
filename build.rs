//! Build script of the KMDF shell.
//!
//! On a Windows host (an eWDK developer prompt) it hands the build to `wdk-build`, as the
//! windows-drivers-rs template does: `configure_wdk_binary_build()` reads the
//! `[package.metadata.wdk.driver-model]` section of `Cargo.toml`, finds the WDK, checks that the C
//! runtime is linked statically (`.cargo/config.toml`), adds the WDK library search paths and the
//! kernel-mode link arguments (`/DRIVER`, `/SUBSYSTEM:NATIVE`, `/ENTRY:FxDriverEntry`,
//! `/INTEGRITYCHECK`, ...), and emits the `driver_model__*` cfgs. Its error type is
//! `wdk_build::ConfigError`.
//!
//! Everywhere else there is no WDK and the shell compiles to an empty library, so the script does
//! nothing. `cfg(windows)` here is the *host* (build scripts run on the build machine); the
//! `wdk-build` build-dependency is declared under `[target.'cfg(windows)'.build-dependencies]`.

#[cfg(windows)]
fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_binary_build()
}

#[cfg(not(windows))]
fn main() {
    // Nothing to configure; only rerun when this script changes, not on every file change.
    println!("cargo::rerun-if-changed=build.rs");
}
