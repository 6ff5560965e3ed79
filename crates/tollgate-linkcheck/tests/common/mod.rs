//! Synthetic PE32+ images for the checker's tests, written with object's own PE writer.
//!
//! Why synthetic images rather than linking real ones in `cargo test`: a real link needs the
//! x86_64-pc-windows-msvc target and rust-lld, takes seconds per image and would make the host
//! test suite depend on a cross toolchain. `link-gate.sh` does the real thing (and its own negative
//! control with a real kernel32.dll/fwpuclnt.dll import); these tests pin every rule of the checker
//! down on small images that differ from a good driver in exactly one respect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs, dead_code)]

use object::pe;
use object::write::pe::{NtHeaders, Writer};

/// One DLL and the names imported from it.
pub type Dll = (&'static str, &'static [&'static str]);

/// A synthetic image; `Image::driver()` is a good one.
#[derive(Clone)]
pub struct Image {
    pub pe32: bool,
    pub machine: u16,
    pub characteristics: u16,
    pub subsystem: u16,
    pub dll_characteristics: u16,
    pub imports: Vec<Dll>,
    pub delay_imports: Vec<Dll>,
    pub tls: bool,
    pub writable_executable_section: bool,
    pub entry_point: bool,
    pub checksum: Checksum,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    Correct,
    Zero,
    Wrong,
}

impl Image {
    /// Shaped like the probe rust-lld links: native, kernel imports only.
    pub fn driver() -> Image {
        Image {
            pe32: false,
            machine: pe::IMAGE_FILE_MACHINE_AMD64,
            characteristics: pe::IMAGE_FILE_EXECUTABLE_IMAGE | pe::IMAGE_FILE_LARGE_ADDRESS_AWARE | pe::IMAGE_FILE_DLL,
            subsystem: pe::IMAGE_SUBSYSTEM_NATIVE,
            dll_characteristics: pe::IMAGE_DLLCHARACTERISTICS_HIGH_ENTROPY_VA
                | pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE
                | pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY
                | pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT,
            imports: vec![
                ("fwpkclnt.sys", &["FwpsPendOperation0", "FwpsCompleteOperation0"]),
                ("ntoskrnl.exe", &["ExAllocatePool2", "ExFreePool", "memcpy"]),
            ],
            delay_imports: Vec::new(),
            tls: false,
            writable_executable_section: false,
            entry_point: true,
            checksum: Checksum::Correct,
        }
    }

    pub fn with_import(mut self, dll: Dll) -> Image {
        self.imports.push(dll);
        self
    }

    /// The PE file.
    pub fn build(&self) -> Vec<u8> {
        let mut buffer = Vec::new();
        let mut writer = Writer::new(!self.pe32, 0x1000, 0x200, &mut buffer);
        writer.reserve_dos_header_and_stub();
        writer.reserve_nt_headers(pe::IMAGE_NUMBEROF_DIRECTORY_ENTRIES);
        let with_imports = !self.pe32;
        let sections = 1 + u16::from(with_imports) + u16::from(self.writable_executable_section);
        writer.reserve_section_headers(sections);

        let text = writer.reserve_text_section(16);
        let idata = with_imports.then(|| {
            let (probe, _) = import_data(0, &self.imports, &self.delay_imports);
            let range = writer.reserve_idata_section(probe.len() as u32);
            let (data, delay_directory) = import_data(range.virtual_address, &self.imports, &self.delay_imports);
            if let Some((address, size)) = delay_directory {
                writer.set_data_directory(pe::IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT, address, size);
            }
            (range, data)
        });
        let wx = self.writable_executable_section.then(|| {
            writer.reserve_section(
                *b".wx\0\0\0\0\0",
                pe::IMAGE_SCN_CNT_CODE | pe::IMAGE_SCN_MEM_EXECUTE | pe::IMAGE_SCN_MEM_READ | pe::IMAGE_SCN_MEM_WRITE,
                16,
                16,
            )
        });
        if self.tls {
            writer.set_data_directory(pe::IMAGE_DIRECTORY_ENTRY_TLS, text.virtual_address, 40);
        }

        writer.write_dos_header_and_stub().unwrap();
        writer.write_nt_headers(NtHeaders {
            machine: self.machine,
            time_date_stamp: 0,
            characteristics: self.characteristics,
            major_linker_version: 14,
            minor_linker_version: 0,
            address_of_entry_point: if self.entry_point { text.virtual_address } else { 0 },
            image_base: 0x1_4000_0000,
            major_operating_system_version: 10,
            minor_operating_system_version: 0,
            major_image_version: 0,
            minor_image_version: 0,
            major_subsystem_version: 10,
            minor_subsystem_version: 0,
            subsystem: self.subsystem,
            dll_characteristics: self.dll_characteristics,
            size_of_stack_reserve: 0x4_0000,
            size_of_stack_commit: 0x1000,
            size_of_heap_reserve: 0,
            size_of_heap_commit: 0,
        });
        writer.write_section_headers();
        writer.write_section(text.file_offset, &[0xc3; 16]);
        if let Some((range, data)) = &idata {
            writer.write_section(range.file_offset, data);
        }
        if let Some(range) = wx {
            writer.write_section(range.file_offset, &[0xcc; 16]);
        }
        drop(writer);

        let checksum_at = u32::from_le_bytes(buffer[0x3c..0x40].try_into().unwrap()) as usize
            + tollgate_linkcheck::CHECKSUM_OFFSET_IN_NT_HEADERS;
        let checksum = match self.checksum {
            Checksum::Correct => tollgate_linkcheck::pe_checksum(&buffer, checksum_at),
            Checksum::Zero => 0,
            Checksum::Wrong => tollgate_linkcheck::pe_checksum(&buffer, checksum_at) ^ 0x10,
        };
        buffer[checksum_at..checksum_at + 4].copy_from_slice(&checksum.to_le_bytes());
        buffer
    }
}

fn put_u32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(data: &mut [u8], at: usize, value: u64) {
    data[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// The `.idata` content at RVA `base`: the import descriptors, the delay-load descriptors, then per
/// DLL its lookup table, address table (and, delay-loaded, module handle slot), name and hint/name
/// entries. Returns the bytes and the delay-load directory (address, size), if any.
fn import_data(base: u32, imports: &[Dll], delay_imports: &[Dll]) -> (Vec<u8>, Option<(u32, u32)>) {
    let import_descriptors = 20 * (imports.len() + 1);
    let delay_descriptors = if delay_imports.is_empty() { 0 } else { 32 * (delay_imports.len() + 1) };
    let mut data = vec![0_u8; import_descriptors + delay_descriptors];
    let rva = |offset: usize| base + offset as u32;

    let all = imports.iter().map(|dll| (false, dll)).chain(delay_imports.iter().map(|dll| (true, dll)));
    let (mut import_index, mut delay_index) = (0, 0);
    for (delayed, (name, functions)) in all {
        let lookup = data.len();
        data.resize(lookup + 8 * (functions.len() + 1), 0);
        let address_table = data.len();
        data.resize(address_table + 8 * (functions.len() + 1), 0);
        let module_handle = data.len();
        if delayed {
            data.resize(module_handle + 8, 0);
        }
        let dll_name = data.len();
        data.extend_from_slice(name.as_bytes());
        data.push(0);
        for (index, function) in functions.iter().enumerate() {
            if !data.len().is_multiple_of(2) {
                data.push(0);
            }
            let hint_name = data.len();
            data.extend_from_slice(&0_u16.to_le_bytes());
            data.extend_from_slice(function.as_bytes());
            data.push(0);
            put_u64(&mut data, lookup + 8 * index, u64::from(rva(hint_name)));
            put_u64(&mut data, address_table + 8 * index, u64::from(rva(hint_name)));
        }
        if delayed {
            let at = import_descriptors + 32 * delay_index;
            put_u32(&mut data, at, 1); // Attributes: RVA-based.
            put_u32(&mut data, at + 4, rva(dll_name));
            put_u32(&mut data, at + 8, rva(module_handle));
            put_u32(&mut data, at + 12, rva(address_table));
            put_u32(&mut data, at + 16, rva(lookup));
            delay_index += 1;
        } else {
            let at = 20 * import_index;
            put_u32(&mut data, at, rva(lookup));
            put_u32(&mut data, at + 12, rva(dll_name));
            put_u32(&mut data, at + 16, rva(address_table));
            import_index += 1;
        }
    }
    while !data.len().is_multiple_of(8) {
        data.push(0);
    }
    let delay_directory = (delay_descriptors != 0).then(|| (rva(import_descriptors), delay_descriptors as u32));
    (data, delay_directory)
}
