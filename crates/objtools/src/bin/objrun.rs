//! `objrun [--lib PATH]... PROG.o [ARGS...]`: loads the libraries, then the program, runs its
//! `main(argc, argv)` and exits with what it returns. A load error is printed one problem per line, and
//! the exit status is 1.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::exit;

use clap::Parser;

/// Runs a relocatable object's main, linked against this process and the given libraries.
#[derive(Parser, Debug)]
#[command(name = "objrun", version, about)]
struct Cli {
    /// An object (.o) or archive (.a) to load as a library first; may be repeated.
    #[arg(long = "lib", value_name = "PATH")]
    libs: Vec<PathBuf>,
    /// The program: an object or archive that defines `main`; what follows it is the program's
    /// (`objrun prog.o --lib x` passes `--lib x` to main).
    #[arg(value_name = "PROG.o")]
    program: PathBuf,
    /// Arguments passed to the program's main (argv[1] onwards).
    #[arg(value_name = "ARGS")]
    args: Vec<OsString>,
}

/// Splits the command line where options end, at PROG.o, as for the loaders: objrun's own options
/// before it (a `--` there ends them too), everything from it on the program's, `--` included.
fn split_at_program(args: Vec<OsString>) -> (Vec<OsString>, Vec<OsString>) {
    let mut own = Vec::new();
    let mut rest = args.into_iter();
    own.extend(rest.next()); // argv[0]
    while let Some(arg) = rest.next() {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(arg.as_os_str());
        if bytes == b"--" {
            own.push(arg);
            own.extend(rest.next());
            break;
        }
        let takes_value = bytes == b"--lib";
        let is_option = bytes.starts_with(b"-") && bytes != b"-";
        own.push(arg);
        if takes_value {
            own.extend(rest.next());
        } else if !is_option {
            break;
        }
    }
    (own, rest.collect())
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
    let (own, program_args) = split_at_program(std::env::args_os().collect());
    let mut cli = Cli::parse_from(own);
    cli.args.extend(program_args);
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
