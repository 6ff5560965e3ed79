//! `tollgate-linkcheck FILE...`: checks linked driver images (see the library documentation) and
//! prints a report for each.
//!
//! Exit status: 0 every image passed; 1 an image failed a check (the report lists the problems,
//! the forbidden import DLLs by name); 2 usage error, or a file could not be read or is not a
//! PE32+ image.

use std::process::ExitCode;

use tollgate_linkcheck::{KERNEL_IMPORT_ALLOW_LIST, check};

fn main() -> ExitCode {
    let paths: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    if paths.is_empty() || paths.iter().any(|path| path.as_os_str() == "-h" || path.as_os_str() == "--help") {
        eprintln!("usage: tollgate-linkcheck IMAGE.sys|IMAGE.dll...");
        eprintln!("checks: x86_64 PE32+, subsystem NATIVE, imports only from {}", KERNEL_IMPORT_ALLOW_LIST.join(", "));
        return ExitCode::from(2);
    }
    let mut status = 0_u8;
    for path in &paths {
        println!("tollgate-linkcheck: {}", path.display());
        let data = match std::fs::read(path) {
            Ok(data) => data,
            Err(error) => {
                eprintln!("error: cannot read {}: {error}", path.display());
                status = 2;
                continue;
            }
        };
        match check(&data, KERNEL_IMPORT_ALLOW_LIST) {
            Ok(report) => {
                println!("{report}");
                if !report.passed() {
                    let forbidden = report.forbidden_dlls();
                    if !forbidden.is_empty() {
                        eprintln!(
                            "error: {} imports from user-mode or unknown DLL(s): {}",
                            path.display(),
                            forbidden.join(", ")
                        );
                    }
                    eprintln!("error: {} is not a valid kernel driver image (see FAIL above)", path.display());
                    status = status.max(1);
                }
            }
            Err(error) => {
                eprintln!("error: {}: {error}", path.display());
                status = 2;
            }
        }
    }
    ExitCode::from(status)
}
