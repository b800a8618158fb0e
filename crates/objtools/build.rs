//! Build steps of objtools:
//! - objrun and objsh are linked with a GNU build-id (objload checks the running executable against its
//!   file through it; rust-lld omits it unless asked);
//! - the shell's command objects (`commands/*.c`) are compiled with `$CC` (default `gcc`) into `OUT_DIR`,
//!   from where objsh embeds them, so that they are found with no flag wherever the binary goes.

use std::path::PathBuf;
use std::process::Command;

const COMMANDS: &[&str] = &["ls", "semdump"];

fn main() {
    println!("cargo:rustc-link-arg=-Wl,--build-id");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".to_owned());
    for name in COMMANDS {
        let src = format!("commands/{name}.c");
        println!("cargo:rerun-if-changed={src}");
        let obj = out.join(format!("{name}.o"));
        let status = Command::new(&cc)
            .args(["-O2", "-fPIC", "-Wall", "-Wextra", "-c", &src, "-o"])
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{cc} failed to compile {src}: {s}"),
            Err(e) => panic!("cannot run {cc} to compile {src}: {e} (install gcc, or set CC)"),
        }
    }
}
