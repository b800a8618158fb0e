//! Links the loader binaries as static, non-PIE executables at a fixed high address, without any C
//! start-up files or libraries: they bring their own `_start`, and their own address must stay clear of
//! where programs are linked (0x400000, 0x10000, ...) and of where the kernel puts PIEs, the mmap area and
//! the stack. Only the binaries get these flags; the library and its tests link normally.

/// Where the loaders' first segment goes. Documented in README.md; a fixture is linked here on purpose to
/// test the refusal of programs that would overlap the loader.
const LOADER_BASE: &str = "0x3c0000000000";

fn main() {
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        &format!("-Wl,--image-base={LOADER_BASE}"),
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-env=UEXEC_LOADER_BASE={LOADER_BASE}");
    println!("cargo:rerun-if-changed=build.rs");
}
