//! libFuzzer target: the fuzz input is the whole executable file, read the way
//! `uexec_load::file::ElfFile::open` reads it. See `uexec_fuzz::check_file` for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _accepted = uexec_fuzz::check_file(data, data.len() as u64);
});
