//! Checkpoint and restart of a program with a large touched heap (fixtures/ckpt_big.c), against
//! copying the image file with `cp` on the same file system, page cache warm (issue 9). Rounds
//! alternate the configurations; medians are reported, and ratios to the copy's median of the same run
//! (absolute times drift between runs and machines).
//!
//! `cargo bench -p difftest --bench checkpoint [-- MiB [ROUNDS [DIR]]]` (default 1024 MiB, 5 rounds,
//! `$TMPDIR`). Needs `make loaders`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use difftest::{fixture, require_loader};

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn wait_line(reader: &mut impl BufRead, want: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no {want:?} line");
        if line.starts_with(want) {
            return;
        }
    }
}

/// Seconds from the checkpoint signal to the image's appearance (the program is started and fills its
/// heap before the clock starts).
fn checkpoint(apager: &Path, program: &Path, mib: &str, image: &Path) -> f64 {
    let _ = std::fs::remove_file(image);
    let mut child = Command::new(apager)
        .args(["-q", "--ckpt-image"])
        .arg(image)
        .arg(program)
        .arg(mib)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    wait_line(&mut out, "ready");
    let start = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { kill(child.id() as i32, 12) };
    while !image.exists() {
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = start.elapsed().as_secs_f64();
    child.kill().unwrap();
    child.wait().unwrap();
    took
}

/// Seconds from starting urestart to the restarted program's first line; then lets it check its heap.
fn restart(urestart: &Path, lazy: bool, image: &Path) -> f64 {
    let start = Instant::now();
    let mut cmd = Command::new(urestart);
    if lazy {
        cmd.arg("--lazy");
    }
    let mut child = cmd.arg(image).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    wait_line(&mut out, "resumed");
    let took = start.elapsed().as_secs_f64();
    wait_line(&mut out, "heap_ok=1");
    assert!(child.wait().unwrap().success());
    took
}

fn copy(image: &Path, dir: &Path) -> f64 {
    let copy = dir.join("copy");
    // Warm the page cache for the source, as for the restart.
    let _ = std::fs::read(image);
    let start = Instant::now();
    assert!(Command::new("cp")
        .arg(image)
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    let took = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(copy);
    took
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mib = args.first().cloned().unwrap_or_else(|| "1024".into());
    let rounds: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
    let dir = args
        .get(2)
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join("uexec-ckpt-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("image");
    let apager = require_loader("apager");
    let urestart = require_loader("urestart");
    let program = PathBuf::from(fixture("ckpt_big", "glibc-static").path);
    let (mut ck, mut cp, mut eager, mut lazy) = (vec![], vec![], vec![], vec![]);
    // Each timed write starts with no dirty pages left by the one before (`sync`), so that neither
    // pays for the other's writeback.
    let sync = || {
        let _ = Command::new("sync").status();
    };
    for round in 0..rounds {
        sync();
        ck.push(checkpoint(&apager, &program, &mib, &image));
        sync();
        cp.push(copy(&image, &dir));
        eager.push(restart(&urestart, false, &image));
        lazy.push(restart(&urestart, true, &image));
        eprintln!(
            "round {}/{rounds}: checkpoint {:.3} s, cp {:.3} s, restart {:.3} s, --lazy {:.4} s",
            round + 1,
            ck[round],
            cp[round],
            eager[round],
            lazy[round]
        );
    }
    let size = std::fs::metadata(&image).map_or(0, |m| m.len());
    let (ck, cp, eager, lazy) = (
        median(&mut ck),
        median(&mut cp),
        median(&mut eager),
        median(&mut lazy),
    );
    println!("checkpoint of {mib} MiB touched heap, image {size} bytes, in {}, {rounds} rounds (medians):", dir.display());
    println!("  cp of the image        {cp:8.3} s   1.00x");
    println!("  checkpoint (apager)    {ck:8.3} s   {:.2}x cp", ck / cp);
    println!(
        "  restart (urestart)     {eager:8.3} s   {:.2}x cp",
        eager / cp
    );
    println!(
        "  restart --lazy         {:8.2} ms  (to the program's first line)",
        lazy * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
}
