//! The statistics the benchmark reports: percentiles of a set of samples, and the
//! `key=value` statistics line that `dpager --stats` and `hpager --stats` print.
//!
//! This is the only part of the tool with unit tests: timing itself never goes in a test.

use std::collections::BTreeMap;

/// The `q`-th quantile (0 <= q <= 1) of `sorted`, which must be sorted ascending, by linear
/// interpolation between the two closest ranks (Hyndman and Fan's type 7, the default of R
/// and NumPy). `None` for an empty slice.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let q = q.clamp(0.0, 1.0);
    let h = q * last as f64;
    let below = h.floor() as usize;
    let above = (below + 1).min(last);
    let lo = sorted[below];
    let hi = sorted[above];
    Some(lo + (h - below as f64) * (hi - lo))
}

/// Median and the 10th and 90th percentiles of a set of samples.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
}

impl Spread {
    /// The spread of `samples` (any order; NaNs sort last). `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            median: quantile(&sorted, 0.5)?,
            p10: quantile(&sorted, 0.1)?,
            p90: quantile(&sorted, 0.9)?,
        })
    }
}

/// The median of `samples`, or `None` when there are none.
pub fn median(samples: &[f64]) -> Option<f64> {
    Spread::of(samples).map(|s| s.median)
}

/// Parses the statistics a pager prints on stderr when the program ends: the last line that
/// holds `key=value` fields with numeric values. Other fields on that line (a `dpager:`
/// prefix, a word) are ignored; a value may carry a unit suffix such as `%` or `kB`, which is
/// dropped. Returns an empty map when no line has any such field.
pub fn parse_stats(stderr: &str) -> BTreeMap<String, f64> {
    stderr
        .lines()
        .rev()
        .map(parse_stats_line)
        .find(|fields| !fields.is_empty())
        .unwrap_or_default()
}

fn parse_stats_line(line: &str) -> BTreeMap<String, f64> {
    line.split_whitespace()
        .filter_map(|field| {
            let (key, value) = field.split_once('=')?;
            let number = value.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
            let value = number.parse::<f64>().ok()?;
            (!key.is_empty() && value.is_finite()).then(|| (key.to_owned(), value))
        })
        .collect()
}

/// Per key, the median over several runs' statistics; a key missing from some runs is the
/// median of the runs that have it.
pub fn median_stats(runs: &[BTreeMap<String, f64>]) -> BTreeMap<String, f64> {
    let mut by_key: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for run in runs {
        for (key, value) in run {
            by_key.entry(key).or_default().push(*value);
        }
    }
    by_key
        .into_iter()
        .filter_map(|(key, values)| Some((key.to_owned(), median(&values)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_nothing_and_of_one() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(
            Spread::of(&[7.0]),
            Some(Spread {
                median: 7.0,
                p10: 7.0,
                p90: 7.0
            })
        );
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        // 0..=10: rank h = q * 10 falls exactly on a sample.
        let samples: Vec<f64> = (0..=10).rev().map(f64::from).collect();
        let s = Spread::of(&samples).unwrap();
        assert_eq!((s.p10, s.median, s.p90), (1.0, 5.0, 9.0));
        // 1, 2, 3, 4: p10 at h = 0.3 is 1.3, p90 at h = 2.7 is 3.7 (NumPy's answers).
        let s = Spread::of(&[4.0, 2.0, 1.0, 3.0]).unwrap();
        assert!(
            (s.p10 - 1.3).abs() < 1e-12 && (s.p90 - 3.7).abs() < 1e-12,
            "{s:?}"
        );
    }

    #[test]
    fn quantile_bounds_are_the_extremes() {
        let sorted = [1.0, 5.0, 9.0];
        assert_eq!(quantile(&sorted, 0.0), Some(1.0));
        assert_eq!(quantile(&sorted, 1.0), Some(9.0));
        assert_eq!(quantile(&sorted, 2.0), Some(9.0));
    }

    #[test]
    fn stats_line_is_the_last_with_fields() {
        let stderr = "some log line\n\
                      dpager: stats faults=120 demand=118 predicted=0 hit%=35.5% peak_rss=1024kB\n\
                      \n";
        let stats = parse_stats(stderr);
        assert_eq!(stats.get("faults"), Some(&120.0));
        assert_eq!(stats.get("hit%"), Some(&35.5));
        assert_eq!(stats.get("peak_rss"), Some(&1024.0));
        assert_eq!(stats.len(), 5);
    }

    #[test]
    fn no_stats_is_an_empty_map() {
        assert!(parse_stats("").is_empty());
        assert!(parse_stats("apager: map 0x400000 0x1000 r-x file@0x0 segment[0]\n").is_empty());
        assert!(parse_stats("a=b c=\n=5\n").is_empty());
    }

    #[test]
    fn median_stats_per_key() {
        let runs: Vec<BTreeMap<String, f64>> = ["faults=1 waste=4", "faults=3", "faults=2 waste=6"]
            .iter()
            .map(|l| parse_stats(l))
            .collect();
        let m = median_stats(&runs);
        assert_eq!(m.get("faults"), Some(&2.0));
        assert_eq!(m.get("waste"), Some(&5.0));
    }
}
