//! User-space demand paging for the uexec loaders (dpager, hpager): the region table ([`regions`]), the
//! SIGSEGV handler that makes pages accessible on first touch ([`pager`]), and the raw system calls and
//! fixed-buffer formatting that code running in a signal handler is limited to ([`sys`], [`text`]).
//!
//! `no_std`, allocation-free, and panic-free on every path the handler takes.
#![no_std]

pub mod dispatch;
pub mod exec;
pub mod fatal;
pub mod lock;
pub mod pager;
pub mod predict;
pub mod regions;
pub mod sys;
pub mod text;
pub mod threads;
pub mod trap;
pub mod window;

pub use pager::{install, Config, SetupError, Stats};
