//! Test support: builds the C fixtures with gcc (and archives with `ar rcs`) into the target's temporary
//! directory. Expected results never come from the code under test: they are written in the tests or come
//! from running the same sources linked natively by gcc.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every flag set the loader must handle, as the issue lists them.
pub const FLAG_SETS: &[&[&str]] = &[
    &[],
    &["-fPIC"],
    &["-fno-plt"],
    &["-fPIC", "-fno-plt"],
    &["-mcmodel=large"],
    &["-mcmodel=large", "-fPIC"],
];
pub const OPT_LEVELS: &[&str] = &["-O0", "-O1", "-O2", "-O3"];

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("objload-fixtures");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn tag(flags: &[&str]) -> String {
    let t: String = flags
        .iter()
        .map(|f| f.trim_start_matches('-').replace(['=', '-'], ""))
        .collect::<Vec<_>>()
        .join("_");
    if t.is_empty() {
        "default".into()
    } else {
        t
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Publishes `tmp` as `dest` atomically, so that tests compiling the same fixture in parallel never see a
/// half-written file.
fn publish(tmp: &Path, dest: &Path) {
    std::fs::rename(tmp, dest).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}

fn unique(dest: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    dest.with_extension(format!("tmp{}-{n}", std::process::id()))
}

/// Compiles `fixtures/<src>` (C or assembly) with `flags` into an object; returns its path.
pub fn object(src: &str, flags: &[&str]) -> PathBuf {
    let stem = Path::new(src)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(src);
    let dest = out_dir().join(format!("{stem}.{}.o", tag(flags)));
    let tmp = unique(&dest);
    run(Command::new("gcc")
        .args(flags)
        .arg("-c")
        .arg(fixtures().join(src))
        .arg("-o")
        .arg(&tmp));
    publish(&tmp, &dest);
    dest
}

/// Builds an archive named `name` of `objects` with `ar rcs`.
pub fn archive(name: &str, objects: &[PathBuf]) -> PathBuf {
    let dest = out_dir().join(name);
    let tmp = unique(&dest);
    let _ = std::fs::remove_file(&tmp);
    run(Command::new("ar").arg("rcs").arg(&tmp).args(objects));
    publish(&tmp, &dest);
    dest
}

/// Links `srcs` natively with gcc into an executable named `name`.
pub fn native(name: &str, srcs: &[&str], flags: &[&str]) -> PathBuf {
    let dest = out_dir().join(format!("{name}.{}", tag(flags)));
    let tmp = unique(&dest);
    let mut cmd = Command::new("gcc");
    cmd.args(flags)
        .args(srcs.iter().map(|s| fixtures().join(s)))
        .arg("-o")
        .arg(&tmp);
    run(&mut cmd);
    publish(&tmp, &dest);
    dest
}

/// Writes `text` as `fixtures`-independent source `name` in the output directory and compiles it.
pub fn object_from_source(name: &str, text: &str, flags: &[&str]) -> PathBuf {
    let src = out_dir().join(name);
    let tmp = unique(&src);
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{e}"));
    publish(&tmp, &src);
    let dest = src.with_extension("o");
    let tmp = unique(&dest);
    run(Command::new("gcc")
        .args(flags)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&tmp));
    publish(&tmp, &dest);
    dest
}

/// A scratch path for one test.
pub fn scratch(name: &str) -> PathBuf {
    out_dir().join(format!("{name}.{}", std::process::id()))
}
