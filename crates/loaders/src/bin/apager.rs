//! apager: loads an ELF program all at once (every segment mapped up front) and runs it.
#![no_std]
#![no_main]

use loaders::{run, Outcome};

loaders::entry!(main);

fn main(startup: &loaders::uexec_load::Startup) -> i32 {
    match run("apager", startup) {
        // SAFETY: `run` returned a fully built process and closed every descriptor it opened.
        Outcome::Start(ready) => unsafe {
            loaders::uexec_load::handover::jump(ready.entry, ready.stack.sp)
        },
        Outcome::Exit(status) => status,
    }
}
