//! `objsh [--commands DIR]`: a line-oriented shell whose commands are relocatable objects.
//!
//! Built-in words: `load PATH`, `unload PATH`, `libs`, `call NAME [INT...]`, `help`, `exit [N]`. Words
//! are split as a shell splits them: blanks separate, `'...'` is literal, `"..."` keeps blanks and
//! takes `\"` and `\\`, a backslash outside quotes escapes the next character. Any other word is a
//! command object: `WORD.o` from `--commands DIR` if given and present there, else one of the commands
//! built with objtools (`ls`, `semdump`, embedded in this binary); it is loaded, its `main` run with the
//! words as `argv`, and unloaded. The prompt is shown, and line editing with history (kept in
//! `~/.objsh_history`) and tab completion (`complete`) offered, only when standard input is a terminal;
//! there Ctrl-C clears the line and Ctrl-D exits. `call` checks the number of arguments against the
//! function's debugging information when there is some (`arity`); calls and command objects run guarded
//! (`guarded`), so a fault or Ctrl-C in them ends them, not the shell. Read from a pipe or file, objsh
//! exits 1 at its end if any command failed (an `exit N` exits N).

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[path = "objsh_parts/arity.rs"]
mod arity;
#[path = "objsh_parts/complete.rs"]
mod complete;
#[path = "objsh_parts/guarded.rs"]
mod guarded;

use clap::Parser;

/// A shell whose commands are relocatable objects.
#[derive(Parser, Debug)]
#[command(name = "objsh", version, about)]
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

/// Libraries whose called code faulted or was interrupted: unsafe to call until unloaded and loaded
/// again (see `guarded`).
static UNSAFE_LIBRARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn unsafe_libraries() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNSAFE_LIBRARIES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Per loaded library: its functions' parameters from its debugging information (`arity`), read at its
/// first call and forgotten when it is unloaded. An empty table: built without `-g`, nothing to check.
static ARITIES: Mutex<Vec<(PathBuf, HashMap<String, arity::Arity>)>> = Mutex::new(Vec::new());

/// Why calling `name` of `library` with `given` arguments is refused, if it is. A library without
/// debugging information gets one note, at its first call, that its calls are not checked.
fn check_arity(library: &Path, name: &str, given: usize) -> Option<String> {
    let mut known = ARITIES.lock().unwrap_or_else(|e| e.into_inner());
    let index = match known.iter().position(|(p, _)| p == library) {
        Some(i) => i,
        None => {
            let table = arity::functions(library);
            if table.is_empty() {
                eprintln!(
                    "objsh: note: {} has no debugging information (build it with -g): the number of \
                     arguments of its functions is not checked",
                    library.display()
                );
            }
            known.push((library.to_path_buf(), table));
            known.len() - 1
        }
    };
    let arity = known[index].1.get(name)?;
    arity::mismatch(name, arity, given)
}

fn forget_arities(library: &Path) {
    let mut known = ARITIES.lock().unwrap_or_else(|e| e.into_inner());
    known.retain(|(p, _)| p != library);
}

/// `call NAME [INT...]`: calls the function as `long NAME(long, ...)` with up to six arguments, on a
/// thread of its own (`guarded`), so that a fault or a Ctrl-C in it ends the call, not the shell.
fn call(name: &str, args: &[&str]) -> Result<i64, String> {
    let mut v = Vec::with_capacity(args.len());
    for a in args {
        v.push(parse_int(a).ok_or_else(|| format!("call: `{a}` is not an integer"))?);
    }
    if v.len() > 6 {
        return Err("call: at most 6 integer arguments".to_owned());
    }
    let handle = objload::find_library_function(name).map_err(|e| e.to_string())?;
    let library = handle.library().to_path_buf();
    if unsafe_libraries().contains(&library) {
        return Err(format!(
            "call: {name}: {} faulted or was interrupted earlier; unload and load it again first",
            library.display()
        ));
    }
    if let Some(why) = check_arity(&library, name, v.len()) {
        return Err(format!("call: {why}"));
    }
    let addr = handle.addr();
    type F6 = extern "C" fn(i64, i64, i64, i64, i64, i64) -> i64;
    v.resize(6, 0);
    let outcome = guarded::run(move || {
        // SAFETY: the user asked for this call; on x86-64 SysV passing six integer registers to a
        // function that reads fewer is harmless, and the result is read from rax. The handle, held by
        // the shell thread until the call has ended, keeps the library loaded.
        unsafe {
            let f = std::mem::transmute::<usize, F6>(addr);
            f(v[0], v[1], v[2], v[3], v[4], v[5])
        }
    });
    flush_c_stdio();
    drop(handle);
    match outcome {
        guarded::Outcome::Returned(result) => Ok(result),
        guarded::Outcome::Faulted { signal, addr } => {
            unsafe_libraries().push(library.clone());
            Err(format!(
                "call: {name}: {} at address {addr:#x} in {name} ({}); the library is unsafe to \
                 call until it is unloaded and loaded again",
                guarded::signal_name(signal),
                library.display()
            ))
        }
        guarded::Outcome::Interrupted => {
            unsafe_libraries().push(library.clone());
            Err(format!(
                "call: {name}: interrupted; {} is unsafe to call until it is unloaded and loaded again",
                library.display()
            ))
        }
    }
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

/// Runs a command object; `false` if it could not be run or returned non-zero.
fn run_command(dir: Option<&Path>, words: &[&str]) -> bool {
    let Some(&word) = words.first() else {
        return true;
    };
    let from_dir = dir
        .map(|d| d.join(format!("{word}.o")))
        .filter(|p| p.is_file());
    let program = match (&from_dir, BUILTIN.iter().find(|(n, _)| *n == word)) {
        (Some(path), _) => objload::load_program(path),
        (None, Some((name, bytes))) => objload::load_program_bytes(&format!("{name}.o"), bytes),
        (None, None) => {
            eprintln!("objsh: {word}: command not found");
            return false;
        }
    };
    let program = match program {
        Ok(p) => p,
        Err(e) => {
            report(&e);
            return false;
        }
    };
    let _ = std::io::stdout().flush();
    let program = std::sync::Arc::new(program);
    let running = std::sync::Arc::clone(&program);
    let args: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    // SAFETY: command objects are C programs with `int main(int, char **)`, chosen by the user.
    let outcome = guarded::run(move || unsafe { running.run(&args) });
    flush_c_stdio();
    match outcome {
        guarded::Outcome::Returned(status) => {
            drop(program);
            if status != 0 {
                eprintln!("objsh: {word}: exit status {status}");
            }
            status == 0
        }
        ended => {
            // Its thread ended inside it: its destructors must not run, nor its image go away under
            // state it may have left behind (the ended thread's clone of the handle is never dropped).
            std::mem::forget(program);
            match ended {
                guarded::Outcome::Faulted { signal, addr } => eprintln!(
                    "objsh: {word}: {} at address {addr:#x}",
                    guarded::signal_name(signal)
                ),
                _ => eprintln!("objsh: {word}: interrupted"),
            }
            false
        }
    }
}

/// Splits a line into words as a shell does (see the module header); `Err` for an unterminated quote.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                words.extend(word.take());
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated '".to_owned()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unterminated \"".to_owned()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated \"".to_owned()),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                if let Some(c) = chars.next() {
                    w.push(c);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

const HELP: &str = "\
load PATH          load an object (.o) or archive (.a) as a library
unload PATH        unload a library
libs               list loaded libraries and their functions
call NAME [INT...] call a loaded function as long NAME(long, ...), up to 6 integers
help               this list
exit [N]           leave objsh with status N (default 0)
WORD [ARGS...]     run the command object WORD.o (--commands DIR, else built in: ls, semdump)
";

/// What a line asked for.
enum Step {
    /// Go on; `false` if the line's command failed.
    Next(bool),
    /// `exit [N]`.
    Exit(i32),
}

/// Runs one line.
fn execute(cli: &Cli, line: &str) -> Step {
    let words = match split_words(line) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("objsh: {e}");
            return Step::Next(false);
        }
    };
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let ok = match words.as_slice() {
        [] => true,
        ["exit"] => return Step::Exit(0),
        ["exit", n] => match n.parse::<i32>() {
            Ok(n) => return Step::Exit(n),
            Err(_) => {
                eprintln!("objsh: exit: `{n}` is not a number");
                false
            }
        },
        ["help"] => {
            print!("{HELP}");
            true
        }
        ["load", path] => objload::load_library(path).map_err(|e| report(&e)).is_ok(),
        ["unload", path] => match objload::unload_library(path) {
            Ok(()) => {
                let gone = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
                unsafe_libraries().retain(|l| *l != gone && l.as_path() != Path::new(path));
                forget_arities(&gone);
                forget_arities(Path::new(path));
                true
            }
            Err(e) => {
                report(&e);
                false
            }
        },
        ["libs"] => {
            libs();
            true
        }
        ["call", name, args @ ..] => match call(name, args) {
            Ok(v) => {
                println!(" = {v}");
                true
            }
            Err(e) => {
                eprintln!("objsh: {e}");
                false
            }
        },
        ["load" | "unload", ..] => {
            eprintln!("objsh: usage: {} PATH", words[0]);
            false
        }
        ["call"] => {
            eprintln!("objsh: usage: call NAME [INT...]");
            false
        }
        ["exit", ..] => {
            eprintln!("objsh: usage: exit [N]");
            false
        }
        _ => run_command(cli.commands.as_deref(), &words),
    };
    let _ = std::io::stdout().flush();
    Step::Next(ok)
}

/// The terminal session: a prompt, line editing, completion (`complete`) and a history file. `None` if
/// the line editor cannot start (objsh then reads its input as from a pipe).
fn interactive(cli: &Cli) -> Option<i32> {
    let config = rustyline::Config::builder()
        .completion_type(rustyline::CompletionType::List)
        .auto_add_history(true)
        .build();
    let mut editor =
        rustyline::Editor::<complete::ObjshHelper, rustyline::history::FileHistory>::with_config(
            config,
        )
        .ok()?;
    // The editor replaced the SIGINT handler with its own for as long as it lives; at its prompt the
    // terminal is in raw mode and Ctrl-C arrives as a key, so only a running call needs the signal, and
    // that is the guarded-call handler's job.
    guarded::install_handlers();
    editor.set_helper(Some(complete::ObjshHelper::new(
        cli.commands.clone(),
        BUILTIN.iter().map(|(name, _)| *name).collect(),
    )));
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".objsh_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let status = loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if let Step::Exit(n) = execute(cli, &line) {
                    break n;
                }
            }
            // Ctrl-C: a fresh line, as in bash.
            Err(rustyline::error::ReadlineError::Interrupted) => {}
            // Ctrl-D on an empty line, or the terminal gone.
            Err(_) => break 0,
        }
    };
    if let Some(h) = &history {
        if let Err(e) = editor.save_history(h) {
            eprintln!("objsh: {}: cannot save the history: {e}", h.display());
        }
    }
    Some(status)
}

fn main() {
    // Keep the C layer in this executable's symbol table: command objects may call it.
    std::hint::black_box(objload::capi::exports());
    let cli = Cli::parse();
    guarded::install_handlers();
    if let Some(dir) = &cli.commands {
        if !dir.is_dir() {
            eprintln!("objsh: --commands {}: not a directory", dir.display());
            std::process::exit(2);
        }
    }
    if std::io::stdin().is_terminal() {
        if let Some(status) = interactive(&cli) {
            std::process::exit(status);
        }
    }
    let mut failed = false;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match execute(&cli, &line) {
            Step::Exit(n) => std::process::exit(n),
            Step::Next(ok) => failed |= !ok,
        }
    }
    std::process::exit(i32::from(failed));
}
