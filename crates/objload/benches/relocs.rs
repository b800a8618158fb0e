//! Load-and-relocate throughput: a generated object with 100,000 relocations (R_X86_64_64 in data, PLT32
//! calls, PC32 address loads, GOTPCRELX loads of libc symbols) is loaded and unloaded repeatedly; reports
//! relocations per second. Run with `cargo bench -p objload`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const FUNCTIONS: usize = 1000;
const RELOCATIONS: usize = 100_000;

fn generate(dir: &Path) -> std::path::PathBuf {
    let mut s = String::from("\t.text\n");
    for f in 0..FUNCTIONS {
        let _ = writeln!(
            s,
            "\t.globl bench_f{f}\n\t.type bench_f{f}, @function\nbench_f{f}:\n\tret"
        );
    }
    // 40% data pointers, 30% calls, 20% PC-relative address loads, 10% GOT loads of libc symbols.
    let (data, calls, pcrel) = (
        RELOCATIONS * 4 / 10,
        RELOCATIONS * 3 / 10,
        RELOCATIONS * 2 / 10,
    );
    let got = RELOCATIONS - data - calls - pcrel;
    s.push_str("\t.globl bench_code\n\t.type bench_code, @function\nbench_code:\n");
    for i in 0..calls {
        let _ = writeln!(s, "\tcall bench_f{}@PLT", i % FUNCTIONS);
    }
    for i in 0..pcrel {
        let _ = writeln!(s, "\tleaq bench_f{}(%rip), %rax", i % FUNCTIONS);
    }
    let libc = [
        "puts", "labs", "strlen", "malloc", "free", "memcpy", "qsort", "getenv",
    ];
    for i in 0..got {
        let _ = writeln!(s, "\tmovq {}@GOTPCREL(%rip), %rax", libc[i % libc.len()]);
    }
    s.push_str("\tret\n\t.data\n\t.globl bench_table\nbench_table:\n");
    for i in 0..data {
        let _ = writeln!(s, "\t.quad bench_f{}", i % FUNCTIONS);
    }
    s.push_str("\t.section .note.GNU-stack,\"\",@progbits\n");
    let src = dir.join("relocs100k.s");
    let obj = dir.join("relocs100k.o");
    std::fs::write(&src, s).unwrap_or_else(|e| panic!("{e}"));
    let st = Command::new("gcc")
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status();
    assert!(
        st.is_ok_and(|s| s.success()),
        "gcc failed on the generated source"
    );
    obj
}

fn main() {
    let dir = std::env::temp_dir().join(format!("objload-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let obj = generate(&dir);
    let mut reg = objload::Registry::new();
    // Warm-up: reads and checks the host's symbol table once (cached for the process).
    reg.load_library(&obj).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reg.libraries().len(), 1);
    reg.unload_library(&obj).unwrap_or_else(|e| panic!("{e}"));

    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        reg.load_library(&obj).unwrap_or_else(|e| panic!("{e}"));
        times.push(t.elapsed());
        reg.unload_library(&obj).unwrap_or_else(|e| panic!("{e}"));
    }
    times.sort();
    let median = times[times.len() / 2];
    let best = times[0];
    println!(
        "objload: {RELOCATIONS} relocations, {FUNCTIONS} functions, size {} bytes",
        std::fs::metadata(&obj).map(|m| m.len()).unwrap_or(0)
    );
    println!("  load+relocate+protect (read file, parse, resolve, map, relocate, seal), 30 runs:");
    println!(
        "  median {:.2} ms  best {:.2} ms",
        median.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e3
    );
    println!(
        "  throughput: {:.1} M relocations/s (median), {:.1} M/s (best)",
        RELOCATIONS as f64 / median.as_secs_f64() / 1e6,
        RELOCATIONS as f64 / best.as_secs_f64() / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
}
