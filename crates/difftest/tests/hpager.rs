//! Every fixture natively and under `hpager -q --predict=POLICY` for every policy
//! (and both default window sizes for `adaptive` and `next`); stdout and exit
//! status must match, as the invoker and as uid 65534. hpager not being built is a failure.

use difftest::{check_fixture, require_loader};

const CONFIGS: &[&[&str]] = &[
    &["-q", "--predict=none"],
    &["-q", "--predict=next", "--pages=2"],
    &["-q", "--predict=next", "--pages=3"],
    &["-q", "--predict=stride"],
    &["-q", "--predict=trend"],
    &["-q", "--predict=adaptive", "--pages=2"],
    &["-q", "--predict=adaptive", "--pages=3"],
];

fn check(name: &str, variant: &str) {
    let hpager = require_loader("hpager");
    let failures: Vec<String> = CONFIGS
        .iter()
        .filter_map(|args| check_fixture(&hpager, args, name, variant).err())
        .collect();
    if !failures.is_empty() {
        panic!("\n{}", failures.join("\n"));
    }
}

include!(concat!(env!("OUT_DIR"), "/fixture_tests.rs"));
