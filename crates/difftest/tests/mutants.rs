//! Differential fuzzing of the loaders' acceptance (issue 10): mutants of built fixtures (header and
//! program-header fields set to edge values, bytes flipped, files cut short) are run natively, by a
//! bare `execve`, and under apager and dpager, as every user. The kernel is the reference: a mutant the
//! kernel runs must not be refused by a loader, and one it refuses must be refused. Whether a mutant
//! that runs then prints or crashes is not compared here (a random entry point may crash differently
//! from run to run); the other differential tests compare that for every fixture.
//!
//! Where the kernel's `execve` succeeds on bad input (a segment past the end of the file, the wrong
//! class, an entry point in kernel space, ...) and the process then dies, uexec refuses the file with
//! one line and exit 126, by decision ([`DECISIONS`], docs/load-plan.md): those are counted and
//! printed, not findings. Every other difference is one, in both directions.
//!
//! `UEXEC_MUTANTS=N` sets the number of mutants per seed program (default 60, about half a
//! minute); `UEXEC_MUTANTS_SEED=S` the PRNG seed (default 1). A finding prints the seed and index,
//! and the mutant stays in the scratch directory to replay.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use difftest::{command_for, fixture, identities, require_loader, scratch_dir, As, ENV};

/// How long a mutant may run before it is killed (a mutated entry point may loop).
const PATIENCE: Duration = Duration::from_secs(5);
const PHDR: usize = 56;

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How a run ended, as far as this test compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// The kernel's `execve` failed with this errno, or the loader refused with exit 126/127 and this
    /// line.
    Refused(String),
    /// The program started (whatever it then did).
    Ran(String),
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A value at an edge for a field that held `old` in a file of `len` bytes.
fn edge(rng: &mut Rng, old: u64, len: u64) -> u64 {
    match rng.below(14) {
        0 => 0,
        1 => 1,
        2 => old.wrapping_add(1),
        3 => old.wrapping_sub(1),
        4 => old.wrapping_add(0x1000),
        5 => old.wrapping_mul(2),
        6 => len,
        7 => len + 0x1000,
        8 => 1 << 47,
        9 => (1 << 47) - 0x1000,
        10 => u64::MAX,
        11 => 1 << 63,
        12 => rng.below(0x10000),
        _ => rng.next(),
    }
}

fn put(elf: &mut [u8], at: usize, size: usize, value: u64) {
    if let Some(dest) = elf.get_mut(at..at + size) {
        dest.copy_from_slice(&value.to_le_bytes()[..size]);
    }
}

fn get(elf: &[u8], at: usize, size: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = elf.get(at..at + size) {
        b[..size].copy_from_slice(src);
    }
    u64::from_le_bytes(b)
}

/// One to three mutations of `elf`.
fn mutate(rng: &mut Rng, elf: &[u8]) -> Vec<u8> {
    // Header fields: (offset, size).
    const HEADER: &[(usize, usize)] = &[
        (0x10, 2), // e_type
        (0x12, 2), // e_machine
        (0x14, 4), // e_version
        (0x18, 8), // e_entry
        (0x20, 8), // e_phoff
        (0x34, 2), // e_ehsize
        (0x36, 2), // e_phentsize
        (0x38, 2), // e_phnum
    ];
    // Program-header fields: (offset, size).
    const PH: &[(usize, usize)] = &[
        (0, 4),  // p_type
        (4, 4),  // p_flags
        (8, 8),  // p_offset
        (16, 8), // p_vaddr
        (32, 8), // p_filesz
        (40, 8), // p_memsz
        (48, 8), // p_align
    ];
    let mut out = elf.to_vec();
    let len = out.len() as u64;
    let phoff = get(elf, 0x20, 8) as usize;
    let phnum = get(elf, 0x38, 2) as usize;
    for _ in 0..1 + rng.below(3) {
        match rng.below(10) {
            0..=1 => {
                let (at, size) = HEADER[rng.below(HEADER.len() as u64) as usize];
                let v = edge(rng, get(&out, at, size), len);
                put(&mut out, at, size, v);
            }
            2..=6 => {
                let ph = phoff + PHDR * rng.below(phnum as u64) as usize;
                let (at, size) = PH[rng.below(PH.len() as u64) as usize];
                let v = if at == 0 {
                    // A known type more often than not: PT_NULL, LOAD, DYNAMIC, INTERP, NOTE, PHDR, TLS, GNU_STACK.
                    [0, 1, 2, 3, 4, 6, 7, 0x6474_e551][rng.below(8) as usize]
                } else {
                    edge(rng, get(&out, ph + at, size), len)
                };
                put(&mut out, ph + at, size, v);
            }
            7 => {
                // e_ident: class, data, version, OS ABI.
                let at = 4 + rng.below(4) as usize;
                out[at] = rng.below(4) as u8;
            }
            8 => {
                let at = rng.below((phoff + PHDR * phnum).min(out.len()) as u64) as usize;
                out[at] ^= 1 << rng.below(8);
            }
            _ => {
                let cut = rng.below(out.len() as u64) as usize;
                out.truncate(cut.max(1));
            }
        }
    }
    out
}

/// Reads a child's two streams and waits for it, killing it after [`PATIENCE`].
fn wait(mut child: std::process::Child) -> (std::process::ExitStatus, Vec<u8>) {
    let mut err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    (status, reader.join().unwrap_or_default())
}

/// Runs `path` natively with a bare `execve` (no shell fallback, which `execvp` would add), as `who`.
fn native(who: As, path: &Path) -> Verdict {
    let prog = CString::new(path.as_os_str().as_bytes()).expect("no NUL in the path");
    let argv = [prog.as_ptr(), std::ptr::null()];
    let env: Vec<CString> = ENV
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")).expect("no NUL"))
        .collect();
    let mut envp: Vec<*const CChar> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let drop_privileges = who == As::Nobody;
    let argv_addr = argv.as_ptr() as usize;
    let envp_addr = envp.as_ptr() as usize;
    let mut cmd = Command::new("/nonexistent-never-run");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the child makes only system calls (setgroups, setresgid,
    // setresuid, setrlimit, execve) on values prepared before the fork, which stay alive in the parent
    // until the child has been waited for; on a failed execve the errno goes back to `spawn`.
    unsafe {
        cmd.pre_exec(move || {
            let none = [0u64, 0u64];
            setrlimit(4, &none); // RLIMIT_CORE
            if drop_privileges
                && (setgroups(0, std::ptr::null()) != 0
                    || setresgid(65534, 65534, 65534) != 0
                    || setresuid(65534, 65534, 65534) != 0)
            {
                return Err(std::io::Error::other("cannot become uid 65534"));
            }
            execve(
                prog_ptr(argv_addr),
                argv_addr as *const *const CChar,
                envp_addr as *const *const CChar,
            );
            Err(std::io::Error::last_os_error())
        });
    }
    let verdict = match cmd.spawn() {
        Ok(child) => {
            let (status, _) = wait(child);
            Verdict::Ran(describe(status))
        }
        Err(e) => Verdict::Refused(format!("execve: {e}")),
    };
    drop((argv, env, envp, prog));
    verdict
}

type CChar = std::ffi::c_char;

fn prog_ptr(argv_addr: usize) -> *const CChar {
    // SAFETY: argv_addr is the address of a live [*const c_char; 2] whose first element is the path.
    unsafe { *(argv_addr as *const *const CChar) }
}

extern "C" {
    fn execve(
        path: *const CChar,
        argv: *const *const CChar,
        envp: *const *const CChar,
    ) -> i32;
    fn setrlimit(resource: i32, rlim: *const [u64; 2]) -> i32;
    fn setgroups(size: usize, list: *const u32) -> i32;
    fn setresgid(r: u32, e: u32, s: u32) -> i32;
    fn setresuid(r: u32, e: u32, s: u32) -> i32;
}

fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "?".to_owned(),
    }
}

/// Runs `path` under `loader -q`, as `who`.
fn loaded(who: As, loader: &Path, path: &Path) -> Verdict {
    let child = command_for(who, loader)
        .arg("-q")
        .arg(path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", loader.display()));
    let (status, stderr) = wait(child);
    let stderr = String::from_utf8_lossy(&stderr);
    let first = stderr.lines().next().unwrap_or("").to_owned();
    let name = loader.file_name().unwrap_or_default().to_string_lossy();
    match status.code() {
        Some(126 | 127) if first.starts_with(&format!("{name}:")) => Verdict::Refused(first),
        _ => Verdict::Ran(describe(status)),
    }
}

/// The refusals uexec makes by decision where the kernel's `execve` succeeds (and the process is then
/// usually killed, by SIGSEGV or SIGBUS, before or soon after its first instruction): the brief's bad
/// input (a file cut short or with segments past its end, the wrong class or byte order, impossible
/// sizes and addresses), which gets a one-line error and exit 126 instead of a process that dies.
/// Each is listed in docs/load-plan.md; any other refusal of a file the kernel runs is a finding.
const DECISIONS: &[(&str, &str)] = &[
    ("lies outside the file", "segment past the end of the file"),
    ("not congruent", "p_vaddr and p_offset differ modulo the page size"),
    ("ELF data encoding", "byte order neither little nor big"),
    ("big-endian", "big-endian byte order"),
    ("ELF files are not supported", "32-bit class"),
    ("invalid ELF class", "class neither 32 nor 64 bits"),
    ("memory size is smaller", "p_memsz below p_filesz"),
    ("kernel space", "segment reaching past TASK_SIZE"),
    ("span more than", "segments spanning more than the address space"),
    ("wraps around", "segment wrapping around the address space"),
    ("entry point is not a user-space address", "entry point past TASK_SIZE"),
    ("no loadable", "no PT_LOAD"),
    ("overlap", "overlapping PT_LOADs"),
    ("out of order", "PT_LOADs out of order"),
    ("cannot map", "a mapping the kernel refuses (below mmap_min_addr, ...)"),
];

/// The decision a refusal line is, if it is one.
fn decision(v: &Verdict) -> Option<&'static str> {
    let Verdict::Refused(line) = v else {
        return None;
    };
    DECISIONS
        .iter()
        .find(|(needle, _)| line.contains(needle))
        .map(|(_, what)| *what)
}

#[test]
fn mutants_are_refused_exactly_when_the_kernel_refuses_them() {
    let count = env_number("UEXEC_MUTANTS", 60);
    let seed = env_number("UEXEC_MUTANTS_SEED", 1);
    let dir = scratch_dir("mutants");
    let loaders: Vec<PathBuf> = ["apager", "dpager"].iter().map(|l| require_loader(l)).collect();
    let mut findings = Vec::new();
    let mut decided = std::collections::BTreeMap::<&str, usize>::new();
    let (mut ran, mut refused) = (0, 0);
    for (name, variant) in [
        ("entry_probe", "nolibc-static"),
        ("entry_probe", "nolibc-static-pie"),
        ("malloc", "glibc-static-pie"),
    ] {
        let original = std::fs::read(fixture(name, variant).path).expect("the fixture");
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for i in 0..count {
            let mutant = mutate(&mut rng, &original);
            let path = dir.join(format!("{name}-{variant}-{seed}-{i}"));
            std::fs::write(&path, &mutant).expect("write the mutant");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            let mut keep = false;
            for &who in identities() {
                let reference = native(who, &path);
                match reference {
                    Verdict::Ran(_) => ran += 1,
                    Verdict::Refused(_) => refused += 1,
                }
                for loader in &loaders {
                    let got = loaded(who, loader, &path);
                    let same_kind = matches!(
                        (&reference, &got),
                        (Verdict::Ran(_), Verdict::Ran(_)) | (Verdict::Refused(_), Verdict::Refused(_))
                    );
                    let accepted = match (&reference, &got) {
                        (Verdict::Ran(_), Verdict::Refused(_)) => decision(&got),
                        _ => None,
                    };
                    if let Some(what) = accepted {
                        *decided.entry(what).or_insert(0) += 1;
                    } else if !same_kind {
                        keep = true;
                        findings.push(format!(
                            "{} {who}: natively {reference:?}, under {} {got:?}",
                            path.display(),
                            loader.display()
                        ));
                    }
                }
            }
            if !keep {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    eprintln!("mutants: {ran} runs started natively, {refused} refused by the kernel");
    for (what, n) in &decided {
        eprintln!("  refused by decision where the kernel runs it: {what}: {n} loader runs");
    }
    assert!(ran > 0 && refused > 0, "the mutants must exercise both outcomes");
    assert!(
        findings.is_empty(),
        "{} findings (seed {seed}):\n{}",
        findings.len(),
        findings.join("\n")
    );
}
