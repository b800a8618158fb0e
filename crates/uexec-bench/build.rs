//! Compiles the workload programs of `workloads/` (and `bss_scan.c`, whose one copy lives with the
//! differential tests' fixtures in `fixtures/` at the workspace root) into `$OUT_DIR/workloads/` and
//! writes `$OUT_DIR/workloads.rs`, the table of what was built, which `src/workloads.rs` includes.
//!
//! Every program is static (no `PT_INTERP`): the loaders' cost is what is measured, not the
//! dynamic linker's. `gcc` is required (a compile error fails the build); a missing
//! `musl-gcc` only leaves the musl hello out, with a `cargo:warning`. The compilers are run by
//! `uexec-cbuild`, shared with difftest.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use uexec_cbuild::{compile_all, runs, Compile};

/// Where a workload's source is.
#[derive(Clone, Copy)]
enum Dir {
    /// `crates/uexec-bench/workloads/`.
    Workloads,
    /// `fixtures/` at the workspace root, shared with crates/difftest.
    Fixtures,
}

/// One program to build: its name in the benchmark, compiler, source and flags.
struct Build {
    name: &'static str,
    compiler: &'static str,
    dir: Dir,
    source: &'static str,
    flags: &'static [&'static str],
    optional: bool,
}

const COMMON: &[&str] = &["-O2", "-Wall", "-Wextra", "-Werror"];

const BUILDS: &[Build] = &[
    Build {
        name: "hello-glibc",
        compiler: "gcc",
        dir: Dir::Workloads,
        source: "hello.c",
        flags: &["-static"],
        optional: false,
    },
    Build {
        name: "hello-nostdlib",
        compiler: "gcc",
        dir: Dir::Workloads,
        source: "hello_nostdlib.c",
        // No libc, no start files, and nothing gcc might call behind our back.
        flags: &[
            "-static",
            "-nostdlib",
            "-ffreestanding",
            "-fno-stack-protector",
            "-fno-builtin",
        ],
        optional: false,
    },
    Build {
        name: "hello-musl",
        compiler: "musl-gcc",
        dir: Dir::Workloads,
        source: "hello.c",
        flags: &["-static"],
        optional: true,
    },
    Build {
        name: "bss-scan",
        compiler: "gcc",
        dir: Dir::Fixtures,
        source: "bss_scan.c",
        flags: &["-static"],
        optional: false,
    },
    // The same scans over a 32 MiB bss: what `--quick` runs, so that it finishes in well under a
    // minute with every configuration kept.
    Build {
        name: "bss-scan-quick",
        compiler: "gcc",
        dir: Dir::Fixtures,
        source: "bss_scan.c",
        flags: &["-static", "-DSCAN_MIB=32"],
        optional: false,
    },
];

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bin = out.join("workloads");
    fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("creating {}: {e}", bin.display()));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PATH");

    let mut table = String::from("/// The workload programs built by build.rs: (name, path).\n");
    table.push_str("pub const BUILT: &[(&str, &str)] = &[\n");
    let mut jobs = Vec::new();
    for b in BUILDS {
        let dir = match b.dir {
            Dir::Workloads => manifest.join("workloads"),
            Dir::Fixtures => manifest.join("../../fixtures"),
        };
        let source = dir.join(b.source);
        println!("cargo:rerun-if-changed={}", source.display());
        if b.optional && !runs(b.compiler) {
            println!(
                "cargo:warning={} not found: the {} workload is left out",
                b.compiler, b.name
            );
            continue;
        }
        let target = bin.join(b.name);
        jobs.push(
            Compile::new(b.compiler, &target)
                .flags(COMMON)
                .flags(b.flags)
                .source(&source),
        );
        writeln!(
            table,
            "    ({:?}, {:?}),",
            b.name,
            target.display().to_string()
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    compile_all("uexec-bench: workload build failed", &jobs);
    let generated = out.join("workloads.rs");
    fs::write(&generated, table).unwrap_or_else(|e| panic!("writing {}: {e}", generated.display()));
}
