//! apager: loads an ELF program all at once (every segment mapped up front) and runs it.
#![no_std]
#![no_main]

use loaders::uexec_load::handover::{jump, jump_releasing};
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
    let ready = match run(tool, startup) {
        Outcome::Start(s) => s.ready,
        Outcome::Exit(status) => return status,
    };
    // SAFETY: `run` returned a fully built process and closed every descriptor it opened but the
    // program's, which the release closes; apager's own code never runs again, so it may unmap itself.
    unsafe {
        match &ready.release {
            Some(release) => jump_releasing(ready.entry, ready.stack.sp, release),
            None => jump(ready.entry, ready.stack.sp),
        }
    }
}
