//! Compiles C, C++ and assembly programs from a build script: the one compile loop that
//! `crates/difftest/build.rs` (the differential fixtures) and `crates/uexec-bench/build.rs` (the
//! benchmark's workloads) share. Each build script says *what* to build (its table of programs,
//! variants and flags) and writes its own generated Rust; this crate runs the compilers.
//!
//! A [`Compile`] is one compiler command line: `COMPILER FLAGS... SOURCES... -o OUTPUT`.
//! [`compile_all`] runs a list of them on as many threads as there are CPUs and panics, as a build
//! script should, with every failure's command line and compiler output (not just the first).
//! [`runs`] tells whether an optional compiler (`musl-gcc`, `g++`) is installed.
//!
//! std only, no dependencies, no unsafe code.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// True if `tool --version` runs and succeeds: the compiler is installed and works.
pub fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// One compiler invocation: `compiler flags... sources... -o output`.
#[derive(Clone, Debug)]
pub struct Compile {
    /// The compiler, looked up in `PATH` (`gcc`, `g++`, `musl-gcc`).
    pub compiler: String,
    /// Every flag, in order, before the sources.
    pub flags: Vec<String>,
    /// The source files, after the flags.
    pub sources: Vec<PathBuf>,
    /// The executable (or object) written.
    pub output: PathBuf,
}

impl Compile {
    /// `compiler` with no flags and no sources, writing `output`.
    pub fn new(compiler: &str, output: impl Into<PathBuf>) -> Compile {
        Compile {
            compiler: compiler.to_owned(),
            flags: Vec::new(),
            sources: Vec::new(),
            output: output.into(),
        }
    }

    /// Appends `flags` to the flags.
    pub fn flags<S: AsRef<str>>(mut self, flags: &[S]) -> Compile {
        self.flags
            .extend(flags.iter().map(|f| f.as_ref().to_owned()));
        self
    }

    /// Appends `source` to the sources.
    pub fn source(mut self, source: impl AsRef<Path>) -> Compile {
        self.sources.push(source.as_ref().to_path_buf());
        self
    }

    /// The command line, as a shell would show it (for messages).
    pub fn command_line(&self) -> String {
        let mut words = vec![self.compiler.clone()];
        words.extend(self.flags.iter().cloned());
        words.extend(self.sources.iter().map(|s| s.display().to_string()));
        words.push("-o".to_owned());
        words.push(self.output.display().to_string());
        words.join(" ")
    }

    /// Runs the compiler once; `Err` holds the command line, the exit status and everything the
    /// compiler printed, or why it could not be started.
    pub fn run(&self) -> Result<(), String> {
        let result = Command::new(&self.compiler)
            .args(&self.flags)
            .args(&self.sources)
            .arg("-o")
            .arg(&self.output)
            .output();
        match result {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "{}: {}\n{}{}",
                self.command_line(),
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Err(format!("cannot run {}: {e}", self.compiler)),
        }
    }
}

/// Runs every job on as many threads as there are CPUs (at most one per job) and returns the
/// failures, one report each, in job order.
pub fn try_compile_all(jobs: &[Compile]) -> Vec<String> {
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::<(usize, String)>::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(jobs.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(job) = jobs.get(i) else { break };
                if let Err(report) = job.run() {
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, report));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    failures.sort_by_key(|(i, _)| *i);
    failures.into_iter().map(|(_, r)| r).collect()
}

/// Runs every job (see [`try_compile_all`]); panics with every failure's report if any failed,
/// `what` naming the build in the message (`"difftest: fixture build failed"`).
#[track_caller]
pub fn compile_all(what: &str, jobs: &[Compile]) {
    let failures = try_compile_all(jobs);
    assert!(failures.is_empty(), "{what}:\n{}", failures.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("uexec-cbuild-test.{}.{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the scratch directory");
        dir
    }

    #[test]
    fn builds_every_job_and_the_programs_run() {
        let dir = scratch("ok");
        let mut jobs = Vec::new();
        for i in 0..3 {
            let src = dir.join(format!("p{i}.c"));
            fs::write(&src, format!("int main(void) {{ return {i}; }}\n")).expect("write");
            jobs.push(
                Compile::new("gcc", dir.join(format!("p{i}")))
                    .flags(&["-O2", "-Wall"])
                    .source(&src),
            );
        }
        assert_eq!(try_compile_all(&jobs), Vec::<String>::new());
        for (i, job) in jobs.iter().enumerate() {
            let status = Command::new(&job.output).status().expect("run the program");
            assert_eq!(status.code(), Some(i as i32));
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reports_every_failure_with_the_compiler_output() {
        let dir = scratch("bad");
        let good = dir.join("good.c");
        let bad = dir.join("bad.c");
        fs::write(&good, "int main(void) { return 0; }\n").expect("write");
        fs::write(&bad, "int main(void) { return not_declared; }\n").expect("write");
        let jobs = [
            Compile::new("gcc", dir.join("bad1")).source(&bad),
            Compile::new("gcc", dir.join("good")).source(&good),
            Compile::new("gcc", dir.join("bad2")).source(&bad),
        ];
        let failures = try_compile_all(&jobs);
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0].contains("bad1"), "{}", failures[0]);
        assert!(failures[1].contains("bad2"), "{}", failures[1]);
        assert!(failures[0].contains("not_declared"), "{}", failures[0]);
        assert!(dir.join("good").is_file());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_compiler_is_a_failure_and_does_not_run() {
        let job = Compile::new("uexec-cbuild-no-such-compiler", "/nonexistent/out");
        let failures = try_compile_all(std::slice::from_ref(&job));
        assert_eq!(failures.len(), 1);
        assert!(failures[0].starts_with("cannot run uexec-cbuild-no-such-compiler"));
        assert!(!runs("uexec-cbuild-no-such-compiler"));
        assert!(
            runs("gcc"),
            "gcc is needed by the workspace's build scripts"
        );
    }

    #[test]
    fn command_line_puts_flags_then_sources_then_output() {
        let job = Compile::new("gcc", "/o/p")
            .flags(&["-O2", "-static"])
            .source("/s/a.c")
            .source("/s/b.S");
        assert_eq!(job.command_line(), "gcc -O2 -static /s/a.c /s/b.S -o /o/p");
    }

    #[test]
    #[should_panic(expected = "fixture build failed")]
    fn compile_all_panics_on_a_failure() {
        compile_all(
            "fixture build failed",
            &[Compile::new(
                "uexec-cbuild-no-such-compiler",
                "/nonexistent/out",
            )],
        );
    }
}
