//! A short run of the quick-check harness, and real executables that must be accepted (so the
//! harness models the loader's reading correctly).

#[test]
fn generated_inputs_keep_the_invariants() {
    let mut accepted = 0;
    for i in 0..20_000u64 {
        let mut rng = uexec_fuzz::Rng::new(0x5eed ^ i);
        let (file, size) = uexec_fuzz::generate(&mut rng);
        accepted += u32::from(uexec_fuzz::check_file(&file, size));
    }
    // The generator must reach the code past the header checks, not just feed rejections.
    assert!(
        accepted > 200,
        "only {accepted} of 20000 generated inputs accepted"
    );
}

#[test]
fn real_executables_are_accepted() {
    for path in ["/proc/self/exe", "/bin/sh", "/bin/true"] {
        let Ok(file) = std::fs::read(path) else {
            continue;
        };
        assert!(
            uexec_fuzz::check_file(&file, file.len() as u64),
            "{path} rejected"
        );
        // A sparse tail beyond the bytes read changes nothing about a valid file.
        assert!(
            uexec_fuzz::check_file(&file, file.len() as u64 + 4096 * 1000),
            "{path} rejected"
        );
    }
}

#[test]
fn truncations_never_break_invariants() {
    let file = std::fs::read("/proc/self/exe").expect("reading the test binary");
    for len in (0..file.len().min(0x3000)).step_by(7) {
        uexec_fuzz::check_file(&file[..len], len as u64);
    }
}
