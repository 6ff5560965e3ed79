//! The checker on synthetic images (tests/common): a good driver passes; a user-mode import, a
//! non-native subsystem and every other rule fail, with the offending DLL named.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod common;

use common::{Checksum, Image};
use object::pe;
use tollgate_linkcheck::{CheckError, ImportedFunction, KERNEL_IMPORT_ALLOW_LIST, Problem, check};

fn problems(image: &Image) -> Vec<Problem> {
    check(&image.build(), KERNEL_IMPORT_ALLOW_LIST).unwrap().problems
}

#[test]
fn a_kernel_only_native_driver_passes() {
    let image = Image::driver()
        .with_import(("NETIO.SYS", &["NetioAllocateAndInitializeStackBlock"]))
        .with_import(("wdfldr.sys", &["WdfVersionBind", "WdfVersionUnbind"]));
    let report = check(&image.build(), KERNEL_IMPORT_ALLOW_LIST).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.subsystem, pe::IMAGE_SUBSYSTEM_NATIVE);
    assert_eq!(report.machine, pe::IMAGE_FILE_MACHINE_AMD64);
    let names: Vec<&str> = report.imports.iter().map(|dll| dll.name.as_str()).collect();
    assert_eq!(names, ["fwpkclnt.sys", "ntoskrnl.exe", "NETIO.SYS", "wdfldr.sys"]);
    assert_eq!(report.imports[1].functions[0], ImportedFunction::Name("ExAllocatePool2".into()));
    let text = report.to_string();
    assert!(text.contains("subsystem            NATIVE (1)"), "{text}");
    assert!(text.contains("ntoskrnl.exe     3 function(s)  allowed"), "{text}");
    assert!(text.ends_with("PASS: x86_64 native-subsystem image, imports only from the allow list"), "{text}");
}

#[test]
fn dll_names_are_compared_case_insensitively() {
    let image = Image {
        imports: vec![("NTOSKRNL.EXE", &["KeBugCheckEx"]), ("FwpKClnt.SYS", &["FwpsPendOperation0"])],
        ..Image::driver()
    };
    assert_eq!(problems(&image), []);
}

#[test]
fn a_user_mode_import_fails_and_is_named() {
    let cases: [(&str, &[&str]); 4] = [
        ("kernel32.dll", &["GetTickCount"]),
        ("fwpuclnt.dll", &["FwpmEngineOpen0"]),
        ("ucrtbase.dll", &["memcpy"]),
        ("ntdll.dll", &["NtClose"]),
    ];
    for (dll, functions) in cases {
        let function = functions[0];
        let image = Image::driver().with_import((dll, functions));
        let report = check(&image.build(), KERNEL_IMPORT_ALLOW_LIST).unwrap();
        assert!(!report.passed());
        assert_eq!(report.forbidden_dlls(), [dll]);
        let [Problem::ForbiddenImport(forbidden)] = &report.problems[..] else {
            panic!("{dll}: {:?}", report.problems);
        };
        assert_eq!(forbidden.functions, [ImportedFunction::Name(function.into())]);
        let text = report.to_string();
        assert!(text.contains(&format!("forbidden import DLL {dll}: 1 function(s) ({function})")), "{text}");
        assert!(text.contains("FORBIDDEN"), "{text}");
    }
}

#[test]
fn hal_is_not_on_the_list() {
    let image = Image::driver().with_import(("hal.dll", &["KeQueryPerformanceCounter"]));
    assert!(matches!(&problems(&image)[..], [Problem::ForbiddenImport(dll)] if dll.name == "hal.dll"));
}

#[test]
fn a_user_mode_subsystem_fails() {
    for subsystem in [pe::IMAGE_SUBSYSTEM_WINDOWS_CUI, pe::IMAGE_SUBSYSTEM_WINDOWS_GUI] {
        let image = Image { subsystem, ..Image::driver() };
        assert_eq!(problems(&image), [Problem::Subsystem(subsystem)]);
    }
    let text = Problem::Subsystem(pe::IMAGE_SUBSYSTEM_WINDOWS_CUI).to_string();
    assert!(text.contains("WINDOWS_CUI (3), not NATIVE (1)"), "{text}");
}

#[test]
fn another_machine_fails() {
    let image = Image { machine: pe::IMAGE_FILE_MACHINE_ARM64, ..Image::driver() };
    assert_eq!(problems(&image), [Problem::Machine(pe::IMAGE_FILE_MACHINE_ARM64)]);
}

#[test]
fn delay_load_imports_fail_even_from_allowed_dlls() {
    let image = Image { delay_imports: vec![("ntoskrnl.exe", &["KeBugCheckEx"])], ..Image::driver() };
    let found = problems(&image);
    assert!(matches!(&found[..], [Problem::DelayLoadImport(dll)] if dll.name == "ntoskrnl.exe"), "{found:?}");
}

#[test]
fn tls_fails() {
    let image = Image { tls: true, ..Image::driver() };
    assert_eq!(problems(&image), [Problem::TlsDirectory]);
}

#[test]
fn a_writable_executable_section_fails() {
    let image = Image { writable_executable_section: true, ..Image::driver() };
    assert_eq!(problems(&image), [Problem::WritableExecutableSection(".wx".into())]);
}

#[test]
fn missing_nx_or_dynamic_base_fails_and_stripped_relocations_fail() {
    let image = Image { dll_characteristics: pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE, ..Image::driver() };
    assert_eq!(problems(&image), [Problem::MissingDllCharacteristics(pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT)]);
    let image =
        Image { characteristics: Image::driver().characteristics | pe::IMAGE_FILE_RELOCS_STRIPPED, ..Image::driver() };
    assert_eq!(problems(&image), [Problem::RelocationsStripped]);
}

#[test]
fn the_checksum_must_be_set_and_right() {
    let zero = problems(&Image { checksum: Checksum::Zero, ..Image::driver() });
    assert!(matches!(zero[..], [Problem::Checksum { stored: 0, .. }]), "{zero:?}");
    let wrong = problems(&Image { checksum: Checksum::Wrong, ..Image::driver() });
    assert!(matches!(wrong[..], [Problem::Checksum { stored, computed }] if stored == computed ^ 0x10), "{wrong:?}");
}

#[test]
fn no_entry_point_fails() {
    assert_eq!(problems(&Image { entry_point: false, ..Image::driver() }), [Problem::NoEntryPoint]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let image = Image { subsystem: pe::IMAGE_SUBSYSTEM_WINDOWS_CUI, tls: true, ..Image::driver() }
        .with_import(("kernel32.dll", &["GetTickCount"]));
    let report = check(&image.build(), KERNEL_IMPORT_ALLOW_LIST).unwrap();
    assert_eq!(report.problems.len(), 3, "{report}");
    assert!(report.to_string().contains("FAIL: 3 problem(s)"));
}

#[test]
fn not_a_pe32_plus_image_is_an_error() {
    let pe32 = Image { pe32: true, machine: pe::IMAGE_FILE_MACHINE_I386, ..Image::driver() }.build();
    assert!(matches!(check(&pe32, KERNEL_IMPORT_ALLOW_LIST), Err(CheckError::NotPe64(_))));
    assert!(matches!(check(b"\x7fELF not a PE file at all", KERNEL_IMPORT_ALLOW_LIST), Err(CheckError::NotPe64(_))));
    assert!(matches!(check(&[], KERNEL_IMPORT_ALLOW_LIST), Err(CheckError::NotPe64(_))));
}

#[test]
fn truncated_images_never_panic() {
    let image = Image::driver().with_import(("kernel32.dll", &["GetTickCount"])).build();
    for len in 0..image.len() {
        let _ = check(&image[..len], KERNEL_IMPORT_ALLOW_LIST);
    }
}
