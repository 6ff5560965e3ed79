//! Build script of the link probe: turns the probe on only when the link gate asks for it.
//!
//! `TOLLGATE_LINKPROBE=1` and the target `x86_64-pc-windows-msvc`: sets `cfg(tollgate_linkprobe)`
//! (the probe's code) and the kernel-mode link arguments. `TOLLGATE_LINKPROBE_USER_IMPORTS=1` in
//! addition sets `cfg(tollgate_linkprobe_user_imports)`: the probe also imports user-mode functions,
//! so the gate can show that the checker rejects such an image. Anything else (every ordinary
//! build, on any host): no cfg, no link argument, an empty library.
//!
//! The linker itself (rust-lld, `-C linker-flavor=lld-link`) is chosen by the gate script, not
//! here and not in `.cargo/config.toml`, where it would also apply to the KMDF shell's real build.

use std::env;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TOLLGATE_LINKPROBE");
    println!("cargo::rerun-if-env-changed=TOLLGATE_LINKPROBE_USER_IMPORTS");
    println!("cargo::rustc-check-cfg=cfg(tollgate_linkprobe)");
    println!("cargo::rustc-check-cfg=cfg(tollgate_linkprobe_user_imports)");

    let enabled = env::var("TOLLGATE_LINKPROBE").is_ok_and(|value| value == "1");
    let target_ok = env::var("TARGET").is_ok_and(|target| target == "x86_64-pc-windows-msvc");
    if !enabled {
        return;
    }
    if !target_ok {
        println!("cargo::warning=TOLLGATE_LINKPROBE=1 ignored: the probe is only linked for x86_64-pc-windows-msvc");
        return;
    }
    println!("cargo::rustc-cfg=tollgate_linkprobe");
    if env::var("TOLLGATE_LINKPROBE_USER_IMPORTS").is_ok_and(|value| value == "1") {
        println!("cargo::rustc-cfg=tollgate_linkprobe_user_imports");
    }
    // What the WDK's kernel-mode link uses (and wdk-build passes for the shell), with the probe's
    // own entry point instead of KMDF's FxDriverEntry. /NODEFAULTLIB: nothing from a C runtime or
    // an SDK import library can sneak in; every import must be declared (raw-dylib) somewhere.
    for arg in [
        "/DRIVER",
        "/SUBSYSTEM:NATIVE",
        "/ENTRY:DriverEntry",
        "/NODEFAULTLIB",
        "/INTEGRITYCHECK",
        "/RELEASE",
        "/OPT:REF",
        "/OPT:ICF",
    ] {
        println!("cargo::rustc-cdylib-link-arg={arg}");
    }
}
