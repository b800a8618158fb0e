//! apager: loads an ELF program all at once (every segment mapped up front) and runs it.
#![no_std]
#![no_main]

use loaders::uexec_load::Laziness;
use loaders::{run, Outcome, Tool};

loaders::entry!(main);

fn main(startup: &loaders::uexec_load::Startup) -> i32 {
    let tool = Tool {
        name: "apager",
        laziness: Laziness::EAGER,
        pager: false,
        predicts: false,
    };
    match run(tool, startup) {
        // SAFETY: `run` returned a fully built process and closed every descriptor it opened.
        Outcome::Start(s) => unsafe {
            loaders::uexec_load::handover::jump(s.ready.entry, s.ready.stack.sp)
        },
        Outcome::Exit(status) => status,
    }
}
