//! The pagers and the kernel's limit on mappings (`vm.max_map_count`, 65530): programs that run
//! natively must run the same under them whatever their access pattern (issue 8).
//!
//! `scattered_bss` (every other page of a 1 GiB bss, in a random order), `scattered_threads` (8
//! threads incrementing random pages of a 1 GiB bss) and `map_limit` (60,000 mappings of its own,
//! then first touches at the limit) are slow enough (about a second natively) that build.rs leaves
//! them out of the generic differential tests; they run here, every variant, as both identities: the
//! first two under apager, dpager and hpager with three policies, the last under dpager and hpager. `sparse_bss` (8 GiB, one
//! page in 512) runs in the generic tests; its VMA count is checked here.

use difftest::{
    compare, fixture, identities, path_as, require_loader, run_native_as, run_under_as, variants,
    Outcome, Status,
};

/// The kernel's default `vm.max_map_count`.
const MAX_MAP_COUNT: u64 = 65530;

/// Loaders and options for `scattered_bss`.
const CONFIGS: &[(&str, &[&str])] = &[
    ("apager", &["-q"]),
    ("dpager", &["-q"]),
    ("hpager", &["-q"]),
    ("hpager", &["-q", "--predict=none"]),
    ("hpager", &["-q", "--predict=next", "--pages=3"]),
];

/// Fewer for `map_limit`, whose every run makes 130,000 `mmap`/`munmap` calls.
const PAGERS: &[(&str, &[&str])] = &[("dpager", &["-q"]), ("hpager", &["-q"])];

/// Every variant of `name`, natively and under every configuration, as every identity.
fn check_everywhere(name: &str, configs: &[(&str, &[&str])]) {
    let mut failures = Vec::new();
    let mut runs = 0;
    for fx in variants(name) {
        for &who in identities() {
            let native = run_native_as(who, fx.path, &[] as &[&str]);
            if native.status != Status::Code(0) {
                failures.push(format!(
                    "{name} ({}) {who}: fails natively ({}): {}",
                    fx.variant,
                    native.status,
                    String::from_utf8_lossy(&native.stderr)
                ));
                continue;
            }
            for (loader, options) in configs {
                let what = format!("{name} ({}) under `{loader} {options:?}` {who}", fx.variant);
                let loaded = run_under_as(
                    who,
                    require_loader(loader),
                    options,
                    fx.path,
                    &[] as &[&str],
                );
                if let Err(e) = compare(&what, &native, &loaded) {
                    failures.push(e);
                }
                runs += 1;
            }
        }
    }
    assert!(runs > 0, "no variant of {name} was built");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_other_page_of_a_1_gib_bss_in_a_random_order() {
    check_everywhere("scattered_bss", CONFIGS);
}

#[test]
fn eight_threads_racing_over_a_1_gib_bss() {
    check_everywhere("scattered_threads", CONFIGS);
}

#[test]
fn a_program_at_the_limit_through_its_own_mappings() {
    check_everywhere("map_limit", PAGERS);
}

/// The `KEY=N` figure of the statistics line in `out`'s stderr.
fn stat(out: &Outcome, key: &str) -> Option<u64> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains(": stats faults="))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// `--stats` reports the process's VMAs at exit: for the programs above, well under the limit (the
/// pager's grants are bounded), at least the native handful (the figure is real), and with no real
/// fault on the way.
#[test]
fn stats_count_vmas_well_under_the_limit() {
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for name in ["scattered_bss", "sparse_bss"] {
        let fx = fixture(name, "glibc-static");
        let native = run_native_as(identities()[0], fx.path, &[] as &[&str]);
        for (loader, options) in [
            ("dpager", &["-q", "--stats"][..]),
            ("hpager", &["-q", "--stats"][..]),
            ("hpager", &["-q", "--stats", "--predict=none"][..]),
        ] {
            let what = format!("{name} under `{loader} {options:?}`");
            let loaded = run_under_as(
                identities()[0],
                require_loader(loader),
                options,
                fx.path,
                &[] as &[&str],
            );
            if let Err(e) = compare(&what, &native, &loaded) {
                failures.push(e);
            }
            let (vmas, faults, real) = (
                stat(&loaded, "vmas"),
                stat(&loaded, "faults"),
                stat(&loaded, "real_faults"),
            );
            report.push(format!("{what}: vmas={vmas:?} faults={faults:?}"));
            match vmas {
                Some(n) if (8..MAX_MAP_COUNT / 8).contains(&n) => {}
                _ => failures.push(format!(
                    "{what}: vmas={vmas:?}, expected 8 to {}: {:?}",
                    MAX_MAP_COUNT / 8,
                    String::from_utf8_lossy(&loaded.stderr)
                )),
            }
            if real != Some(0) {
                failures.push(format!("{what}: real_faults={real:?}"));
            }
        }
    }
    difftest::note(&report.join("\n"));
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const PRLIMIT: &str = "/usr/bin/prlimit";

/// When the kernel refuses the pager a page for good (here: `RLIMIT_DATA`, which counts pages made
/// writable, below the 64 MiB bss of `bigbss`), the pager says so in one line and exits with its own
/// status, 122, with the statistics line if asked; not with a SIGSEGV blamed on the program.
#[test]
fn a_pager_that_cannot_go_on_says_so_and_exits_122() {
    if !std::path::Path::new(PRLIMIT).is_file() {
        difftest::note("skipped: no /usr/bin/prlimit");
        return;
    }
    let fx = fixture("bigbss", "glibc-static");
    let mut failures = Vec::new();
    for &who in identities() {
        for loader in ["dpager", "hpager"] {
            let pager = path_as(who, &require_loader(loader));
            let pager = pager.display().to_string();
            let options = ["--data=16777216", pager.as_str(), "-q", "--stats"];
            let what = format!("bigbss under `prlimit --data=16MiB {loader} -q --stats` {who}");
            let out = run_under_as(who, PRLIMIT, &options, fx.path, &[] as &[&str]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let prefix = format!("{loader}: cannot map page 0x");
            let said = stderr
                .lines()
                .filter(|l| {
                    l.starts_with(&prefix)
                        && l.ends_with(" of the program: mprotect failed (error 12)")
                })
                .count();
            if out.status != Status::Code(122) || said != 1 || stat(&out, "real_faults") != Some(0)
            {
                failures.push(format!(
                    "{what}: expected exit 122, one `{prefix}...` line and real_faults=0; got {} \
                     and stderr {stderr:?}",
                    out.status
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A scan that ends up touching every page of its bss in a scattered order leaves that bss in a few
/// mappings, as natively: the pieces the grants split off merge again once their neighbours are
/// accessible (the pager gives the bss its `anon_vma` before splitting it; without that each faulted
/// piece gets its own, and the random scan below ended with about 2,100 mappings).
#[test]
fn a_scattered_scan_leaves_its_bss_in_few_mappings() {
    let fx = fixture("bss_scan", "glibc-static");
    let who = identities()[0];
    let native = run_native_as(who, fx.path, &["random"]);
    let mut failures = Vec::new();
    for loader in ["dpager", "hpager"] {
        let what = format!("bss_scan random under `{loader} -q --stats`");
        let options = ["-q", "--stats", "--predict=none"];
        let options = if loader == "dpager" {
            &options[..2]
        } else {
            &options[..]
        };
        let loaded = run_under_as(who, require_loader(loader), options, fx.path, &["random"]);
        if let Err(e) = compare(&what, &native, &loaded) {
            failures.push(e);
        }
        match stat(&loaded, "vmas") {
            Some(n) if (8..200).contains(&n) => {}
            vmas => failures.push(format!("{what}: vmas={vmas:?}, expected 8 to 199")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
