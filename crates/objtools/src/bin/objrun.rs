//! `objrun [--lib PATH]... PROG.o [ARGS...]`: loads the libraries, then the program, runs its
//! `main(argc, argv)` and exits with what it returns. A load error is printed one problem per line, and
//! the exit status is 1.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::exit;

use clap::Parser;

/// Runs a relocatable object's main, linked against this process and the given libraries.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// An object (.o) or archive (.a) to load as a library first; may be repeated.
    #[arg(long = "lib", value_name = "PATH")]
    libs: Vec<PathBuf>,
    /// The program: an object or archive that defines `main`.
    #[arg(value_name = "PROG.o")]
    program: PathBuf,
    /// Arguments passed to the program's main (argv[1] onwards).
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
}

fn fail(e: &objload::Error) -> ! {
    for line in e.to_string().lines() {
        eprintln!("objrun: {line}");
    }
    exit(1)
}

fn main() {
    // Keep the C layer in this executable's symbol table: loaded programs may call it.
    std::hint::black_box(objload::capi::exports());
    let cli = Cli::parse();
    for lib in &cli.libs {
        if let Err(e) = objload::load_library(lib) {
            fail(&e);
        }
    }
    let program = objload::load_program(&cli.program).unwrap_or_else(|e| fail(&e));
    let mut argv = vec![cli.program.clone().into_os_string()];
    argv.extend(cli.args);
    // SAFETY: running the program the user named is this tool's purpose; its main has the C signature.
    let status = unsafe { program.run(&argv) };
    // Destructors: the program's, then the libraries' in reverse load order.
    drop(program);
    for lib in cli.libs.iter().rev() {
        if let Err(e) = objload::unload_library(lib) {
            eprintln!("objrun: {e}");
        }
    }
    // libc's exit flushes the program's stdio buffers.
    exit(status)
}
