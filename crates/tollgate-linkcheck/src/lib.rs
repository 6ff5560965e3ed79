//! The checker of the Linux cross-link gate (`link-gate.sh` next to this crate's `Cargo.toml`).
//!
//! [`check`] reads a linked PE image and decides whether it is shaped like a Tollgate kernel driver:
//! - PE32+ for x86_64 (`IMAGE_FILE_MACHINE_AMD64`);
//! - subsystem `IMAGE_SUBSYSTEM_NATIVE` (1), as `/DRIVER /SUBSYSTEM:NATIVE` make it;
//! - every import DLL (compared case-insensitively) in the allow list, by default
//!   [`KERNEL_IMPORT_ALLOW_LIST`]: ntoskrnl.exe, fwpkclnt.sys, NETIO.SYS, wdfldr.sys. A user-mode
//!   DLL (kernel32.dll, fwpuclnt.dll, a CRT) cannot be resolved by the kernel loader, so such an
//!   image fails to load with `STATUS_PROCEDURE_NOT_FOUND`/`STATUS_DLL_NOT_FOUND` — on the test
//!   machine, late; here it fails the build;
//! - no delay-load imports and no TLS directory (the kernel loader supports neither);
//! - relocatable (`IMAGE_FILE_RELOCS_STRIPPED` clear), `DYNAMIC_BASE` and `NX_COMPAT` set, and no
//!   section both writable and executable (memory integrity / HVCI refuses such drivers);
//! - an entry point, and the PE checksum set and correct (`/RELEASE`).
//!
//! It reports everything it looked at ([`Report`]'s `Display`), problems last.

use std::fmt;

use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, Import, PeFile64};

/// The DLLs a Tollgate driver may import from: the kernel, the WFP callout API, NETIO (the
/// network-module helpers `fwpkclnt.sys` sits beside) and the KMDF loader (the shell's
/// `WdfDriverEntry.lib` stub imports `wdfldr.sys`). `hal.dll` is deliberately absent: nothing
/// Tollgate calls lives there on x64; add it here if that ever changes.
pub const KERNEL_IMPORT_ALLOW_LIST: &[&str] = &["ntoskrnl.exe", "fwpkclnt.sys", "NETIO.SYS", "wdfldr.sys"];

/// DLL characteristics every Tollgate driver image must have: relocatable at any base, and
/// NX-compatible (required by memory integrity / HVCI).
pub const REQUIRED_DLL_CHARACTERISTICS: u16 =
    pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE | pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT;

/// One imported function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportedFunction {
    /// By name.
    Name(String),
    /// By ordinal.
    Ordinal(u16),
}

impl fmt::Display for ImportedFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportedFunction::Name(name) => f.write_str(name),
            ImportedFunction::Ordinal(ordinal) => write!(f, "#{ordinal}"),
        }
    }
}

/// One DLL of the import (or delay-load import) table, with what is imported from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedDll {
    /// The DLL name exactly as the image spells it.
    pub name: String,
    /// The functions imported from it, in table order.
    pub functions: Vec<ImportedFunction>,
}

/// A section header, as far as the report needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    /// The section name.
    pub name: String,
    /// Virtual size in bytes.
    pub virtual_size: u32,
    /// `IMAGE_SCN_*` characteristics.
    pub characteristics: u32,
}

impl SectionInfo {
    fn flag(&self, flag: u32) -> bool {
        self.characteristics & flag != 0
    }

    /// Writable and executable at once.
    #[must_use]
    pub fn is_writable_and_executable(&self) -> bool {
        self.flag(pe::IMAGE_SCN_MEM_WRITE) && self.flag(pe::IMAGE_SCN_MEM_EXECUTE)
    }
}

/// Something that makes the image unfit for a kernel driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not `IMAGE_FILE_MACHINE_AMD64`.
    Machine(u16),
    /// Not `IMAGE_SUBSYSTEM_NATIVE`.
    Subsystem(u16),
    /// Imports from a DLL outside the allow list.
    ForbiddenImport(ImportedDll),
    /// Has delay-load imports (the kernel loader does not support them).
    DelayLoadImport(ImportedDll),
    /// Has a TLS directory (the kernel loader does not support TLS).
    TlsDirectory,
    /// `IMAGE_FILE_RELOCS_STRIPPED`: cannot be loaded at another base.
    RelocationsStripped,
    /// Lacks some of [`REQUIRED_DLL_CHARACTERISTICS`] (the missing bits).
    MissingDllCharacteristics(u16),
    /// A section is writable and executable.
    WritableExecutableSection(String),
    /// No entry point.
    NoEntryPoint,
    /// The PE checksum is 0 or wrong.
    Checksum {
        /// What the header says.
        stored: u32,
        /// What the file's bytes sum to.
        computed: u32,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Machine(machine) => {
                write!(f, "machine is {} (0x{machine:04x}), not x86_64", machine_name(*machine))
            }
            Problem::Subsystem(subsystem) => write!(
                f,
                "subsystem is {} ({subsystem}), not NATIVE (1): link with /DRIVER /SUBSYSTEM:NATIVE",
                subsystem_name(*subsystem)
            ),
            Problem::ForbiddenImport(dll) => write!(
                f,
                "forbidden import DLL {}: {} function(s) ({}); a kernel driver may import only from {}",
                dll.name,
                dll.functions.len(),
                join(&dll.functions),
                KERNEL_IMPORT_ALLOW_LIST.join(", ")
            ),
            Problem::DelayLoadImport(dll) => write!(
                f,
                "delay-load import of {} ({}): the kernel loader does not support delay loading",
                dll.name,
                join(&dll.functions)
            ),
            Problem::TlsDirectory => f.write_str("has a TLS directory: the kernel loader does not support TLS"),
            Problem::RelocationsStripped => {
                f.write_str("relocations stripped (IMAGE_FILE_RELOCS_STRIPPED): a driver must be relocatable")
            }
            Problem::MissingDllCharacteristics(missing) => {
                write!(f, "missing DLL characteristics: {}", dll_characteristics_names(*missing))
            }
            Problem::WritableExecutableSection(name) => {
                write!(f, "section {name} is writable and executable (refused under memory integrity / HVCI)")
            }
            Problem::NoEntryPoint => f.write_str("no entry point"),
            Problem::Checksum { stored: 0, computed } => {
                write!(f, "PE checksum not set (computed 0x{computed:08x}): link with /RELEASE")
            }
            Problem::Checksum { stored, computed } => {
                write!(f, "PE checksum 0x{stored:08x} is wrong (computed 0x{computed:08x})")
            }
        }
    }
}

/// Why an image could not be checked at all.
#[derive(Debug)]
pub enum CheckError {
    /// Not a PE32+ image (includes 32-bit PE files and non-PE files).
    NotPe64(String),
    /// A table of the image is malformed.
    Malformed(object::read::Error),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::NotPe64(why) => write!(f, "not a PE32+ (64-bit PE) image: {why}"),
            CheckError::Malformed(error) => write!(f, "malformed PE image: {error}"),
        }
    }
}

impl std::error::Error for CheckError {}

impl From<object::read::Error> for CheckError {
    fn from(error: object::read::Error) -> Self {
        CheckError::Malformed(error)
    }
}

/// Everything [`check`] found.
#[derive(Clone, Debug)]
pub struct Report {
    /// `IMAGE_FILE_HEADER::Machine`.
    pub machine: u16,
    /// `IMAGE_FILE_HEADER::Characteristics`.
    pub characteristics: u16,
    /// `IMAGE_OPTIONAL_HEADER64::Subsystem`.
    pub subsystem: u16,
    /// `IMAGE_OPTIONAL_HEADER64::DllCharacteristics`.
    pub dll_characteristics: u16,
    /// `SizeOfImage`.
    pub size_of_image: u32,
    /// Size of the file.
    pub file_size: usize,
    /// `AddressOfEntryPoint` (RVA).
    pub entry_point: u32,
    /// The export whose address is the entry point, if any.
    pub entry_point_export: Option<String>,
    /// `CheckSum` as stored.
    pub checksum_stored: u32,
    /// The checksum computed over the file.
    pub checksum_computed: u32,
    /// The sections.
    pub sections: Vec<SectionInfo>,
    /// Exported names.
    pub exports: Vec<String>,
    /// The import table.
    pub imports: Vec<ImportedDll>,
    /// The delay-load import table.
    pub delay_imports: Vec<ImportedDll>,
    /// Whether there is a TLS directory.
    pub has_tls: bool,
    /// The allow list the imports were checked against.
    pub allowed_dlls: Vec<String>,
    /// What is wrong; empty if the image passes.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether the image passed every check.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// The DLLs the image imports from outside the allow list.
    #[must_use]
    pub fn forbidden_dlls(&self) -> Vec<&str> {
        self.problems
            .iter()
            .filter_map(|problem| match problem {
                Problem::ForbiddenImport(dll) => Some(dll.name.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Checks `data`, a linked PE image, against the kernel-driver rules above, with `allowed_dlls`
/// as the import allow list (usually [`KERNEL_IMPORT_ALLOW_LIST`]; compared case-insensitively).
///
/// # Errors
/// [`CheckError`] if `data` is not a PE32+ image or one of its tables cannot be read. A readable
/// image that breaks a rule is not an error: it is a [`Report`] with [`Report::problems`].
pub fn check(data: &[u8], allowed_dlls: &[&str]) -> Result<Report, CheckError> {
    let magic = object::read::pe::optional_header_magic(data).map_err(|e| CheckError::NotPe64(e.to_string()))?;
    if magic != pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC {
        return Err(CheckError::NotPe64(format!("optional header magic 0x{magic:03x}")));
    }
    let file = PeFile64::parse(data).map_err(|e| CheckError::NotPe64(e.to_string()))?;
    let nt = file.nt_headers();
    let header = nt.file_header();
    let optional = nt.optional_header();

    let machine = header.machine.get(LE);
    let characteristics = header.characteristics.get(LE);
    let subsystem = optional.subsystem();
    let dll_characteristics = optional.dll_characteristics();
    let entry_point = optional.address_of_entry_point();
    let checksum_stored = optional.check_sum();
    let nt_offset = usize::try_from(file.dos_header().nt_headers_offset()).unwrap_or(usize::MAX);
    let checksum_computed = pe_checksum(data, nt_offset.saturating_add(CHECKSUM_OFFSET_IN_NT_HEADERS));

    let sections = file
        .section_table()
        .iter()
        .map(|section| SectionInfo {
            name: String::from_utf8_lossy(section.raw_name()).into_owned(),
            virtual_size: section.virtual_size.get(LE),
            characteristics: section.characteristics.get(LE),
        })
        .collect::<Vec<_>>();

    let mut exports = Vec::new();
    let mut entry_point_export = None;
    if let Some(table) = file.export_table()? {
        for export in table.exports()? {
            let Some(name) = export.name.map(|name| String::from_utf8_lossy(name).into_owned()) else {
                continue;
            };
            if matches!(export.target, object::read::pe::ExportTarget::Address(address) if address == entry_point && address != 0)
            {
                entry_point_export = Some(name.clone());
            }
            exports.push(name);
        }
    }

    let imports = read_imports(&file)?;
    let delay_imports = read_delay_imports(&file)?;
    let has_tls = file.data_directory(pe::IMAGE_DIRECTORY_ENTRY_TLS).is_some();

    let mut problems = Vec::new();
    if machine != pe::IMAGE_FILE_MACHINE_AMD64 {
        problems.push(Problem::Machine(machine));
    }
    if subsystem != pe::IMAGE_SUBSYSTEM_NATIVE {
        problems.push(Problem::Subsystem(subsystem));
    }
    for dll in &imports {
        if !allowed_dlls.iter().any(|allowed| allowed.eq_ignore_ascii_case(&dll.name)) {
            problems.push(Problem::ForbiddenImport(dll.clone()));
        }
    }
    for dll in &delay_imports {
        problems.push(Problem::DelayLoadImport(dll.clone()));
    }
    if has_tls {
        problems.push(Problem::TlsDirectory);
    }
    if characteristics & pe::IMAGE_FILE_RELOCS_STRIPPED != 0 {
        problems.push(Problem::RelocationsStripped);
    }
    let missing = REQUIRED_DLL_CHARACTERISTICS & !dll_characteristics;
    if missing != 0 {
        problems.push(Problem::MissingDllCharacteristics(missing));
    }
    for section in sections.iter().filter(|section| section.is_writable_and_executable()) {
        problems.push(Problem::WritableExecutableSection(section.name.clone()));
    }
    if entry_point == 0 {
        problems.push(Problem::NoEntryPoint);
    }
    if checksum_stored == 0 || checksum_stored != checksum_computed {
        problems.push(Problem::Checksum { stored: checksum_stored, computed: checksum_computed });
    }

    Ok(Report {
        machine,
        characteristics,
        subsystem,
        dll_characteristics,
        size_of_image: optional.size_of_image(),
        file_size: data.len(),
        entry_point,
        entry_point_export,
        checksum_stored,
        checksum_computed,
        sections,
        exports,
        imports,
        delay_imports,
        has_tls,
        allowed_dlls: allowed_dlls.iter().map(|dll| (*dll).to_owned()).collect(),
        problems,
    })
}

fn read_imports(file: &PeFile64<'_>) -> Result<Vec<ImportedDll>, CheckError> {
    let mut dlls = Vec::new();
    let Some(table) = file.import_table()? else {
        return Ok(dlls);
    };
    let mut descriptors = table.descriptors()?;
    while let Some(descriptor) = descriptors.next()? {
        let name = String::from_utf8_lossy(table.name(descriptor.name.get(LE))?).into_owned();
        // The import lookup table, or the IAT when a linker omits the lookup table.
        let lookup = match descriptor.original_first_thunk.get(LE) {
            0 => descriptor.first_thunk.get(LE),
            address => address,
        };
        let mut thunks = table.thunks(lookup)?;
        let mut functions = Vec::new();
        while let Some(thunk) = thunks.next::<pe::ImageNtHeaders64>()? {
            functions.push(imported_function(table.import::<pe::ImageNtHeaders64>(thunk)?));
        }
        dlls.push(ImportedDll { name, functions });
    }
    Ok(dlls)
}

fn read_delay_imports(file: &PeFile64<'_>) -> Result<Vec<ImportedDll>, CheckError> {
    let mut dlls = Vec::new();
    let Some(table) = file.data_directories().delay_load_import_table(file.data(), &file.section_table())? else {
        return Ok(dlls);
    };
    let mut descriptors = table.descriptors()?;
    while let Some(descriptor) = descriptors.next()? {
        let name = String::from_utf8_lossy(table.name(descriptor.dll_name_rva.get(LE))?).into_owned();
        let mut thunks = table.thunks(descriptor.import_name_table_rva.get(LE))?;
        let mut functions = Vec::new();
        while let Some(thunk) = thunks.next::<pe::ImageNtHeaders64>()? {
            functions.push(imported_function(table.import::<pe::ImageNtHeaders64>(thunk)?));
        }
        dlls.push(ImportedDll { name, functions });
    }
    Ok(dlls)
}

fn imported_function(import: Import<'_>) -> ImportedFunction {
    match import {
        Import::Ordinal(ordinal) => ImportedFunction::Ordinal(ordinal),
        Import::Name(_hint, name) => ImportedFunction::Name(String::from_utf8_lossy(name).into_owned()),
    }
}

/// Where `IMAGE_OPTIONAL_HEADER::CheckSum` is, from the start of the NT headers: the 4-byte
/// signature, the 20-byte file header, then offset 64 of the optional header (PE32 and PE32+ alike).
pub const CHECKSUM_OFFSET_IN_NT_HEADERS: usize = 4 + 20 + 64;

/// The PE image checksum (`CheckSumMappedFile`'s algorithm): the one's-complement-style 16-bit sum
/// of the file with the `CheckSum` field (at `checksum_offset`) counted as zero, plus the file
/// length.
#[must_use]
pub fn pe_checksum(data: &[u8], checksum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    for (index, chunk) in data.chunks(2).enumerate() {
        let offset = index.saturating_mul(2);
        if offset == checksum_offset || offset == checksum_offset.saturating_add(2) {
            continue;
        }
        let word = match *chunk {
            [low, high] => u16::from_le_bytes([low, high]),
            [low] => u16::from(low),
            _ => 0,
        };
        sum = sum.saturating_add(u64::from(word));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    u32::try_from(sum.saturating_add(data.len() as u64)).unwrap_or(u32::MAX)
}

// ---- names for the report -------------------------------------------------------------------------

fn machine_name(machine: u16) -> &'static str {
    match machine {
        pe::IMAGE_FILE_MACHINE_AMD64 => "x86_64",
        pe::IMAGE_FILE_MACHINE_I386 => "x86",
        pe::IMAGE_FILE_MACHINE_ARM64 => "ARM64",
        _ => "unknown",
    }
}

fn subsystem_name(subsystem: u16) -> &'static str {
    match subsystem {
        pe::IMAGE_SUBSYSTEM_NATIVE => "NATIVE",
        pe::IMAGE_SUBSYSTEM_WINDOWS_GUI => "WINDOWS_GUI",
        pe::IMAGE_SUBSYSTEM_WINDOWS_CUI => "WINDOWS_CUI",
        pe::IMAGE_SUBSYSTEM_EFI_APPLICATION => "EFI_APPLICATION",
        pe::IMAGE_SUBSYSTEM_EFI_BOOT_SERVICE_DRIVER => "EFI_BOOT_SERVICE_DRIVER",
        pe::IMAGE_SUBSYSTEM_EFI_RUNTIME_DRIVER => "EFI_RUNTIME_DRIVER",
        _ => "unknown",
    }
}

fn flag_names(value: u32, names: &[(u32, &str)]) -> String {
    let mut parts: Vec<String> =
        names.iter().filter(|(flag, _)| value & flag != 0).map(|(_, name)| (*name).to_owned()).collect();
    let known = names.iter().fold(0, |all, (flag, _)| all | flag);
    if value & !known != 0 {
        parts.push(format!("0x{:x}", value & !known));
    }
    if parts.is_empty() { "none".to_owned() } else { parts.join(" | ") }
}

fn dll_characteristics_names(value: u16) -> String {
    flag_names(
        u32::from(value),
        &[
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_HIGH_ENTROPY_VA), "HIGH_ENTROPY_VA"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE), "DYNAMIC_BASE"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY), "FORCE_INTEGRITY"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT), "NX_COMPAT"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_NO_ISOLATION), "NO_ISOLATION"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_NO_SEH), "NO_SEH"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_NO_BIND), "NO_BIND"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_APPCONTAINER), "APPCONTAINER"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_WDM_DRIVER), "WDM_DRIVER"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_GUARD_CF), "GUARD_CF"),
            (u32::from(pe::IMAGE_DLLCHARACTERISTICS_TERMINAL_SERVER_AWARE), "TERMINAL_SERVER_AWARE"),
        ],
    )
}

fn file_characteristics_names(value: u16) -> String {
    flag_names(
        u32::from(value),
        &[
            (u32::from(pe::IMAGE_FILE_RELOCS_STRIPPED), "RELOCS_STRIPPED"),
            (u32::from(pe::IMAGE_FILE_EXECUTABLE_IMAGE), "EXECUTABLE_IMAGE"),
            (u32::from(pe::IMAGE_FILE_LARGE_ADDRESS_AWARE), "LARGE_ADDRESS_AWARE"),
            (u32::from(pe::IMAGE_FILE_DEBUG_STRIPPED), "DEBUG_STRIPPED"),
            (u32::from(pe::IMAGE_FILE_SYSTEM), "SYSTEM"),
            (u32::from(pe::IMAGE_FILE_DLL), "DLL"),
        ],
    )
}

fn section_flags(section: &SectionInfo) -> String {
    let mut flags = String::new();
    flags.push(if section.flag(pe::IMAGE_SCN_MEM_READ) { 'r' } else { '-' });
    flags.push(if section.flag(pe::IMAGE_SCN_MEM_WRITE) { 'w' } else { '-' });
    flags.push(if section.flag(pe::IMAGE_SCN_MEM_EXECUTE) { 'x' } else { '-' });
    if section.flag(pe::IMAGE_SCN_MEM_DISCARDABLE) {
        flags.push_str(" discardable");
    }
    flags
}

/// Where the report wraps the lists of imported functions.
const REPORT_WIDTH: usize = 100;

fn join(functions: &[ImportedFunction]) -> String {
    functions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  machine              {} (0x{:04x}), PE32+", machine_name(self.machine), self.machine)?;
        writeln!(f, "  subsystem            {} ({})", subsystem_name(self.subsystem), self.subsystem)?;
        writeln!(
            f,
            "  image size           {} bytes (0x{:x}); file {} bytes",
            self.size_of_image, self.size_of_image, self.file_size
        )?;
        match &self.entry_point_export {
            Some(name) => writeln!(f, "  entry point          RVA 0x{:x} ({name})", self.entry_point)?,
            None => writeln!(f, "  entry point          RVA 0x{:x}", self.entry_point)?,
        }
        let checksum = if self.checksum_stored == 0 {
            "not set"
        } else if self.checksum_stored == self.checksum_computed {
            "correct"
        } else {
            "WRONG"
        };
        writeln!(f, "  checksum             0x{:08x} ({checksum})", self.checksum_stored)?;
        writeln!(f, "  characteristics      {}", file_characteristics_names(self.characteristics))?;
        writeln!(f, "  DLL characteristics  {}", dll_characteristics_names(self.dll_characteristics))?;
        writeln!(f, "  sections             {}", self.sections.len())?;
        for section in &self.sections {
            writeln!(f, "    {:<8} {:>8} bytes  {}", section.name, section.virtual_size, section_flags(section))?;
        }
        writeln!(
            f,
            "  exports              {}",
            if self.exports.is_empty() { "none".to_owned() } else { self.exports.join(", ") }
        )?;
        let functions: usize = self.imports.iter().map(|dll| dll.functions.len()).sum();
        writeln!(f, "  imports              {} DLL(s), {functions} function(s)", self.imports.len())?;
        for dll in &self.imports {
            let allowed = self.allowed_dlls.iter().any(|allowed| allowed.eq_ignore_ascii_case(&dll.name));
            writeln!(
                f,
                "    {:<14} {:>3} function(s)  {}",
                dll.name,
                dll.functions.len(),
                if allowed { "allowed" } else { "FORBIDDEN" }
            )?;
            let mut line = String::new();
            for function in &dll.functions {
                let name = function.to_string();
                if !line.is_empty() && line.len() + name.len() + 2 > REPORT_WIDTH {
                    writeln!(f, "      {line},")?;
                    line.clear();
                }
                if !line.is_empty() {
                    line.push_str(", ");
                }
                line.push_str(&name);
            }
            writeln!(f, "      {line}")?;
        }
        writeln!(f, "  delay-load imports   {}", self.delay_imports.len())?;
        writeln!(f, "  TLS directory        {}", if self.has_tls { "present" } else { "none" })?;
        writeln!(f, "  import allow list    {}", self.allowed_dlls.join(", "))?;
        if self.passed() {
            write!(f, "PASS: x86_64 native-subsystem image, imports only from the allow list")
        } else {
            writeln!(f, "FAIL: {} problem(s)", self.problems.len())?;
            for (index, problem) in self.problems.iter().enumerate() {
                if index > 0 {
                    writeln!(f)?;
                }
                write!(f, "  - {problem}")?;
            }
            Ok(())
        }
    }
}
