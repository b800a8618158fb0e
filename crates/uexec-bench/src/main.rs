//! uexec-bench: times whole processes natively and under the uexec loaders.
//!
//! Every workload (see `workloads/`) runs in every configuration (native, `apager -q`, and
//! `dpager`/`hpager` with each policy when they are built), many times, round-robin across
//! the configurations so that a drift of the machine is shared by all of them. Each run's
//! wall time is taken around spawn and `wait4`, its maximum RSS and fault counts from
//! `wait4`'s `rusage`, and a pager's `--stats` line from its stderr. Before timing, each
//! configuration's output and exit status are checked against native: a loader that runs a
//! workload wrongly is reported, not timed.
//!
//! In every round of a scan workload the tool also samples the floors of a demand fault
//! (`floors`: signal delivery, `mprotect`, first-touch faults) in its own process, so that each
//! pager's cost per fault can be given as a multiple of delivery + mprotect measured alongside.
//!
//! The results go to the terminal (a table with the ratio loader/native of the median wall
//! time) and to `--out` (CSV and PNG plots). See docs/benchmarks.md.

mod floors;
mod plot;
mod report;
mod run;
mod stats;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

use report::Row;
use run::{Config, Sample};
use workloads::Workload;

/// Times whole processes natively and under the uexec loaders (apager, dpager, hpager).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Fewer runs: the default counts (200 per hello world, 15 per scan) divided by 5.
    #[arg(long)]
    quick: bool,
    /// Runs per configuration for every workload, instead of the defaults (exactly N, --quick or not).
    #[arg(long, value_name = "N")]
    runs: Option<usize>,
    /// Untimed runs of each configuration before the timed ones.
    #[arg(long, value_name = "N", default_value_t = 3)]
    warmup: usize,
    /// Where the CSV files and plots go [default: <workspace>/target/bench].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Where the loaders are [default: $UEXEC_BIN_DIR, else <workspace>/target/release].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Only the workloads whose name contains one of these (comma-separated), e.g. `hello,scan-seq`.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    only: Vec<String>,
    /// An extra loader to time as `PATH -q --stats PROG` (without `--stats` if it refuses it),
    /// labelled LABEL (repeatable): to compare two builds of a loader in the same run, e.g.
    /// `--extra apager-old=/tmp/old/apager`.
    #[arg(long, value_name = "LABEL=PATH")]
    extra: Vec<String>,
    /// Only the configurations whose label starts with one of these (comma-separated), e.g.
    /// `native,apager`; native is always kept, as the reference.
    #[arg(long, value_delimiter = ',', value_name = "LABELS")]
    configs: Vec<String>,
    /// The cost per fault against its floors, quickly: the sequential and random scans (also with
    /// `rmw`), native and dpager (and any --extra) only, unless --only / --configs say otherwise.
    #[arg(long)]
    floors: bool,
    /// List the workloads and configurations, and exit.
    #[arg(long)]
    list: bool,
}

/// A configuration's spread (p90 / p10 of its wall times) over this says the machine was busy, as
/// hyperfine warns about outliers: its figures are printed with a warning.
const BUSY_SPREAD: f64 = 1.5;

fn workspace_dir() -> PathBuf {
    // crates/uexec-bench -> the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.runs == Some(0) {
        eprintln!("uexec-bench: --runs must be at least 1");
        return ExitCode::from(2);
    }
    match bench(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(wrong) => {
            eprintln!(
                "uexec-bench: {wrong} configuration(s) ran a workload differently from native (see the notes above)"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("uexec-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Refuses names in `--only` and `--configs` that select nothing, listing the valid ones.
fn check_names(args: &Args, workloads: &[Workload], configs: &[Config]) -> Result<(), String> {
    let names: Vec<&str> = workloads.iter().map(|w| w.name.as_str()).collect();
    let labels: Vec<&str> = configs.iter().map(|c| c.label.as_str()).collect();
    for o in &args.only {
        if !names.iter().any(|n| n.contains(o.as_str())) {
            return Err(format!(
                "--only {o}: no such workload (workloads: {})",
                names.join(", ")
            ));
        }
    }
    for c in &args.configs {
        if !labels.iter().any(|l| l.starts_with(c.as_str())) {
            return Err(format!(
                "--configs {c}: no such configuration (configurations: {})",
                labels.join(", ")
            ));
        }
    }
    Ok(())
}

/// Runs the benchmark; returns how many (workload, configuration) pairs ran differently from native.
fn bench(args: &Args) -> Result<usize, String> {
    let bin_dir = args
        .bin_dir
        .clone()
        .unwrap_or_else(|| match std::env::var_os("UEXEC_BIN_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => workspace_dir().join("target/release"),
        });
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_dir().join("target/bench"));
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;

    let mut notes = Vec::new();
    let mut workloads = workloads::workloads(&mut notes);
    let mut configs = workloads::configs(&bin_dir, &mut notes);
    for extra in &args.extra {
        let (label, path) = extra
            .split_once('=')
            .ok_or_else(|| format!("--extra {extra}: expected LABEL=PATH"))?;
        if !Path::new(path).is_file() {
            return Err(format!("--extra {extra}: {path} is not a file"));
        }
        // With --stats, for a pager's fault count; a loader that refuses it runs without.
        configs.push(Config {
            label: label.to_owned(),
            loader: Some(PathBuf::from(path)),
            loader_args: vec!["-q".into(), "--stats".into()],
            stats: true,
        });
    }
    for note in &notes {
        println!("note: {note}");
    }
    if args.list {
        println!("workloads:");
        for w in &workloads {
            let extra = if w.on_request {
                " (only with --only)"
            } else {
                ""
            };
            println!("  {}{extra}", w.name);
        }
        println!("configurations:");
        for c in &configs {
            println!("  {}", c.label);
        }
        return Ok(0);
    }
    check_names(args, &workloads, &configs)?;
    let (mut only, mut keep) = (args.only.clone(), args.configs.clone());
    if args.floors {
        if only.is_empty() {
            only = ["scan-seq", "scan-random", "scan-seq-rmw", "scan-random-rmw"]
                .map(String::from)
                .to_vec();
        }
        if keep.is_empty() {
            keep = std::iter::once("dpager".to_owned())
                .chain(
                    args.extra
                        .iter()
                        .filter_map(|e| Some(e.split_once('=')?.0.to_owned())),
                )
                .collect();
        }
    }
    if only.is_empty() {
        workloads.retain(|w| !w.on_request);
    } else if args.floors && args.only.is_empty() {
        workloads.retain(|w| only.contains(&w.name));
    } else {
        workloads.retain(|w| only.iter().any(|o| w.name.contains(o.as_str())));
    }
    if !keep.is_empty() {
        configs
            .retain(|c| c.loader.is_none() || keep.iter().any(|p| c.label.starts_with(p.as_str())));
    }
    if workloads.is_empty() {
        return Err("no workload left to run".into());
    }

    let stderr_file = out.join("last-stderr.txt");
    let mut meter = floors::Meter::new(&out)?;
    let mut rows = Vec::new();
    let mut wrong = 0;
    let mut samples_csv = report::SamplesCsv::create(&out.join("samples.csv"))?;
    for workload in &workloads {
        let runs = run_count(workload, args);
        eprintln!(
            "== {} ({} {}): {} runs x {} configurations",
            workload.name,
            workload.program.display(),
            workload.args.join(" "),
            runs,
            configs.len()
        );
        let (valid, mut failed) = validate(workload, &configs)?;
        let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(runs); valid.len()];
        for _ in 0..args.warmup {
            for config in &valid {
                run::measure(config, &workload.program, &workload.args, &stderr_file).map_err(
                    |e| format!("running {} under {}: {e}", workload.name, config.label),
                )?;
            }
        }
        for i in 0..runs {
            if workload.name.starts_with("scan") {
                meter.sample()?;
            }
            // Each round starts with the next configuration, so that none always runs right
            // after the floors (which map and free memory) or right after a given other one.
            for k in 0..valid.len() {
                let c = (i + k) % valid.len();
                let (Some(config), Some(into)) = (valid.get(c), samples.get_mut(c)) else {
                    continue;
                };
                let sample = run::measure(config, &workload.program, &workload.args, &stderr_file)
                    .map_err(|e| {
                        format!("running {} under {}: {e}", workload.name, config.label)
                    })?;
                samples_csv.write(&workload.name, &config.label, i, &sample)?;
                into.push(sample);
            }
        }
        for (config, s) in valid.iter().zip(&samples) {
            let mut walls: Vec<f64> = s.iter().map(|x| x.wall.as_secs_f64()).collect();
            walls.sort_by(f64::total_cmp);
            if let (Some(p10), Some(p90)) =
                (stats::quantile(&walls, 0.1), stats::quantile(&walls, 0.9))
            {
                if p10 > 0.0 && p90 / p10 > BUSY_SPREAD {
                    println!(
                        "warning: {} under {}: p90/p10 of the wall time is {:.2} (over {BUSY_SPREAD}): the machine was busy, these figures are noisy",
                        workload.name, config.label, p90 / p10
                    );
                }
            }
        }
        let mut workload_rows: Vec<Row> = valid
            .iter()
            .zip(&samples)
            .map(|(config, s)| Row::new(&workload.name, &config.label, s))
            .collect();
        wrong += failed.len();
        workload_rows.append(&mut failed);
        report::add_ratios(&mut workload_rows);
        rows.append(&mut workload_rows);
    }
    samples_csv.finish()?;
    // The table is printed in configuration order within each workload.
    let order = |label: &str| {
        configs
            .iter()
            .position(|c| c.label == label)
            .unwrap_or(usize::MAX)
    };
    let workload_order = |name: &str| {
        workloads
            .iter()
            .position(|w| w.name == name)
            .unwrap_or(usize::MAX)
    };
    rows.sort_by_key(|r| (workload_order(&r.workload), order(&r.config)));

    if meter.samples.is_empty() {
        for _ in 0..5 {
            meter.sample()?;
        }
    }
    let floors = floors::Floors::of(&meter.samples).ok_or("no floor samples")?;
    report::add_floor_multiples(&mut rows, &floors);

    print!("{}", report::table(&rows));
    print!("{}", report::floors(&floors, &rows));
    report::write_summary_csv(&out.join("summary.csv"), &rows)?;
    report::write_floors_csv(&out.join("floors.csv"), &meter.samples)?;
    println!(
        "\nwrote {}, {} and {}",
        out.join("summary.csv").display(),
        out.join("samples.csv").display(),
        out.join("floors.csv").display()
    );
    match plot::plots(&out, &rows) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
        }
        Err(e) => println!("note: no plots: {e}"),
    }
    let _ = std::fs::remove_file(&stderr_file);
    Ok(wrong)
}

/// `--runs N` is exactly N runs (with or without --quick); else the workload's default, divided by
/// 5 (at least 3) with --quick.
fn run_count(workload: &Workload, args: &Args) -> usize {
    match args.runs {
        Some(n) => n.max(1),
        None if args.quick => (workload.runs / 5).max(3),
        None => workload.runs.max(1),
    }
}

/// Runs the workload once natively and once in each configuration with stdout captured; a
/// configuration whose stdout or exit status differ from native is reported (a failed row)
/// and not timed. Returns the configurations to time and the failed rows.
fn validate(workload: &Workload, configs: &[Config]) -> Result<(Vec<Config>, Vec<Row>), String> {
    let reference = configs
        .iter()
        .find(|c| c.loader.is_none())
        .ok_or("no native configuration")?;
    let expected = run::outcome(reference, &workload.program, &workload.args)
        .map_err(|e| format!("running {}: {e}", workload.program.display()))?;
    if expected.status != Some(0) {
        return Err(format!("{} fails natively: {expected:?}", workload.name));
    }
    let mut valid = Vec::new();
    let mut failed = Vec::new();
    for config in configs {
        let mut config = config.clone();
        let mut got = run::outcome(&config, &workload.program, &workload.args)
            .map_err(|e| format!("running {} under {}: {e}", workload.name, config.label))?;
        if got.status == Some(2) && config.stats {
            // A usage error: a pager that does not know --stats yet is timed without it.
            config.loader_args.retain(|a| a != "--stats");
            config.stats = false;
            got = run::outcome(&config, &workload.program, &workload.args)
                .map_err(|e| format!("running {} under {}: {e}", workload.name, config.label))?;
            if got == expected {
                println!(
                    "note: {} under {}: --stats refused, timed without it",
                    workload.name, config.label
                );
            }
        }
        if got == expected {
            valid.push(config);
        } else {
            let why = match (got.status, got.signal) {
                (_, Some(sig)) => format!("killed by signal {sig}"),
                (Some(code), _) if code != 0 => format!("exit status {code}"),
                _ => "stdout differs from native".to_owned(),
            };
            println!(
                "note: {} under {}: {why}; not timed",
                workload.name, config.label
            );
            failed.push(Row::failed(&workload.name, &config.label, &why));
        }
    }
    Ok((valid, failed))
}
