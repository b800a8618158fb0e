//! `--stats` under dpager and hpager: the program must still print and end exactly as natively (the
//! statistics take over signal dispositions the program must not notice), and exactly one statistics
//! line must appear on stderr, however the program ends: a normal exit, death by a real SIGSEGV, or
//! death by SIGTERM; as the invoker and as uid 65534. And `--log FILE` under every loader: the same
//! program run, the mapping log in FILE, written as the program's user.

use std::path::Path;

use difftest::{
    compare, effective_uid, fixture, identities, require_loader, run_native_as, run_under_as,
    scratch_dir, As, Outcome,
};

const BUSYBOX: &str = "/bin/busybox";

fn stats_lines(out: &Outcome) -> usize {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(": stats faults="))
        .count()
}

#[test]
fn stats_leave_the_program_unchanged_and_are_printed_however_it_ends() {
    let mut runs: Vec<(String, Vec<String>)> = vec![
        (fixture("malloc", "glibc-static").path.into(), vec![]),
        // Prints its signal dispositions and mask: the statistics' own handlers must not show.
        (fixture("auxv_dump", "glibc-static").path.into(), vec![]),
        (fixture("auxv_dump", "musl-static").path.into(), vec![]),
        (
            fixture("fault", "glibc-static").path.into(),
            vec!["null".into()],
        ),
        (
            fixture("sigsegv_recover", "glibc-static").path.into(),
            vec![],
        ),
    ];
    if Path::new(BUSYBOX).is_file() {
        runs.push((
            BUSYBOX.into(),
            vec![
                "sh".into(),
                "-c".into(),
                "echo bye; kill -TERM $$; echo unreachable".into(),
            ],
        ));
    }
    let mut failures = Vec::new();
    for (loader, options) in [
        ("dpager", &["-q", "--stats"][..]),
        ("hpager", &["-q", "--stats"][..]),
    ] {
        let path = require_loader(loader);
        for (&who, (prog, args)) in identities()
            .iter()
            .flat_map(|who| runs.iter().map(move |r| (who, r)))
        {
            let what = format!("{prog} {args:?} under `{loader} {options:?}` {who}");
            let native = run_native_as(who, prog, args);
            let loaded = run_under_as(who, &path, options, prog, args);
            if let Err(e) = compare(&what, &native, &loaded) {
                failures.push(e);
            }
            if stats_lines(&loaded) != 1 {
                failures.push(format!(
                    "{what}: expected one statistics line on stderr, got: {:?}",
                    String::from_utf8_lossy(&loaded.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// `--log FILE`: the program runs exactly as natively, nothing is written on stderr, and the mapping
/// log is in FILE, created by the program's own user (the scratch directory is mode 0777, so uid
/// 65534 can create it too).
#[test]
fn the_mapping_log_goes_to_its_file_as_every_user() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch_dir("log");
    let fx = fixture("auxv_dump", "glibc-static");
    let mut failures = Vec::new();
    for &who in identities() {
        let uid = match who {
            As::Invoker => effective_uid().expect("the test process's uid"),
            As::Nobody => 65534,
        };
        for loader in ["apager", "dpager", "hpager"] {
            let path = require_loader(loader);
            let log = dir.join(format!("{loader}-{uid}.log"));
            let log_arg = log.display().to_string();
            let what = format!("auxv_dump under `{loader} --log {log_arg}` {who}");
            let native = run_native_as(who, fx.path, &["x"]);
            let loaded = run_under_as(who, &path, &["--log", &log_arg], fx.path, &["x"]);
            if let Err(e) = compare(&what, &native, &loaded) {
                failures.push(e);
            }
            if !loaded.stderr.is_empty() {
                failures.push(format!(
                    "{what}: stderr must be empty, got {:?}",
                    String::from_utf8_lossy(&loaded.stderr)
                ));
            }
            match (std::fs::read_to_string(&log), std::fs::metadata(&log)) {
                (Ok(text), Ok(meta)) => {
                    // apager: `apager: map ...`; a pager: `dpager[PID NAME]: map ...`.
                    let plain = format!("{loader}: map ");
                    let whose = format!("{loader}[");
                    let mapping = |l: &&str| {
                        l.starts_with(&plain) || (l.starts_with(&whose) && l.contains("]: map "))
                    };
                    if !text.lines().filter(mapping).any(|l| l.contains("segment[")) {
                        failures.push(format!("{what}: no segment mapping logged: {text:?}"));
                    }
                    if meta.uid() != uid {
                        failures.push(format!(
                            "{what}: the log is owned by uid {}, not by the program's user",
                            meta.uid()
                        ));
                    }
                }
                (Err(e), _) | (_, Err(e)) => failures.push(format!("{what}: no log file: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
