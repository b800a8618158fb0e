//! Runs the `elf_headers` checks over PRNG-generated ELF-shaped files, for toolchains without
//! libFuzzer (no nightly):
//!
//!   quickcheck [ITERATIONS [SEED]]     default 1,000,000 iterations, seed 1
//!   quickcheck --seeds DIR [N]         write N (default 64) accepted inputs to DIR, a seed
//!                                      corpus for `cargo fuzz run elf_headers DIR`
//!
//! Prints how many inputs were accepted; a broken invariant panics, and the input is written
//! to `quickcheck-failure-seedS-iterI.bin` to replay.

use std::time::Instant;

fn input(seed: u64, i: u64) -> (Vec<u8>, u64) {
    let mut rng = uexec_fuzz::Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i);
    uexec_fuzz::generate(&mut rng)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--seeds") {
        let dir = args.get(1).expect("--seeds DIR");
        let count: usize = args
            .get(2)
            .map_or(64, |a| a.parse().expect("N is a number"));
        std::fs::create_dir_all(dir).expect("creating the seed directory");
        // libFuzzer's file is the whole input, so only inputs with no sparse tail are seeds.
        let seeds = (0..)
            .map(|i| input(7, i))
            .filter(|(file, size)| {
                *size == file.len() as u64 && uexec_fuzz::check_file(file, *size)
            })
            .take(count);
        for (n, (file, _)) in seeds.enumerate() {
            std::fs::write(format!("{dir}/generated-{n:03}"), file).expect("writing a seed");
        }
        return;
    }
    let iterations: u64 = args
        .first()
        .map_or(1_000_000, |a| a.parse().expect("ITERATIONS is a number"));
    let seed: u64 = args
        .get(1)
        .map_or(1, |a| a.parse().expect("SEED is a number"));
    let start = Instant::now();
    let mut accepted = 0u64;
    for i in 0..iterations {
        let (file, size) = input(seed, i);
        let result = std::panic::catch_unwind(|| uexec_fuzz::check_file(&file, size));
        let Ok(ok) = result else {
            let dump = format!("quickcheck-failure-seed{seed}-iter{i}.bin");
            let _ = std::fs::write(&dump, &file);
            eprintln!("invariant broken at seed {seed} iteration {i} (file size {size}); input written to {dump}");
            std::process::exit(1);
        };
        accepted += u64::from(ok);
    }
    println!(
        "{iterations} inputs, {accepted} accepted, no invariant broken ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
}
