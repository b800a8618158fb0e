//! dpager: maps only the page that holds the entry point (and the stack it builds); every other page of
//! the program is made accessible when first touched, from a SIGSEGV handler.
#![no_std]
#![no_main]

use loaders::uexec_load::Laziness;
use loaders::{pager_main, Tool};

loaders::entry!(main);

fn main(startup: &loaders::uexec_load::Startup) -> i32 {
    let tool = Tool {
        name: "dpager",
        laziness: Laziness {
            file: true,
            anon: true,
        },
        pager: true,
        predicts: false,
    };
    pager_main(tool, startup)
}
