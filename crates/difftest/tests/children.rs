//! What a pager gives the programs its program executes, and what it leaves in the process (issue
//! 12): children are paged with the options the user gave (their mapping lines reach the same
//! `--log` file, or standard error), and the program sees no descriptor it did not open (the
//! entry-state probe, run under every loader in tests/dpager.rs and tests/hpager.rs, checks fds 3 to
//! 4095; here `/proc/self/fd` itself).

use difftest::{require_loader, run_native_as, run_under_as, scratch_dir, As};

/// Mapping lines that begin a program's load: one per program started through the pager.
fn programs_in(log: &str) -> usize {
    log.lines().filter(|l| l.ends_with(" anon reserve")).count()
}

#[test]
fn executed_programs_log_to_the_same_file_and_to_stderr() {
    let dir = scratch_dir("children-log");
    for loader in ["dpager", "hpager"] {
        let log = dir.join(format!("{loader}.log"));
        let out = run_under_as(
            As::Invoker,
            require_loader(loader),
            &["--log", log.to_str().unwrap()],
            "/bin/sh",
            &["-c", "/bin/true; /bin/echo done"],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            programs_in(&text),
            3,
            "{loader}: sh, true and echo in {text}"
        );
        assert!(
            out.stderr.is_empty(),
            "{loader}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run_under_as(
            As::Invoker,
            require_loader(loader),
            &[] as &[&str],
            "/bin/sh",
            &["-c", "/bin/true; /bin/echo done"],
        );
        assert_eq!(
            programs_in(&String::from_utf8_lossy(&out.stderr)),
            3,
            "{loader}"
        );
    }
}

#[test]
fn the_program_sees_only_its_own_descriptors() {
    for &who in difftest::identities() {
        let native = run_native_as(who, "/bin/ls", &["/proc/self/fd"]);
        for (loader, args) in [
            ("dpager", &["-q"][..]),
            ("hpager", &[][..]),
            ("apager", &["-q"][..]),
        ] {
            let loaded = run_under_as(
                who,
                require_loader(loader),
                args,
                "/bin/ls",
                &["/proc/self/fd"],
            );
            assert_eq!(
                String::from_utf8_lossy(&loaded.stdout),
                String::from_utf8_lossy(&native.stdout),
                "{loader} {args:?} {who}"
            );
        }
    }
}
