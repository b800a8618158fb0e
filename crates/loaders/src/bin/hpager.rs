//! hpager: maps text and initialised data up front, bss (and every other anonymous page) on demand, and
//! on each fault also the pages its `--predict` policy expects to be touched next.
#![no_std]
#![no_main]

use loaders::uexec_load::Laziness;
use loaders::{pager_main, Tool};

loaders::entry!(main);

fn main(startup: &loaders::uexec_load::Startup) -> i32 {
    let tool = Tool {
        name: "hpager",
        laziness: Laziness {
            file: false,
            anon: true,
        },
        pager: true,
        predicts: true,
    };
    pager_main(tool, startup)
}
