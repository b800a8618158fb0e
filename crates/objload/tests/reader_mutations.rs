//! A deterministic stand-in for the fuzz target (`fuzz/fuzz_targets/objload_inspect.rs`), run with
//! the tests: thousands of mutations of real objects and archives through the reader must each give
//! a value or an error.

mod common;

use common::{archive, object};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_objects_and_archives_never_crash_the_reader() {
    let obj = object("lib_math.c", &["-O2", "-g"]);
    let lib = archive(
        "libmutate.a",
        &[
            object("common_a.c", &["-fcommon"]),
            object("common_b.c", &["-fcommon"]),
        ],
    );
    let mut rng = Rng(0x0b1e_c710_ad00_0001);
    let mut outcomes = [0usize; 2];
    for input in [obj, lib] {
        let original = std::fs::read(&input).unwrap_or_else(|e| panic!("{e}"));
        let clean = objload::inspect(&original).unwrap_or_else(|e| panic!("{e}"));
        assert!(clean.relocations > 0 && !clean.functions.is_empty());
        for _ in 0..3000 {
            let mut data = original.clone();
            match rng.below(4) {
                0 => {
                    // Flip a few bytes in the headers and tables (the first 64 bytes, and the end).
                    for _ in 0..1 + rng.below(4) {
                        let at = if rng.below(2) == 0 {
                            rng.below(64)
                        } else {
                            data.len() - 1 - rng.below(data.len().min(2048))
                        };
                        data[at] ^= 1 << rng.below(8);
                    }
                }
                1 => data.truncate(rng.below(data.len())),
                2 => {
                    let at = rng.below(data.len() - 8);
                    data[at..at + 8].copy_from_slice(&rng.next().to_le_bytes());
                }
                _ => {
                    let at = rng.below(data.len());
                    data[at] = 0xff;
                }
            }
            outcomes[usize::from(objload::inspect(&data).is_ok())] += 1;
        }
    }
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "mutations should both pass and fail: {outcomes:?}"
    );
}
