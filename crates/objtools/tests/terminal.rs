//! objsh at a terminal, driven through a pseudo-terminal as a user's keys drive it: Ctrl-C at the prompt,
//! during a `call` and during a command object, Ctrl-D, tab completion, and the history file.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OBJSH: &str = env!("CARGO_BIN_EXE_objsh");
/// How long a key may take to show its effect before the test fails (generous: CI machines are busy).
const PATIENCE: Duration = Duration::from_secs(20);

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("objsh-terminal")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

/// Compiles C source text to an object in `dir`.
fn object(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap_or_else(|e| panic!("{e}"));
    let obj = dir.join(format!("{name}.o"));
    let o = Command::new("gcc")
        .args(["-c", "-O1", "-fPIC"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .unwrap_or_else(|e| panic!("gcc: {e}"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Only the object is left, so that its name is the one completion of its prefix.
    std::fs::remove_file(&src).unwrap_or_else(|e| panic!("{e}"));
    obj
}

/// objsh on the slave side of a pseudo-terminal, as its session leader; the test holds the master.
struct Session {
    child: Child,
    master: std::fs::File,
    seen: Arc<Mutex<Vec<u8>>>,
    /// How much of `seen` earlier expectations consumed.
    read_to: usize,
}

impl Session {
    fn start(args: &[&str], home: &Path) -> Session {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors into the locals; the name pointer may be null and the
        // termios and winsize pointers point to valid values or are null.
        let r = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty succeeded, so both are open descriptors this test owns from now on.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap_or_else(|e| panic!("{e}")));
        let mut cmd = Command::new(OBJSH);
        cmd.args(args)
            .env("HOME", home)
            .env("TERM", "xterm")
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: between fork and exec the child only makes two async-signal-safe system calls: a new
        // session, and the terminal on its standard input as that session's controlling terminal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{OBJSH}: {e}"));
        drop(slave);
        let master = std::fs::File::from(master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once objsh and every copy of the slave are gone.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Session {
            child,
            master,
            seen,
            read_to: 0,
        }
    }

    fn keys(&mut self, keys: &str) {
        self.master
            .write_all(keys.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until `text` appears after what earlier expectations consumed, and consumes through it.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = {
                let seen = self.seen.lock().unwrap();
                seen[self.read_to..]
                    .windows(text.len())
                    .position(|w| w == text.as_bytes())
            };
            if let Some(at) = found {
                self.read_to += at + text.len();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {text:?}; the terminal shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for objsh to exit, and returns its status.
    fn exit_status(mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("objsh did not exit; the terminal shows:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PROMPT: &str = "objsh$ ";

#[test]
fn ctrl_c_at_the_prompt_clears_the_line_and_ctrl_d_exits() {
    let home = scratch("ctrl-c-prompt");
    let mut sh = Session::start(&[], &home);
    sh.expect(PROMPT);
    // A typed line is dropped by Ctrl-C, not run; the next line runs.
    sh.keys("nosuchcommand");
    sh.expect("nosuchcommand");
    sh.keys("\x03");
    sh.expect(PROMPT);
    sh.keys("help\r");
    sh.expect("call NAME [INT...]");
    sh.expect(PROMPT);
    sh.keys("\x04");
    let screen = sh.screen();
    assert_eq!(sh.exit_status(), Some(0), "{screen}");
    assert!(
        !screen.contains("command not found"),
        "the cleared line ran:\n{screen}"
    );
    let history = std::fs::read_to_string(home.join(".objsh_history")).unwrap_or_default();
    assert!(
        history.lines().any(|l| l == "help"),
        "history file: {history:?}"
    );
    assert!(
        !history.contains("nosuchcommand"),
        "history file: {history:?}"
    );
}

#[test]
fn the_history_file_is_read_back_by_the_next_session() {
    let home = scratch("history");
    std::fs::write(home.join(".objsh_history"), "libs\n").unwrap_or_else(|e| panic!("{e}"));
    let mut sh = Session::start(&[], &home);
    sh.expect(PROMPT);
    // Up-arrow recalls the last line of the history file.
    sh.keys("\x1b[A\r");
    sh.expect("LIBRARY");
    sh.expect(PROMPT);
    sh.keys("exit 4\r");
    assert_eq!(sh.exit_status(), Some(4));
    let history = std::fs::read_to_string(home.join(".objsh_history")).unwrap_or_default();
    assert!(history.contains("exit 4"), "history file: {history:?}");
}

#[test]
fn ctrl_c_during_a_call_or_a_command_object_returns_to_the_prompt() {
    let home = scratch("ctrl-c-call");
    let lib = object(
        &home,
        "lib_spin",
        "long spin(void) { for (;;) __asm__ volatile(\"\"); }\nlong twice(long a) { return 2 * a; }\n",
    );
    let commands = home.join("commands");
    std::fs::create_dir_all(&commands).unwrap_or_else(|e| panic!("{e}"));
    object(
        &commands,
        "wait",
        "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n",
    );
    let mut sh = Session::start(&["--commands", commands.to_str().unwrap()], &home);
    sh.expect(PROMPT);
    sh.keys(&format!("load {}\r", lib.display()));
    sh.expect(PROMPT);
    sh.keys("call spin\r");
    // Give the call time to start spinning; Ctrl-C must end it, whenever it comes.
    std::thread::sleep(Duration::from_millis(200));
    sh.keys("\x03");
    sh.expect("call: spin: interrupted");
    sh.expect(PROMPT);
    sh.keys("wait\r");
    std::thread::sleep(Duration::from_millis(200));
    sh.keys("\x03");
    sh.expect("objsh: wait: interrupted");
    sh.expect(PROMPT);
    // The library that was interrupted is refused until reloaded; the shell itself goes on.
    sh.keys("call twice 21\r");
    sh.expect("faulted or was interrupted earlier");
    sh.expect(PROMPT);
    sh.keys(&format!("unload {}\r", lib.display()));
    sh.expect(PROMPT);
    sh.keys(&format!("load {}\r", lib.display()));
    sh.expect(PROMPT);
    sh.keys("call twice 21\r");
    sh.expect(" = 42");
    sh.expect(PROMPT);
    sh.keys("exit\r");
    assert_eq!(sh.exit_status(), Some(0));
}

#[test]
fn tab_completes_commands_functions_and_paths() {
    let home = scratch("complete");
    object(
        &home,
        "lib_names",
        "long unique_name_one(long a) { return a + 1; }\n",
    );
    let mut sh = Session::start(&[], &home);
    sh.expect(PROMPT);
    // A command name.
    sh.keys("hel\t\r");
    sh.expect("call NAME [INT...]");
    sh.expect(PROMPT);
    // A path after `load`.
    sh.keys(&format!("load {}/lib_na\t\r", home.display()));
    sh.expect(PROMPT);
    // A loaded function after `call`.
    sh.keys("call unique_na\t41\r");
    sh.expect(" = 42");
    sh.expect(PROMPT);
    sh.keys("exit\r");
    assert_eq!(sh.exit_status(), Some(0));
}
