//! Building the process an `execve` of an ELF program would build, inside the current process: mapping
//! the program and its interpreter ([`map`]), laying out the initial stack ([`stack`]), setting the
//! program break and `/proc` view ([`exec`]), and jumping in with a clean register file ([`handover`]).
//!
//! `no_std` and allocation-free: the loaders that use it have no runtime of their own, and part of it
//! (the stack builder, the mapping of single pages) must also serve code that runs in a signal handler.
#![no_std]

pub mod error;
pub mod exec;
pub mod file;
pub mod handover;
pub mod map;
pub mod own_image;
pub mod scratch;
pub mod stack;
pub mod startup;

pub use error::{InterpreterError, LoadError};
pub use exec::{load, Ready, Request};
pub use map::{Laziness, MapEvent, Observer, Quiet, Role, Source, Who};
pub use startup::Startup;
