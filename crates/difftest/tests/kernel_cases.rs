//! Executables the kernel accepts at the edges of the ELF rules (issue 10), each made by mutating a
//! built fixture, run natively and under every loader (and every user): output and exit status must
//! match. And the one case uexec refuses by decision, overlapping or out-of-order `PT_LOAD`s.
//!
//! - a read-only segment whose `p_filesz` ends a byte before its `p_memsz`: the kernel's padzero fails
//!   on the read-only page and is ignored, so the rest of the last file page keeps the file's bytes
//!   (here the `ret` at the end of `_fini`, which a zeroing loader turns into a crash at exit);
//! - a program-header table at `e_phoff` 0x44, not 8-byte aligned;
//! - a table past 4 KiB (80 `PT_NULL` entries appended; the kernel reads up to 64 KiB);
//! - a `PT_INTERP` whose path is followed by NUL padding inside `p_filesz`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use difftest::{
    compare, fixture, identities, require_loader, run_native_as, run_under_as, scratch_dir,
};

const PHDR: usize = 56;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// (e_phoff, e_phnum) and the offset of each program header.
fn phdrs(elf: &[u8]) -> Vec<usize> {
    let phoff = u64_at(elf, 0x20) as usize;
    let phnum = usize::from(u16_at(elf, 0x38));
    (0..phnum).map(|i| phoff + i * PHDR).collect()
}

fn write_program(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Runs `path` natively and under each loader, as every user; panics with every difference.
fn same_everywhere(path: &Path, args: &[&str], what: &str) {
    let mut failures = Vec::new();
    for &who in identities() {
        let native = run_native_as(who, path, args);
        for (loader, loader_args) in [
            ("apager", &["-q"][..]),
            ("dpager", &["-q"][..]),
            ("hpager", &["-q"][..]),
            ("hpager", &["-q", "--predict=next", "--pages=4"][..]),
        ] {
            let loaded = run_under_as(who, require_loader(loader), loader_args, path, args);
            if let Err(e) = compare(what, &native, &loaded) {
                failures.push(format!("{what} under {loader} {loader_args:?} {who}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn original(name: &str, variant: &str) -> Vec<u8> {
    std::fs::read(fixture(name, variant).path).unwrap()
}

#[test]
fn read_only_segment_keeps_the_file_bytes_after_filesz() {
    let dir = scratch_dir("kernel-cases-padzero");
    let mut elf = original("malloc", "glibc-static");
    let text = phdrs(&elf)
        .into_iter()
        .find(|&p| u32_at(&elf, p) == PT_LOAD && u32_at(&elf, p + 4) & PF_X != 0)
        .expect("a text segment");
    assert_eq!(u32_at(&elf, text + 4) & PF_W, 0, "text is not writable");
    let filesz = u64_at(&elf, text + 32);
    let last = u64_at(&elf, text + 8) + filesz - 1;
    assert_ne!(
        elf[last as usize], 0,
        "the text's last byte must matter for this test"
    );
    put_u64(&mut elf, text + 32, filesz - 1);
    let path = write_program(&dir, "text-one-byte-short", &elf);
    same_everywhere(&path, &[], "text p_filesz one byte short");
}

#[test]
fn program_header_table_at_an_unaligned_offset() {
    let dir = scratch_dir("kernel-cases-phoff");
    let mut elf = original("malloc", "glibc-static");
    let table = phdrs(&elf);
    let phoff = table[0];
    assert_eq!(phoff, 0x40, "the fixture's table follows the ELF header");
    // Drop a PT_NOTE (nothing at run time reads it) to make room, then move the table 4 bytes up.
    let note = table
        .iter()
        .position(|&p| u32_at(&elf, p) == PT_NOTE)
        .expect("a PT_NOTE");
    let mut entries: Vec<Vec<u8>> = table.iter().map(|&p| elf[p..p + PHDR].to_vec()).collect();
    entries.remove(note);
    let moved: Vec<u8> = entries.concat();
    elf[phoff + 4..phoff + 4 + moved.len()].copy_from_slice(&moved);
    elf[phoff..phoff + 4].fill(0);
    put_u64(&mut elf, 0x20, 0x44);
    put_u16(&mut elf, 0x38, entries.len() as u16);
    let path = write_program(&dir, "phoff-0x44", &elf);
    same_everywhere(&path, &[], "e_phoff 0x44");
}

#[test]
fn program_header_table_larger_than_a_page() {
    let dir = scratch_dir("kernel-cases-bigtable");
    let mut elf = original("entry_probe", "nolibc-static");
    let table = phdrs(&elf);
    let mut bytes: Vec<u8> = table
        .iter()
        .flat_map(|&p| elf[p..p + PHDR].to_vec())
        .collect();
    bytes.resize(bytes.len() + 80 * PHDR, 0); // PT_NULL entries
    assert!(bytes.len() > 4096);
    let at = elf.len().next_multiple_of(8);
    elf.resize(at, 0);
    elf.extend_from_slice(&bytes);
    put_u64(&mut elf, 0x20, at as u64);
    put_u16(&mut elf, 0x38, (table.len() + 80) as u16);
    let path = write_program(&dir, "phdr-table-5k", &elf);
    same_everywhere(&path, &["a", "b"], "a 5 KiB program-header table");
}

#[test]
fn interpreter_path_with_nul_padding() {
    let dir = scratch_dir("kernel-cases-interp");
    let mut elf = original("malloc", "glibc-dynamic");
    let interp = phdrs(&elf)
        .into_iter()
        .find(|&p| u32_at(&elf, p) == PT_INTERP)
        .expect("a PT_INTERP");
    let (offset, len) = (
        u64_at(&elf, interp + 8) as usize,
        u64_at(&elf, interp + 32) as usize,
    );
    let real = std::str::from_utf8(&elf[offset..offset + len - 1])
        .unwrap()
        .to_owned();
    // A shorter name for the same interpreter, so NULs fill the rest of the range.
    let link = PathBuf::from(format!("/tmp/uexec-ld.{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let name = link.to_str().unwrap().as_bytes();
    assert!(
        name.len() + 2 <= len,
        "{} does not fit in {len} bytes",
        link.display()
    );
    elf[offset..offset + len].fill(0);
    elf[offset..offset + name.len()].copy_from_slice(name);
    let path = write_program(&dir, "interp-nul-padded", &elf);
    same_everywhere(&path, &[], "PT_INTERP with NUL padding");
    let _ = std::fs::remove_file(&link);
}

/// Decided: overlapping or out-of-order `PT_LOAD`s are refused (the ELF specification requires them
/// sorted by `p_vaddr`; the kernel maps them in table order, later ones over earlier ones), with one
/// line saying so and status 126, before anything runs.
#[test]
fn overlapping_loads_are_refused_with_that_message() {
    let dir = scratch_dir("kernel-cases-overlap");
    let mut elf = original("malloc", "glibc-static");
    let loads: Vec<usize> = phdrs(&elf)
        .into_iter()
        .filter(|&p| u32_at(&elf, p) == PT_LOAD)
        .collect();
    // Swap the first two loads' headers: out of order.
    let (a, b) = (loads[0], loads[1]);
    let first = elf[a..a + PHDR].to_vec();
    let second = elf[b..b + PHDR].to_vec();
    elf[a..a + PHDR].copy_from_slice(&second);
    elf[b..b + PHDR].copy_from_slice(&first);
    let path = write_program(&dir, "loads-out-of-order", &elf);
    for &who in identities() {
        for loader in ["apager", "dpager", "hpager"] {
            let out = run_under_as(who, require_loader(loader), &["-q"], &path, &[] as &[&str]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.shell_code(), 126, "{loader} {who}: {stderr}");
            assert!(out.stdout.is_empty(), "{loader} {who}: it ran");
            assert!(
                stderr.contains("loadable segments overlap or are out of order"),
                "{loader} {who}: {stderr}"
            );
        }
    }
}
