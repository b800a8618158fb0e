//! dpager: maps only the page that holds the entry point (and the stack it builds); every other page of
//! the program is made accessible when first touched, from a SIGSEGV handler.
#![no_std]
#![no_main]

use loaders::uexec_load::Laziness;
use loaders::{out, run, Outcome, Tool};
use uexec_pager::Config;

loaders::entry!(main);

fn main(startup: &loaders::uexec_load::Startup) -> i32 {
    let tool = Tool {
        name: "dpager",
        laziness: Laziness {
            file: true,
            anon: true,
        },
        keeps_log: true,
    };
    let started = match run(tool, startup) {
        Outcome::Start(s) => s,
        Outcome::Exit(status) => return status,
    };
    let ready = &started.ready;
    let config = Config {
        tool: "dpager",
        log_fd: started.log_fd,
        lazy_file: true,
        lazy_anon: true,
    };
    // SAFETY: called once, single-threaded, with the image just mapped lazily at this bias.
    if let Err(e) = unsafe {
        uexec_pager::install(
            &ready.image,
            ready.program.bias,
            &config,
            Some(ready.program.entry),
        )
    } {
        out::error_line("dpager", b"", loaders::PagerError(e));
        return 126;
    }
    // SAFETY: the process is fully built; the pager is installed.
    unsafe { loaders::uexec_load::handover::jump(ready.entry, ready.stack.sp) }
}
