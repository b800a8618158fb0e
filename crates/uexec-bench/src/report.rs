//! Summaries of the runs: the rows of the table, the terminal table, and the CSV files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::floors::Floors;
use crate::run::Sample;
use crate::stats::{self, Spread};

/// One workload in one configuration, summarised.
#[derive(Clone, Debug)]
pub struct Row {
    pub workload: String,
    pub config: String,
    /// Timed runs.
    pub runs: usize,
    /// Timed runs that did not exit with status 0.
    pub failures: usize,
    /// Wall time in milliseconds; `None` for a configuration that was not timed.
    pub wall_ms: Option<Spread>,
    /// Median wall time over native's median wall time for the same workload.
    pub ratio: Option<f64>,
    /// Medians of the `rusage` figures.
    pub max_rss_mib: Option<f64>,
    pub minor_faults: Option<f64>,
    pub major_faults: Option<f64>,
    /// Medians of the loader's `--stats` fields.
    pub stats: BTreeMap<String, f64>,
    /// (median wall time - native's) / faults the pager handled, in microseconds.
    pub us_per_fault: Option<f64>,
    /// `us_per_fault` over the floor of a fault (delivery + mprotect) measured in the same run.
    pub floor_multiple: Option<f64>,
    /// Why the configuration was not timed.
    pub error: Option<String>,
}

impl Row {
    pub fn new(workload: &str, config: &str, samples: &[Sample]) -> Self {
        let collect = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
        let stats_runs: Vec<_> = samples.iter().map(|s| s.stats.clone()).collect();
        Self {
            workload: workload.to_owned(),
            config: config.to_owned(),
            runs: samples.len(),
            failures: samples.iter().filter(|s| !s.ok).count(),
            wall_ms: Spread::of(&collect(|s| s.wall.as_secs_f64() * 1e3)),
            ratio: None,
            max_rss_mib: stats::median(&collect(|s| s.max_rss_kib as f64 / 1024.0)),
            minor_faults: stats::median(&collect(|s| s.minor_faults as f64)),
            major_faults: stats::median(&collect(|s| s.major_faults as f64)),
            stats: stats::median_stats(&stats_runs),
            us_per_fault: None,
            floor_multiple: None,
            error: None,
        }
    }

    pub fn failed(workload: &str, config: &str, why: &str) -> Self {
        Self {
            workload: workload.to_owned(),
            config: config.to_owned(),
            runs: 0,
            failures: 0,
            wall_ms: None,
            ratio: None,
            max_rss_mib: None,
            minor_faults: None,
            major_faults: None,
            stats: BTreeMap::new(),
            us_per_fault: None,
            floor_multiple: None,
            error: Some(why.to_owned()),
        }
    }

    /// The pager's count of faults it handled, from its `--stats` line: the field `faults`,
    /// else the first field whose name starts with `fault`.
    pub fn pager_faults(&self) -> Option<f64> {
        self.stats
            .get("faults")
            .or_else(|| {
                self.stats
                    .iter()
                    .find(|(k, _)| k.starts_with("fault"))
                    .map(|(_, v)| v)
            })
            .copied()
    }
}

/// Fills in each row's ratio to the `native` row of the same workload, and the cost per
/// handled fault for pagers that report their faults. `rows` are one workload's.
pub fn add_ratios(rows: &mut [Row]) {
    let Some(native) = rows
        .iter()
        .find(|r| r.config == "native")
        .and_then(|r| r.wall_ms)
    else {
        return;
    };
    for row in rows.iter_mut() {
        let Some(wall) = row.wall_ms else { continue };
        row.ratio = Some(wall.median / native.median);
        row.us_per_fault = row
            .pager_faults()
            .filter(|&f| f > 0.0)
            .map(|f| (wall.median - native.median) * 1e3 / f);
    }
}

/// Fills in each row's cost per fault as a multiple of the floor of a fault.
pub fn add_floor_multiples(rows: &mut [Row], floors: &Floors) {
    for row in rows {
        row.floor_multiple = row.us_per_fault.map(|us| us / floors.fault());
    }
}

/// The floors, and every pager's cost per fault against delivery + mprotect.
pub fn floors(f: &Floors, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nfloors (us, medians of {} samples of {} operations, this process, this run):",
        f.samples,
        crate::floors::BATCH
    );
    let _ = writeln!(
        s,
        "  delivery {:.3}  mprotect {:.3}  (delivery + mprotect {:.3})  mprotect split {:.3}  populate {:.3}  minimal pager {:.3}  anon touch {:.3}  file touch {:.3}",
        f.median.delivery,
        f.median.mprotect,
        f.fault(),
        f.median.mprotect_split,
        f.median.populate,
        f.median.minimal_pager,
        f.median.anon_touch,
        f.median.file_touch
    );
    let _ = writeln!(
        s,
        "{:<15} {:<18} {:>10} {:>10} {:>12} {:>14} {:>12}",
        "workload", "config", "faults", "us/fault", "x floor", "x split floor", "x minimal"
    );
    for r in rows {
        let (Some(us), Some(x)) = (r.us_per_fault, r.floor_multiple) else {
            continue;
        };
        let _ = writeln!(
            s,
            "{:<15} {:<18} {:>10} {:>10.3} {:>12.2} {:>14.2} {:>12.2}",
            r.workload,
            r.config,
            opt(r.pager_faults(), 0),
            us,
            x,
            us / (f.median.delivery + f.median.mprotect_split),
            us / f.median.minimal_pager
        );
    }
    s
}

/// `floors.csv`: every floor sample, in microseconds per operation.
pub fn write_floors_csv(path: &Path, samples: &[crate::floors::Sample]) -> Result<(), String> {
    let mut w = create(path)?;
    let mut text = String::from(
        "sample,delivery_us,mprotect_us,mprotect_split_us,populate_us,minimal_pager_us,anon_touch_us,file_touch_us\n",
    );
    for (i, f) in samples.iter().enumerate() {
        let _ = writeln!(
            text,
            "{i},{},{},{},{},{},{},{}",
            f.delivery,
            f.mprotect,
            f.mprotect_split,
            f.populate,
            f.minimal_pager,
            f.anon_touch,
            f.file_touch
        );
    }
    w.write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The table printed at the end of a run.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{:<15} {:<18} {:>5} {:>10} {:>10} {:>10} {:>7} {:>8} {:>8} {:>6} {:>8}  stats",
        "workload",
        "config",
        "runs",
        "median ms",
        "p10 ms",
        "p90 ms",
        "ratio",
        "rss MiB",
        "minflt",
        "majflt",
        "us/fault"
    );
    let mut last = "";
    for r in rows {
        if r.workload != last && !last.is_empty() {
            s.push('\n');
        }
        last = &r.workload;
        if let Some(why) = &r.error {
            let _ = writeln!(s, "{:<15} {:<18} not timed: {why}", r.workload, r.config);
            continue;
        }
        let fields: Vec<String> = r.stats.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let failures = if r.failures > 0 {
            format!("  ({} runs failed!)", r.failures)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "{:<15} {:<18} {:>5} {:>10} {:>10} {:>10} {:>7} {:>8} {:>8} {:>6} {:>8}  {}{failures}",
            r.workload,
            r.config,
            r.runs,
            opt(r.wall_ms.map(|w| w.median), 3),
            opt(r.wall_ms.map(|w| w.p10), 3),
            opt(r.wall_ms.map(|w| w.p90), 3),
            opt(r.ratio, 3),
            opt(r.max_rss_mib, 1),
            opt(r.minor_faults, 0),
            opt(r.major_faults, 0),
            opt(r.us_per_fault, 2),
            fields.join(" "),
        );
    }
    s
}

fn create(path: &Path) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| format!("creating {}: {e}", path.display()))
}

/// `summary.csv`: one line per row, the loader statistics as extra columns (the union of
/// every row's field names, empty where a row has none).
pub fn write_summary_csv(path: &Path, rows: &[Row]) -> Result<(), String> {
    let keys: std::collections::BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.stats.keys().map(String::as_str))
        .collect();
    let mut w = create(path)?;
    let mut text = String::from(
        "workload,config,runs,failures,median_ms,p10_ms,p90_ms,ratio,max_rss_mib,minor_faults,major_faults,us_per_fault,floor_multiple,error",
    );
    for k in &keys {
        let _ = write!(text, ",stat_{k}");
    }
    text.push('\n');
    let num = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    for r in rows {
        let _ = write!(
            text,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.workload,
            r.config,
            r.runs,
            r.failures,
            num(r.wall_ms.map(|w| w.median)),
            num(r.wall_ms.map(|w| w.p10)),
            num(r.wall_ms.map(|w| w.p90)),
            num(r.ratio),
            num(r.max_rss_mib),
            num(r.minor_faults),
            num(r.major_faults),
            num(r.us_per_fault),
            num(r.floor_multiple),
            r.error.as_deref().unwrap_or("").replace(',', ";"),
        );
        for k in &keys {
            let _ = write!(text, ",{}", num(r.stats.get(*k).copied()));
        }
        text.push('\n');
    }
    w.write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `samples.csv`: every timed run, written as it happens.
pub struct SamplesCsv {
    path: std::path::PathBuf,
    w: BufWriter<File>,
}

impl SamplesCsv {
    pub fn create(path: &Path) -> Result<Self, String> {
        let mut w = create(path)?;
        writeln!(
            w,
            "workload,config,run,wall_ns,max_rss_kib,minor_faults,major_faults,ok,stats"
        )
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            w,
        })
    }

    pub fn write(
        &mut self,
        workload: &str,
        config: &str,
        run: usize,
        s: &Sample,
    ) -> Result<(), String> {
        let fields: Vec<String> = s.stats.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(
            self.w,
            "{workload},{config},{run},{},{},{},{},{},{}",
            s.wall.as_nanos(),
            s.max_rss_kib,
            s.minor_faults,
            s.major_faults,
            s.ok,
            fields.join(" ")
        )
        .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }

    pub fn finish(mut self) -> Result<(), String> {
        self.w
            .flush()
            .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }
}
