//! Checkpoint and restart (issue 9): a counting program (fixtures/ckpt_counter.c) is checkpointed
//! mid-run under a loader, killed with SIGKILL, restarted with urestart, and must end with the last
//! line and the file of an uninterrupted run; as root and as uid 65534. Damaged images are refused
//! before anything starts; a multi-threaded program's checkpoint is refused while it runs on.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use difftest::{command_for, fixture, identities, path_as, require_loader, scratch_dir, As};

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
const SIGUSR2: i32 = 12;
const STEPS: &str = "40";
const SLEEP_MS: &str = "15";
/// The step after which the checkpoint signal is sent.
const CKPT_AFTER: &str = "step 5 ";

/// What an uninterrupted native run prints last and leaves in its file.
fn reference(who: As, program: &Path, dir: &Path) -> (String, Vec<u8>) {
    let file = dir.join("reference.txt");
    let out = command_for(who, program)
        .args([STEPS, file.to_str().unwrap(), "0"])
        .output()
        .expect("run the counter natively");
    assert!(out.status.success(), "native run failed: {out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().unwrap().to_owned();
    assert!(last.starts_with("done "), "{last}");
    (last, std::fs::read(&file).unwrap())
}

fn wait_for(path: &Path, child: &mut Child, what: &str) {
    let start = Instant::now();
    while !path.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what}: the program ended ({status}) before {} appeared",
                path.display()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: no image after 20 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `cmd`, waits for the step line, sends the checkpoint signal, waits for the image, and
/// kills the process. Returns the lines printed.
fn checkpoint_and_kill(mut cmd: std::process::Command, image: &Path, what: &str) -> Vec<String> {
    let _ = std::fs::remove_file(image);
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("{what}: output ended before {CKPT_AFTER:?}: {lines:?}, stderr {err}");
        }
        let at = line.starts_with(CKPT_AFTER);
        lines.push(line);
        if at {
            break;
        }
    }
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { kill(child.id() as i32, SIGUSR2) }, 0);
    wait_for(image, &mut child, what);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{what}: {status}"
    );
    lines
}

/// Restarts `image` with urestart (as `who`) to the end; returns its stdout, stderr and status.
fn restart(who: As, image: &Path) -> std::process::Output {
    let urestart = require_loader("urestart");
    command_for(who, &urestart)
        .arg(image)
        .output()
        .expect("run urestart")
}

struct Setup {
    who: As,
    program: PathBuf,
    dir: PathBuf,
    file: PathBuf,
    image: PathBuf,
}

fn setup(who: As, variant: &str, name: &str) -> Setup {
    let dir = scratch_dir(&format!(
        "ckpt-{name}-{variant}-{}",
        matches!(who, As::Nobody)
    ));
    let program = path_as(who, Path::new(fixture("ckpt_counter", variant).path));
    Setup {
        who,
        file: dir.join("counter.txt"),
        image: dir.join("image"),
        program,
        dir,
    }
}

fn counter_under(s: &Setup, loader: &str) -> std::process::Command {
    let loader = require_loader(loader);
    let mut cmd = command_for(s.who, &loader);
    cmd.arg("-q")
        .arg("--ckpt-image")
        .arg(&s.image)
        .arg(&s.program)
        .args([STEPS, s.file.to_str().unwrap(), SLEEP_MS]);
    cmd
}

fn check_restart(s: &Setup, what: &str, reference: &(String, Vec<u8>)) {
    let out = restart(s.who, &s.image);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: urestart {}: stdout {stdout} stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let first = stdout.lines().next().unwrap_or("");
    assert!(
        first.starts_with("step ") && !first.starts_with("step 1 "),
        "{what}: the restarted run must go on mid-way, not start over: {first}"
    );
    assert_eq!(
        stdout.lines().last().unwrap_or(""),
        reference.0,
        "{what}: last line"
    );
    assert_eq!(
        std::fs::read(&s.file).unwrap(),
        reference.1,
        "{what}: the file differs from an uninterrupted run's"
    );
}

fn round_trip(loader: &str, variant: &str) {
    for &who in identities() {
        let s = setup(who, variant, loader);
        let reference = reference(who, &s.program, &s.dir);
        let what = format!("{loader} {variant} {who}");
        checkpoint_and_kill(counter_under(&s, loader), &s.image, &what);
        check_restart(&s, &what, &reference);
    }
}

#[test]
fn apager_glibc_static_round_trip() {
    round_trip("apager", "glibc-static");
}

#[test]
fn apager_glibc_static_pie_round_trip() {
    round_trip("apager", "glibc-static-pie");
}

#[test]
fn apager_glibc_dynamic_round_trip() {
    round_trip("apager", "glibc-dynamic");
}

#[test]
fn apager_musl_static_round_trip() {
    if difftest::variants("ckpt_counter").any(|f| f.variant == "musl-static") {
        round_trip("apager", "musl-static");
    }
}

#[test]
fn dpager_glibc_static_round_trip() {
    round_trip("dpager", "glibc-static");
}

#[test]
fn dpager_glibc_dynamic_round_trip() {
    round_trip("dpager", "glibc-dynamic");
}

#[test]
fn hpager_glibc_static_pie_round_trip() {
    round_trip("hpager", "glibc-static-pie");
}

#[test]
fn hpager_musl_static_round_trip() {
    if difftest::variants("ckpt_counter").any(|f| f.variant == "musl-static") {
        round_trip("hpager", "musl-static");
    }
}

/// A dynamically linked build started natively with `LD_PRELOAD=libuexec_ckpt.so`, the image path
/// and signal from the environment.
#[test]
fn preload_round_trip() {
    let library = require_loader("libuexec_ckpt.so");
    for &who in identities() {
        let s = setup(who, "glibc-dynamic", "preload");
        let reference = reference(who, &s.program, &s.dir);
        let what = format!("LD_PRELOAD {who}");
        let mut cmd = command_for(who, &s.program);
        cmd.env("LD_PRELOAD", path_as(who, &library))
            .env("UEXEC_CKPT_IMAGE", &s.image)
            .env("UEXEC_CKPT_SIGNAL", "SIGUSR2")
            .args([STEPS, s.file.to_str().unwrap(), SLEEP_MS]);
        checkpoint_and_kill(cmd, &s.image, &what);
        check_restart(&s, &what, &reference);
    }
}

/// `urestart --lazy`: the restarted program's pages are mappings of the image file (read on first
/// touch), and it ends as an uninterrupted run does.
#[test]
fn lazy_restart_maps_the_image_and_finishes_the_same() {
    for &who in identities() {
        let s = setup(who, "glibc-static", "lazy");
        let reference = reference(who, &s.program, &s.dir);
        let what = format!("--lazy {who}");
        checkpoint_and_kill(counter_under(&s, "apager"), &s.image, &what);
        let mut child = command_for(who, &require_loader("urestart"))
            .arg("--lazy")
            .arg(&s.image)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap();
        let image = s.image.to_str().unwrap();
        assert!(
            maps.lines().any(|l| l.ends_with(image)),
            "{what}: no mapping of {image} in\n{maps}"
        );
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert!(child.wait().unwrap().success(), "{what}");
        assert!(
            first.starts_with("step ") && !first.starts_with("step 1 "),
            "{what}: {first}"
        );
        assert_eq!(rest.lines().last().unwrap_or(""), reference.0, "{what}");
        assert_eq!(std::fs::read(&s.file).unwrap(), reference.1, "{what}: file");
    }
}

/// Checkpoint, kill, restart, checkpoint the restarted program, kill, restart again.
#[test]
fn two_cycles_under_apager() {
    for &who in identities() {
        let s = setup(who, "glibc-static", "cycles");
        let reference = reference(who, &s.program, &s.dir);
        let what = format!("two cycles {who}");
        checkpoint_and_kill(counter_under(&s, "apager"), &s.image, &what);
        // The restarted run prints from step 6 on: checkpoint it at step 10, into the image path
        // again (--ckpt-image), restarting from a copy of the first image.
        let image_first = s.dir.join("first-image");
        std::fs::rename(&s.image, &image_first).unwrap();
        let mut again = command_for(who, &require_loader("urestart"));
        again.arg("--ckpt-image").arg(&s.image).arg(&image_first);
        let mut child = again.stdout(Stdio::piped()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("step 10 ") {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "{what}: ended early"
            );
        }
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { kill(child.id() as i32, SIGUSR2) }, 0);
        wait_for(&s.image, &mut child, &what);
        child.kill().unwrap();
        child.wait().unwrap();
        let out = restart(who, &s.image);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = stdout.lines().next().unwrap_or("");
        let n: u32 = first
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            n > 10,
            "{what}: second restart resumed at {first:?}, expected after step 10"
        );
        assert_eq!(stdout.lines().last().unwrap_or(""), reference.0, "{what}");
        assert_eq!(std::fs::read(&s.file).unwrap(), reference.1, "{what}: file");
    }
}

/// Checkpointed in the middle of a spin loop that keeps values only in registers (xmm0-15, the x87
/// stack, rbx, r12-r15): the restarted program must find every one of them.
#[test]
fn registers_survive_mid_loop() {
    for loader in ["apager", "hpager"] {
        for &who in identities() {
            let s = setup(who, "glibc-static", &format!("regs-{loader}"));
            let program = path_as(who, Path::new(fixture("ckpt_regs", "glibc-static").path));
            let what = format!("registers {loader} {who}");
            let mut cmd = command_for(who, &require_loader(loader));
            cmd.arg("-q")
                .arg("--ckpt-image")
                .arg(&s.image)
                .arg(&program)
                .arg("8");
            let _ = std::fs::remove_file(&s.image);
            let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            assert_eq!(line, "ready\n", "{what}");
            // Inside the first block's loop (each block spins for tens of milliseconds).
            std::thread::sleep(Duration::from_millis(20));
            // SAFETY: kill(2) on our own child.
            assert_eq!(unsafe { kill(child.id() as i32, SIGUSR2) }, 0);
            wait_for(&s.image, &mut child, &what);
            child.kill().unwrap();
            child.wait().unwrap();
            let out = restart(who, &s.image);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{what}: {stdout}");
            assert!(!stdout.contains("MISMATCH"), "{what}: {stdout}");
            assert_eq!(stdout.lines().last(), Some("done ok=1"), "{what}");
        }
    }
}

/// An O_PATH descriptor (of a regular file: saved, reopened O_PATH, nothing to seek).
#[test]
fn an_o_path_descriptor_is_restored() {
    let s = setup(As::Invoker, "glibc-static", "opath");
    let reference = reference(As::Invoker, &s.program, &s.dir);
    let mut cmd = counter_under(&s, "apager");
    cmd.arg("opath");
    checkpoint_and_kill(cmd, &s.image, "O_PATH");
    check_restart(&s, "O_PATH", &reference);
}

/// A checkpoint that hits RLIMIT_FSIZE is reported, the program runs to its end (SIGXFSZ, which
/// would kill it, is ignored while the image is written) and no temporary file is left.
#[test]
fn a_file_size_limit_fails_the_checkpoint_not_the_program() {
    let s = setup(As::Invoker, "glibc-static", "fsize");
    let mut cmd = Command::new("prlimit");
    cmd.arg("--fsize=65536")
        .arg("--")
        .arg(require_loader("apager"))
        .args(["-q", "--ckpt-image"])
        .arg(&s.image)
        .arg(&s.program)
        .args([STEPS, s.file.to_str().unwrap(), SLEEP_MS])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with(CKPT_AFTER) {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0);
    }
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { kill(child.id() as i32, SIGUSR2) }, 0);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(
        rest.lines().last().unwrap_or("").starts_with("done "),
        "{rest}"
    );
    assert!(
        err.contains("checkpoint not written: writing the image"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&s.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("image"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Damaged images are refused with one line and status 126, and nothing runs.
#[test]
fn damaged_images_are_refused_before_anything_starts() {
    let who = As::Invoker;
    let s = setup(who, "glibc-static", "damaged");
    checkpoint_and_kill(counter_under(&s, "apager"), &s.image, "damaged");
    let good = std::fs::read(&s.image).unwrap();
    let file_before = std::fs::read(&s.file).unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() - 100].to_vec()),
        ("truncated to the header", good[..32].to_vec()),
        ("empty", Vec::new()),
    ];
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x40;
    cases.push(("a flipped byte in a region", flipped));
    let mut version = good.clone();
    version[8] = 2;
    cases.push(("another version", version));
    let mut machine = good.clone();
    machine[12] = 3;
    cases.push(("another machine", machine));
    for (what, bytes) in cases {
        let path = s.dir.join("damaged-image");
        std::fs::write(&path, &bytes).unwrap();
        let out = restart(who, &path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(126), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}: the program ran");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(stderr.starts_with("urestart: "), "{what}: {stderr}");
        assert_eq!(
            std::fs::read(&s.file).unwrap(),
            file_before,
            "{what}: the file was touched"
        );
    }
    let out = restart(who, &s.dir.join("no-such-image"));
    assert_eq!(out.status.code(), Some(127));
}

/// `--info` lists what the image holds.
#[test]
fn info_describes_the_image() {
    let s = setup(As::Invoker, "glibc-static", "info");
    checkpoint_and_kill(counter_under(&s, "apager"), &s.image, "info");
    let out = command_for(As::Invoker, &require_loader("urestart"))
        .arg("--info")
        .arg(&s.image)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "format: version 1",
        "registers: rip",
        "[heap]",
        "[stack]",
        "[vdso]",
        "file: fd 3",
    ] {
        assert!(text.contains(want), "--info lacks {want:?}:\n{text}");
    }
    assert!(text.contains(s.file.to_str().unwrap()), "{text}");
}

/// A second thread: the checkpoint is refused with a message, the program runs to its end, and no
/// image is written.
#[test]
fn a_multithreaded_program_is_refused_and_runs_on() {
    for &who in identities() {
        let s = setup(who, "glibc-static", "threads");
        let mut cmd = counter_under(&s, "apager");
        cmd.arg("thread");
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with(CKPT_AFTER) {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0);
        }
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { kill(child.id() as i32, SIGUSR2) }, 0);
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{who}: {status} {err}");
        assert!(
            rest.lines().last().unwrap_or("").starts_with("done "),
            "{who}: {rest}"
        );
        assert!(
            err.contains("checkpoint refused: the program has 2 threads"),
            "{who}: {err}"
        );
        assert!(!s.image.exists(), "{who}: an image was written");
    }
}
