//! The `tollgate-linkcheck` binary: exit 0 and a PASS report on a good image, exit 1 with the
//! forbidden DLL named on an image with a user-mode import, exit 2 on a file that is not PE32+.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Image;

fn write(name: &str, data: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-linkcheck-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn run(path: &PathBuf) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tollgate-linkcheck")).arg(path).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    (output.status.code().unwrap(), stdout, stderr)
}

#[test]
fn good_image_exits_0() {
    let (code, stdout, stderr) = run(&write("good.sys", &Image::driver().build()));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("PASS"), "{stdout}");
}

#[test]
fn user_mode_import_exits_1_and_names_the_dll() {
    let image = Image::driver().with_import(("kernel32.dll", &["GetTickCount"])).build();
    let (code, stdout, stderr) = run(&write("user-import.sys", &image));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("forbidden import DLL kernel32.dll: 1 function(s) (GetTickCount)"), "{stdout}");
    assert!(stderr.contains("imports from user-mode or unknown DLL(s): kernel32.dll"), "{stderr}");
}

#[test]
fn not_a_pe_exits_2() {
    let (code, _, stderr) = run(&write("not-a-pe.sys", b"MZ but nothing else"));
    assert_eq!(code, 2);
    assert!(stderr.contains("not a PE32+"), "{stderr}");
}
