//! Every fixture natively and under `dpager -q`, as the invoker and as uid 65534; stdout and exit
//! status must match. dpager not being built is a failure (build it with `make`).

use difftest::{check_fixture, require_loader};

fn check(name: &str, variant: &str) {
    let dpager = require_loader("dpager");
    if let Err(report) = check_fixture(&dpager, &["-q"], name, variant) {
        panic!("\n{report}");
    }
}

include!(concat!(env!("OUT_DIR"), "/fixture_tests.rs"));
