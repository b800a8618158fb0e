//! Start-up: `objrun hello.o` against `tcc -run hello.c` on the same C source (and the gcc-linked
//! executable as a floor). Each is spawned repeatedly with its output discarded; reports the mean and
//! median wall time per run. Run with `cargo bench -p objtools` (needs gcc and tcc).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 200;

fn time(label: &str, mut cmd: Command) -> Option<Duration> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    match cmd.status() {
        Ok(s) if s.success() => {}
        other => {
            println!("  {label:<28} unavailable ({other:?})");
            return None;
        }
    }
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let ok = cmd.status().is_ok_and(|s| s.success());
        times.push(t.elapsed());
        assert!(ok, "{label} failed");
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / RUNS as u32;
    let median = times[RUNS / 2];
    println!(
        "  {label:<28} mean {:>7.3} ms   median {:>7.3} ms",
        mean.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3
    );
    Some(median)
}

fn main() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../objload/fixtures/hello.c");
    let dir = std::env::temp_dir().join(format!("objtools-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let obj = dir.join("hello.o");
    let exe = dir.join("hello");
    for (args, out) in [(&["-O2", "-c"][..], &obj), (&["-O2"][..], &exe)] {
        let st = Command::new("gcc")
            .args(args)
            .arg(&src)
            .arg("-o")
            .arg(out)
            .status();
        assert!(st.is_ok_and(|s| s.success()), "gcc failed");
    }
    println!("start-up of hello world, {RUNS} runs each:");
    let mut objrun = Command::new(env!("CARGO_BIN_EXE_objrun"));
    objrun.arg(&obj);
    let o = time("objrun hello.o", objrun);
    let mut tcc = Command::new("tcc");
    tcc.arg("-run").arg(&src);
    let t = time("tcc -run hello.c", tcc);
    time("native (gcc -O2) ./hello", Command::new(&exe));
    if let (Some(o), Some(t)) = (o, t) {
        println!(
            "  objrun / tcc -run (median): {:.2}x",
            o.as_secs_f64() / t.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
