//! Fuzzes objload's reader: any bytes, as an object or an archive, must give a value or an error, never a
//! panic or an out-of-bounds read. `inspect` parses every member, section, symbol and relocation the
//! linker would trust, without mapping or running anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = objload::inspect(data);
});
