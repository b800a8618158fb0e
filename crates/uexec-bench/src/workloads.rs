//! The workloads (programs and their arguments) and the configurations that run them.

use std::path::{Path, PathBuf};

use crate::run::Config;

include!(concat!(env!("OUT_DIR"), "/workloads.rs"));

/// The hpager prediction policies compared, as its `--predict=` takes them.
pub const POLICIES: &[&str] = &["none", "next", "stride", "trend", "adaptive"];
/// The prediction window sizes compared (`--pages=`).
pub const WINDOWS: &[u32] = &[2, 3];

/// The access patterns of `bss-scan` (see `workloads/bss_scan.c`).
pub const PATTERNS: &[&str] = &["seq", "sparse", "stride", "backward", "random"];

/// The patterns also run with `rmw` (the first access to each page a read, as in `x += ...`):
/// `scan-seq-rmw`, ... Only when named by `--only` or with `--floors`.
pub const RMW_PATTERNS: &[&str] = &["seq", "random"];

/// Default runs per configuration: process start-up is short and noisy, the scans long.
pub const HELLO_RUNS: usize = 200;
pub const SCAN_RUNS: usize = 15;

/// One program with its arguments.
#[derive(Clone, Debug)]
pub struct Workload {
    /// `hello-glibc`, `scan-seq`, ...
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Default number of runs per configuration.
    pub runs: usize,
    /// Run only when asked for by name (`--only`) or by `--floors`.
    pub on_request: bool,
}

/// Every workload whose program was built, in table order; `notes` receives one line per
/// workload left out.
pub fn workloads(notes: &mut Vec<String>) -> Vec<Workload> {
    let built = |name: &str| {
        BUILT
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| PathBuf::from(p))
    };
    let mut list = Vec::new();
    for name in ["hello-glibc", "hello-nostdlib", "hello-musl"] {
        match built(name) {
            Some(program) => list.push(Workload {
                name: name.to_owned(),
                program,
                args: Vec::new(),
                runs: HELLO_RUNS,
                on_request: false,
            }),
            None => notes.push(format!(
                "{name}: not built (musl-gcc was missing when uexec-bench was compiled)"
            )),
        }
    }
    if let Some(program) = built("bss-scan") {
        for pattern in PATTERNS {
            list.push(Workload {
                name: format!("scan-{pattern}"),
                program: program.clone(),
                args: vec![(*pattern).to_owned()],
                runs: SCAN_RUNS,
                on_request: false,
            });
        }
        for pattern in RMW_PATTERNS {
            list.push(Workload {
                name: format!("scan-{pattern}-rmw"),
                program: program.clone(),
                args: vec![(*pattern).to_owned(), "rmw".to_owned()],
                runs: SCAN_RUNS,
                on_request: true,
            });
        }
    }
    list
}

/// Native, then every loader found in `bin_dir` with its options; `notes` receives one
/// line per loader that is missing.
pub fn configs(bin_dir: &Path, notes: &mut Vec<String>) -> Vec<Config> {
    let mut list = vec![Config {
        label: "native".into(),
        loader: None,
        loader_args: Vec::new(),
        stats: false,
    }];
    let mut find = |name: &str| {
        let path = bin_dir.join(name);
        if path.is_file() {
            Some(path)
        } else {
            notes.push(format!(
                "{name}: not found at {}, its configurations are skipped",
                path.display()
            ));
            None
        }
    };
    if let Some(apager) = find("apager") {
        list.push(Config {
            label: "apager".into(),
            loader: Some(apager),
            loader_args: vec!["-q".into()],
            stats: false,
        });
    }
    if let Some(dpager) = find("dpager") {
        list.push(Config {
            label: "dpager".into(),
            loader: Some(dpager),
            loader_args: vec!["-q".into(), "--stats".into()],
            stats: true,
        });
    }
    if let Some(hpager) = find("hpager") {
        for policy in POLICIES {
            // `none` predicts nothing, so its window does not matter: run it once.
            let windows: &[u32] = if *policy == "none" {
                &WINDOWS[..1]
            } else {
                WINDOWS
            };
            for pages in windows {
                let label = if *policy == "none" {
                    "hpager none".to_owned()
                } else {
                    format!("hpager {policy}/{pages}")
                };
                list.push(Config {
                    label,
                    loader: Some(hpager.clone()),
                    loader_args: vec![
                        "-q".into(),
                        "--stats".into(),
                        format!("--predict={policy}"),
                        format!("--pages={pages}"),
                    ],
                    stats: true,
                });
            }
        }
    }
    list
}
