//! `objsh [--commands DIR]`: a line-oriented shell whose commands are relocatable objects.
//!
//! Built-in words: `load PATH`, `unload PATH`, `libs`, `call NAME [INT...]`, `exit`. Any other word is a
//! command object: `WORD.o` from `--commands DIR` if given and present there, else one of the commands
//! built with objtools (`ls`, `semdump`, embedded in this binary); it is loaded, its `main` run with the
//! words as `argv`, and unloaded. The prompt is shown, and line editing with history offered, only when
//! standard input is a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Parser;

/// A shell whose commands are relocatable objects.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Directory of command objects (WORD.o), searched before the built-in commands.
    #[arg(long, value_name = "DIR")]
    commands: Option<PathBuf>,
}

/// The commands built with objtools.
const BUILTIN: &[(&str, &[u8])] = &[
    ("ls", include_bytes!(concat!(env!("OUT_DIR"), "/ls.o"))),
    (
        "semdump",
        include_bytes!(concat!(env!("OUT_DIR"), "/semdump.o")),
    ),
];

const PROMPT: &str = "objsh$ ";

fn report(e: &objload::Error) {
    for line in e.to_string().lines() {
        eprintln!("objsh: {line}");
    }
}

fn parse_int(word: &str) -> Option<i64> {
    let (neg, digits) = match word.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, word),
    };
    let v = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// `call NAME [INT...]`: calls the function as `long NAME(long, ...)` with up to six arguments.
fn call(name: &str, args: &[&str]) -> Result<i64, String> {
    let mut v = Vec::with_capacity(args.len());
    for a in args {
        v.push(parse_int(a).ok_or_else(|| format!("call: `{a}` is not an integer"))?);
    }
    let handle = objload::find_library_function(name).map_err(|e| e.to_string())?;
    let addr = handle.addr();
    type F6 = extern "C" fn(i64, i64, i64, i64, i64, i64) -> i64;
    if v.len() > 6 {
        return Err("call: at most 6 integer arguments".to_owned());
    }
    v.resize(6, 0);
    // SAFETY: the user asked for this call; on x86-64 SysV passing six integer registers to a function
    // that reads fewer is harmless, and the result is read from rax. The handle keeps the library loaded.
    let result = unsafe {
        let f = std::mem::transmute::<usize, F6>(addr);
        f(v[0], v[1], v[2], v[3], v[4], v[5])
    };
    drop(handle);
    Ok(result)
}

fn libs() {
    let libs = objload::libraries();
    println!(
        "{:<40} {:<24} {:<18} {:>4} {:>7}",
        "LIBRARY", "FUNCTION", "ADDRESS", "DEPS", "HANDLES"
    );
    for lib in libs {
        let path = lib.path.display().to_string();
        if lib.functions.is_empty() {
            println!(
                "{path:<40} {:<24} {:<18} {:>4} {:>7}",
                "-", "-", lib.dependents, lib.handles
            );
        }
        for (name, addr) in &lib.functions {
            println!(
                "{path:<40} {name:<24} {:<18} {:>4} {:>7}",
                format!("{addr:#x}"),
                lib.dependents,
                lib.handles
            );
        }
    }
}

fn flush_c_stdio() {
    // SAFETY: fflush(NULL) flushes every C stdio output stream; it takes no pointer from us.
    unsafe { libc::fflush(std::ptr::null_mut()) };
}

fn run_command(dir: Option<&Path>, words: &[&str]) {
    let Some(&word) = words.first() else { return };
    let from_dir = dir
        .map(|d| d.join(format!("{word}.o")))
        .filter(|p| p.is_file());
    let program = match (&from_dir, BUILTIN.iter().find(|(n, _)| *n == word)) {
        (Some(path), _) => objload::load_program(path),
        (None, Some((name, bytes))) => objload::load_program_bytes(&format!("{name}.o"), bytes),
        (None, None) => {
            eprintln!("objsh: {word}: command not found");
            return;
        }
    };
    let program = match program {
        Ok(p) => p,
        Err(e) => return report(&e),
    };
    let _ = std::io::stdout().flush();
    // SAFETY: command objects are C programs with `int main(int, char **)`, chosen by the user.
    let status = unsafe { program.run(words) };
    flush_c_stdio();
    drop(program);
    if status != 0 {
        eprintln!("objsh: {word}: exit status {status}");
    }
}

/// Runs one line; `false` on `exit`.
fn execute(cli: &Cli, line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => {}
        ["exit"] => return false,
        ["load", path] => {
            if let Err(e) = objload::load_library(path) {
                report(&e);
            }
        }
        ["unload", path] => {
            if let Err(e) = objload::unload_library(path) {
                report(&e);
            }
        }
        ["libs"] => libs(),
        ["call", name, args @ ..] => match call(name, args) {
            Ok(v) => println!(" = {v}"),
            Err(e) => eprintln!("objsh: {e}"),
        },
        ["load" | "unload", ..] => eprintln!("objsh: usage: {} PATH", words[0]),
        ["call"] => eprintln!("objsh: usage: call NAME [INT...]"),
        _ => run_command(cli.commands.as_deref(), &words),
    }
    let _ = std::io::stdout().flush();
    true
}

fn main() {
    // Keep the C layer in this executable's symbol table: command objects may call it.
    std::hint::black_box(objload::capi::exports());
    let cli = Cli::parse();
    if std::io::stdin().is_terminal() {
        if let Ok(mut editor) = rustyline::DefaultEditor::new() {
            while let Ok(line) = editor.readline(PROMPT) {
                let _ = editor.add_history_entry(line.as_str());
                if !execute(&cli, &line) {
                    break;
                }
            }
            return;
        }
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if !execute(&cli, &line) {
            break;
        }
    }
}
