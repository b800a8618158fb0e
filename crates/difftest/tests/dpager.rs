//! Every fixture natively and under `dpager -q`; stdout and exit status must match.
//! Skipped, with a printed line, while dpager is not built.

use difftest::{check_fixture, optional_loader};

fn check(name: &str, variant: &str) {
    let Some(dpager) = optional_loader("dpager", &format!("{name} ({variant}) under dpager"))
    else {
        return;
    };
    if let Err(report) = check_fixture(&dpager, &["-q"], name, variant) {
        panic!("\n{report}");
    }
}

include!(concat!(env!("OUT_DIR"), "/fixture_tests.rs"));
