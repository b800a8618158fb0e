//! `--stats` under dpager and hpager: the program must still print and end exactly as natively (the
//! statistics take over signal dispositions the program must not notice), and exactly one statistics
//! line must appear on stderr, however the program ends: a normal exit, death by a real SIGSEGV, or
//! death by SIGTERM; as the invoker and as uid 65534.

use std::path::Path;

use difftest::{
    compare, fixture, identities, require_loader, run_native_as, run_under_as, Outcome,
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
