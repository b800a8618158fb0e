//! Build steps of objtools:
//! - objrun and objsh are linked with a GNU build-id (objload checks the running executable against its
//!   file through it; rust-lld omits it unless asked);
//! - the shell's command objects (`commands/*.c`) are compiled with `$CC` (default `gcc`) into `OUT_DIR`,
//!   from where objsh embeds them, so that they are found with no flag wherever the binary goes.

use std::path::PathBuf;

use uexec_cbuild::{compile_all, Compile};

const COMMANDS: &[&str] = &["ls", "semdump"];

fn main() {
    println!("cargo:rustc-link-arg=-Wl,--build-id");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".to_owned());
    let jobs: Vec<Compile> = COMMANDS
        .iter()
        .map(|name| {
            let src = format!("commands/{name}.c");
            println!("cargo:rerun-if-changed={src}");
            Compile::new(&cc, out.join(format!("{name}.o")))
                .flags(&["-O2", "-fPIC", "-Wall", "-Wextra", "-c"])
                .source(src)
        })
        .collect();
    compile_all("objsh's command objects", &jobs);
}
