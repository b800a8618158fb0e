//! Every fixture natively and under `apager -q`, as the invoker and as uid 65534; stdout and exit
//! status must match. Also the fixture linked at the loader's own address, which apager must refuse
//! under both identities.
//! apager not being built is a failure (build it with `make`).

use difftest::{
    check_fixture, identities, require_loader, run_native_as, run_under_as, variants, Role, Status,
};

fn check(name: &str, variant: &str) {
    let apager = require_loader("apager");
    if let Err(report) = check_fixture(&apager, &["-q"], name, variant) {
        panic!("\n{report}");
    }
}

include!(concat!(env!("OUT_DIR"), "/fixture_tests.rs"));

/// `fixed_addr` is linked at 0x3c0000000000, where the loaders live: natively it
/// runs; apager must refuse it with status 126 and one line saying it "overlaps".
#[test]
fn fixed_address_program_is_refused() {
    let apager = require_loader("apager");
    let mut seen = 0;
    for (&who, fx) in identities()
        .iter()
        .flat_map(|who| variants("fixed_addr").map(move |fx| (who, fx)))
    {
        assert_eq!(fx.role, Role::Refused);
        seen += 1;
        let native = run_native_as(who, fx.path, &[] as &[&str]);
        assert_eq!(
            native.status,
            Status::Code(0),
            "fixed_addr ({}) must run natively {who}: {native:?}",
            fx.variant
        );
        assert_eq!(native.stdout, b"fixed_addr: running at 0x3c0000000000\n");

        let out = run_under_as(who, &apager, &["-q"], fx.path, &[] as &[&str]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status,
            Status::Code(126),
            "apager must refuse fixed_addr with 126 {who}; stderr: {stderr:?}"
        );
        assert!(
            out.stdout.is_empty(),
            "the refused program must not have run: stdout {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected a one-line message, got {stderr:?}"
        );
        assert!(
            lines[0].contains("overlaps"),
            "the message must say the program overlaps: {stderr:?}"
        );
    }
    assert!(seen > 0, "fixed_addr was not built");
}
