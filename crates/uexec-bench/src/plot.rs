//! PNG bar charts (plotters' bitmap backend): one panel per workload, one horizontal bar
//! per configuration. `time_ratio.png`: median wall time over native's; `faults.png`: minor
//! faults (`ru_minflt`); `pager_faults.png`, when a pager printed statistics: the faults it
//! handled.
//!
//! Text needs a TrueType font, which is read at run time from the usual system places (the
//! pure-Rust `ab_glyph` renderer, so no C font library is needed to build); without one the
//! plots are skipped with a note and the CSV files still hold everything.

use std::path::{Path, PathBuf};
use std::process::Command;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::report::Row;

/// The figure a chart shows for a row, or `None` when the row has none.
type Metric = fn(&Row) -> Option<f64>;

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Registers a system font as plotters' "sans-serif".
fn register_font() -> Result<(), String> {
    let from_fc = Command::new("fc-match")
        .args(["-f", "%{file}", "sans:fontformat=TrueType"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .filter(|p| !p.is_empty());
    let path = FONT_CANDIDATES
        .iter()
        .map(|p| (*p).to_owned())
        .chain(from_fc)
        .find(|p| Path::new(p).is_file())
        .ok_or("no TrueType font found (install fonts-dejavu-core)")?;
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
    // plotters keeps fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{path} is not a font plotters can read"))
}

/// Draws the charts into `out`; returns the files written.
pub fn plots(out: &Path, rows: &[Row]) -> Result<Vec<PathBuf>, String> {
    register_font()?;
    let mut files = Vec::new();
    let timed: Vec<&Row> = rows.iter().filter(|r| r.error.is_none()).collect();
    let charts: [(&str, &str, Metric); 3] = [
        ("time_ratio.png", "median wall time / native", |r| r.ratio),
        ("faults.png", "minor faults (ru_minflt, median)", |r| {
            r.minor_faults
        }),
        (
            "pager_faults.png",
            "faults handled by the pager (--stats, median)",
            Row::pager_faults,
        ),
    ];
    for (file, title, value) in charts {
        if !timed.iter().any(|r| value(r).is_some()) {
            continue;
        }
        let path = out.join(file);
        chart(&path, title, &timed, value)
            .map_err(|e| format!("drawing {}: {e}", path.display()))?;
        files.push(path);
    }
    Ok(files)
}

fn chart(
    path: &Path,
    title: &str,
    rows: &[&Row],
    value: Metric,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    let configs_max = workloads
        .iter()
        .map(|w| rows.iter().filter(|r| &r.workload == w).count())
        .max()
        .unwrap_or(1);
    let columns = 2usize;
    let grid_rows = workloads.len().div_ceil(columns);
    let panel_height = 90 + 24 * configs_max as u32;
    let root =
        BitMapBackend::new(path, (1400, 50 + panel_height * grid_rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 26))?;
    let panels = root.split_evenly((grid_rows, columns));
    for (workload, panel) in workloads.iter().zip(panels.iter()) {
        let bars: Vec<(&str, f64)> = rows
            .iter()
            .filter(|r| &r.workload == workload)
            .filter_map(|r| Some((r.config.as_str(), value(r)?)))
            .collect();
        if bars.is_empty() {
            continue;
        }
        let max = bars
            .iter()
            .map(|(_, v)| *v)
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let is_ratio = title.contains("/ native");
        let x_max = if is_ratio {
            max.max(1.0) * 1.15
        } else {
            max * 1.15
        };
        let n = bars.len();
        let mut chart = ChartBuilder::on(panel)
            .caption(*workload, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(150)
            .build_cartesian_2d(0f64..x_max, (0usize..n).into_segmented())?;
        let labels: Vec<&str> = bars.iter().map(|(l, _)| *l).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    labels.get(*i).copied().unwrap_or("").to_owned()
                }
                SegmentValue::Last => String::new(),
            })
            .label_style(("sans-serif", 14))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (label, v))| {
            let color = if *label == "native" {
                RGBColor(150, 150, 150).to_rgba()
            } else {
                Palette99::pick(i).to_rgba()
            };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let text = if is_ratio {
                format!("{v:.3}")
            } else {
                format!("{v:.0}")
            };
            Text::new(
                text,
                (*v, SegmentValue::CenterOf(i)),
                ("sans-serif", 13).into_font(),
            )
        }))?;
        if is_ratio {
            chart.draw_series(LineSeries::new(
                [(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Last)],
                BLACK.stroke_width(1),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}
