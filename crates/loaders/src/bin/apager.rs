//! apager: loads an ELF program all at once (every segment mapped up front) and runs it.
#![no_std]
#![no_main]

use loaders::uexec_load::handover::{jump, jump_releasing};
use loaders::uexec_load::Laziness;
use loaders::{checkpoint, run, Outcome, Tool};

loaders::entry!(main);

fn main(startup: &loaders::uexec_load::Startup) -> i32 {
    let tool = Tool {
        name: "apager",
        laziness: Laziness::EAGER,
        pager: false,
        predicts: false,
    };
    let started = match run(tool, startup) {
        Outcome::Start(s) => s,
        Outcome::Exit(status) => return status,
    };
    let ready = started.ready;
    if let Some(request) = &started.checkpoint {
        // The loader's kernel-given stack holds its argv; the program has a stack of its own.
        let own_stack = startup.args().next().map_or(0, |a| a.as_ptr() as u64);
        // SAFETY: single-threaded, just before the jump; with a checkpoint the loader stays (no release).
        let installed = unsafe { checkpoint::install(tool.name, request, &[own_stack], &[], None) };
        if let Err(status) = installed {
            return status;
        }
    }
    // SAFETY: `run` returned a fully built process and closed every descriptor it opened but the
    // program's, which the release closes; apager's own code never runs again, so it may unmap itself.
    unsafe {
        match &ready.release {
            Some(release) => jump_releasing(ready.entry, ready.stack.sp, release),
            None => jump(ready.entry, ready.stack.sp),
        }
    }
}
