//! Compiles every fixture of `fixtures/` in every variant into `$OUT_DIR/fixtures/`.
//!
//! Generates two files that the crate `include!`s:
//! - `fixtures.rs`: the table of built fixtures (name, variant, path, role);
//! - `fixture_tests.rs`: one `#[test]` per differential fixture and variant, calling
//!   `check(name, variant)`, which each integration test file defines for its loader.
//!
//! Variants: C as glibc `-static`, `-static-pie` and dynamically linked PIE (through
//! ld.so, the program's PT_INTERP), and musl `-static` when `musl-gcc` runs; C++ as glibc
//! `-static`, `-static-pie` and dynamic when `g++` runs; freestanding code
//! (no libc) as `-static` and `-static-pie`. A missing optional compiler is reported
//! with `cargo:warning` and its variants are left out; a missing `gcc`, or any compile
//! error, fails the build. The compilers are run by `uexec-cbuild`, shared with uexec-bench.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use uexec_cbuild::{compile_all, runs, Compile};

/// What a fixture is written in, which decides its variants.
#[derive(Clone, Copy)]
enum Lang {
    /// C against libc: glibc static, glibc static-pie, musl static.
    C,
    /// C++ against glibc: static, static-pie.
    Cxx,
    /// Freestanding C/assembly, no libc: static, static-pie.
    NoLibc,
    /// Freestanding, linked at the loaders' own address: static only.
    FixedAddr,
}

/// How the tests use a fixture.
#[derive(Clone, Copy)]
enum Role {
    /// Run natively and under each loader; stdout and status must match.
    Diff,
    /// Must be refused by the loaders (see `fixed_addr.c`).
    Refused,
    /// Differential, but too slow to run under every loader and policy: listed as `Role::Diff`,
    /// with no generated test; a test file of its own runs it in a few configurations.
    Alone,
}

struct Spec {
    name: &'static str,
    sources: &'static [&'static str],
    lang: Lang,
    role: Role,
    /// Extra compiler flags for every variant.
    flags: &'static [&'static str],
}

const SPECS: &[Spec] = &[
    Spec {
        name: "auxv_dump",
        sources: &["auxv_dump.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "entry_probe",
        sources: &["entry_probe.S", "entry_probe_report.c"],
        lang: Lang::NoLibc,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "malloc",
        sources: &["malloc.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "bigbss",
        sources: &["bigbss.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "bss_scan",
        sources: &["bss_scan.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "data_bss",
        sources: &["data_bss.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "tls_threads",
        sources: &["tls_threads.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &["-pthread"],
    },
    Spec {
        name: "exceptions",
        sources: &["exceptions.cc"],
        lang: Lang::Cxx,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "fault",
        sources: &["fault.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    // The demand-paging traps of the dpager/hpager issue.
    Spec {
        name: "relro",
        sources: &["relro.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "threads_untouched",
        sources: &["threads_untouched.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &["-pthread"],
    },
    Spec {
        name: "masked_fault",
        sources: &["masked_fault.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &["-pthread"],
    },
    Spec {
        name: "sigsegv_recover",
        sources: &["sigsegv_recover.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "kernel_touch",
        sources: &["kernel_touch.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "fork_touch",
        sources: &["fork_touch.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "small_stacks",
        sources: &["small_stacks.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &["-pthread"],
    },
    Spec {
        name: "exec_refused",
        sources: &["exec_refused.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "mremap_untouched",
        sources: &["mremap_untouched.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "spawn_twice",
        sources: &["spawn_twice.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    Spec {
        name: "mm_untouched",
        sources: &["mm_untouched.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &[],
    },
    // Pagers and vm.max_map_count (issue 8).
    Spec {
        name: "scattered_bss",
        sources: &["scattered_bss.c"],
        lang: Lang::C,
        role: Role::Alone,
        flags: &[],
    },
    Spec {
        name: "scattered_threads",
        sources: &["scattered_threads.c"],
        lang: Lang::C,
        role: Role::Alone,
        flags: &["-pthread"],
    },
    Spec {
        name: "sparse_bss",
        sources: &["sparse_bss.c"],
        lang: Lang::C,
        role: Role::Diff,
        flags: &["-Wl,--section-start=.hugebss=0x40000000"],
    },
    Spec {
        name: "map_limit",
        sources: &["map_limit.c"],
        lang: Lang::C,
        role: Role::Alone,
        flags: &[],
    },
    // Checkpoint and restart (issue 9): run by tests/checkpoint.rs.
    Spec {
        name: "ckpt_counter",
        sources: &["ckpt_counter.c"],
        lang: Lang::C,
        role: Role::Alone,
        flags: &["-pthread"],
    },
    Spec {
        name: "ckpt_regs",
        sources: &["ckpt_regs.c"],
        lang: Lang::C,
        role: Role::Alone,
        flags: &[],
    },
    Spec {
        name: "ckpt_big",
        sources: &["ckpt_big.c"],
        lang: Lang::C,
        role: Role::Alone,
        flags: &[],
    },
    // System calls that reach their buffers through memory (issue 8): run case by case by
    // tests/indirect_calls.rs.
    Spec {
        name: "indirect_calls",
        sources: &["indirect_calls.c"],
        lang: Lang::C,
        role: Role::Alone,
        flags: &[],
    },
    // The first calls of a program, served under syscall user dispatch before the pagers' filter
    // exists (issue 8): run case by case by tests/early_calls.rs.
    Spec {
        name: "early_calls",
        sources: &["early_calls.c"],
        lang: Lang::C,
        role: Role::Alone,
        flags: &["-pthread"],
    },
    // Where the break starts (tests/randomization.rs).
    Spec {
        name: "brk_offset",
        sources: &["brk_offset.c"],
        lang: Lang::C,
        role: Role::Alone,
        flags: &[],
    },
    Spec {
        name: "fixed_addr",
        sources: &["fixed_addr.c"],
        lang: Lang::FixedAddr,
        role: Role::Refused,
        flags: &["-Wl,-Ttext-segment=0x3c0000000000"],
    },
];

/// Flags shared by every build: the brief's `-O2 -g`, warnings on.
const COMMON: &[&str] = &["-O2", "-g", "-Wall", "-Wextra"];

/// Flags for code that runs without libc: no calls gcc might invent (memset, memcpy,
/// the stack protector's `__stack_chk_fail`), no start files.
const FREESTANDING: &[&str] = &[
    "-ffreestanding",
    "-fno-builtin",
    "-fno-stack-protector",
    "-fno-tree-loop-distribute-patterns",
    "-nostdlib",
];

struct Job {
    name: &'static str,
    variant: &'static str,
    role: Role,
    compile: Compile,
}

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src_dir = manifest.join("../../fixtures");
    let src_dir = src_dir.canonicalize().unwrap_or(src_dir);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let bin_dir = out_dir.join("fixtures");
    fs::create_dir_all(&bin_dir).expect("create $OUT_DIR/fixtures");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", src_dir.display());
    println!("cargo:rerun-if-env-changed=PATH");

    assert!(
        runs("gcc"),
        "difftest: `gcc` is needed to build the fixtures"
    );
    let have_musl = runs("musl-gcc");
    let have_gxx = runs("g++");
    if !have_musl {
        println!("cargo:warning=musl-gcc not found: musl variants of the fixtures are not built");
    }
    if !have_gxx {
        println!("cargo:warning=g++ not found: C++ fixtures are not built");
    }

    let mut jobs = Vec::new();
    for spec in SPECS {
        for s in spec.sources {
            println!("cargo:rerun-if-changed={}", src_dir.join(s).display());
        }
        // (variant, compiler, variant flags)
        let variants: Vec<(&'static str, &'static str, Vec<&'static str>)> = match spec.lang {
            Lang::C => {
                let mut v = vec![
                    ("glibc-static", "gcc", vec!["-static"]),
                    ("glibc-static-pie", "gcc", vec!["-static-pie", "-fPIE"]),
                    ("glibc-dynamic", "gcc", vec!["-pie", "-fPIE"]),
                ];
                if have_musl {
                    v.push(("musl-static", "musl-gcc", vec!["-static"]));
                }
                v
            }
            Lang::Cxx if have_gxx => vec![
                ("glibc-static", "g++", vec!["-static"]),
                ("glibc-static-pie", "g++", vec!["-static-pie", "-fPIE"]),
                ("glibc-dynamic", "g++", vec!["-pie", "-fPIE"]),
            ],
            Lang::Cxx => vec![],
            Lang::NoLibc => {
                let mut st = FREESTANDING.to_vec();
                st.push("-static");
                let mut pie = FREESTANDING.to_vec();
                pie.extend(["-static-pie", "-fPIE"]);
                vec![
                    ("nolibc-static", "gcc", st),
                    ("nolibc-static-pie", "gcc", pie),
                ]
            }
            Lang::FixedAddr => {
                let mut st = FREESTANDING.to_vec();
                st.push("-static");
                vec![("nolibc-static", "gcc", st)]
            }
        };
        for (variant, compiler, vflags) in variants {
            let mut compile =
                Compile::new(compiler, bin_dir.join(format!("{}.{}", spec.name, variant)))
                    .flags(COMMON)
                    .flags(&vflags)
                    .flags(spec.flags);
            for s in spec.sources {
                compile = compile.source(src_dir.join(s));
            }
            jobs.push(Job {
                name: spec.name,
                variant,
                role: spec.role,
                compile,
            });
        }
    }

    let compiles: Vec<Compile> = jobs.iter().map(|j| j.compile.clone()).collect();
    compile_all("difftest: fixture build failed", &compiles);
    write_tables(&jobs, &out_dir);
}

fn write_tables(jobs: &[Job], out_dir: &Path) {
    let mut table = String::from("/// Every fixture built by build.rs, in build order.\npub const FIXTURES: &[Fixture] = &[\n");
    let mut tests = String::new();
    for job in jobs {
        let role = match job.role {
            Role::Diff | Role::Alone => "Role::Diff",
            Role::Refused => "Role::Refused",
        };
        let _ = writeln!(
            table,
            "    Fixture {{ name: {:?}, variant: {:?}, path: {:?}, role: {role} }},",
            job.name,
            job.variant,
            job.compile.output.display().to_string()
        );
        if let Role::Diff = job.role {
            let fn_name = format!("{}_{}", job.name, job.variant).replace('-', "_");
            let _ = writeln!(
                tests,
                "#[test]\nfn {fn_name}() {{\n    check({:?}, {:?});\n}}\n",
                job.name, job.variant
            );
        }
    }
    table.push_str("];\n");
    fs::write(out_dir.join("fixtures.rs"), table).expect("write fixtures.rs");
    fs::write(out_dir.join("fixture_tests.rs"), tests).expect("write fixture_tests.rs");
}
