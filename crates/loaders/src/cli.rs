//! The loaders' command line: `LOADER [OPTIONS] PROG [ARGS...]`. Options end at PROG; everything from
//! PROG on belongs to the program. (A hand-written parser: the loaders have no allocator, and a parser
//! library's start-up cost would land on every program they run.)

use core::ffi::CStr;

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Run(Options<'a>),
    Help,
    Version,
    /// A usage error, with what was wrong.
    Usage(UsageError<'a>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageError<'a> {
    MissingProgram,
    MissingValue(&'a CStr),
    UnknownOption(&'a CStr),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    /// `-q`/`--quiet`: no mapping log.
    pub quiet: bool,
    /// `--log FILE`: the mapping log goes to FILE instead of standard error.
    pub log: Option<&'a CStr>,
    /// `--log-append FILE`: the same, appending (what a pager gives the programs it executes).
    pub log_append: Option<&'a CStr>,
    /// `--stats` (pagers): print statistics when the program exits.
    pub stats: bool,
    /// `--predict POLICY` (hpager).
    pub predict: Option<&'a CStr>,
    /// `--pages N` (hpager).
    pub pages: Option<&'a CStr>,
    /// `--argv0 NAME`: the program sees NAME as `argv[0]` instead of PROG (as `exec -a` does).
    pub argv0: Option<&'a CStr>,
    /// `--ckpt-image PATH`: write a checkpoint image to PATH on the checkpoint signal.
    pub ckpt_image: Option<&'a CStr>,
    /// `--ckpt-signal SIG` (default SIGUSR2).
    pub ckpt_signal: Option<&'a CStr>,
    /// Index in argv of PROG.
    pub program: usize,
}

pub use uexec_capture::signal_by_name as parse_signal;

/// Parses the loader's argv (argv[0] included).
pub fn parse<'a>(mut args: impl Iterator<Item = &'a CStr>) -> Command<'a> {
    let mut options = Options::default();
    let _ = args.next();
    let mut index = 1;
    while let Some(arg) = args.next() {
        let bytes = arg.to_bytes();
        if !bytes.starts_with(b"-") || bytes == b"-" {
            options.program = index;
            return Command::Run(options);
        }
        match bytes {
            b"--" => {
                return match args.next() {
                    Some(_) => Command::Run(Options {
                        program: index + 1,
                        ..options
                    }),
                    None => Command::Usage(UsageError::MissingProgram),
                }
            }
            b"-q" | b"--quiet" => options.quiet = true,
            b"-h" | b"--help" => return Command::Help,
            b"-V" | b"--version" => return Command::Version,
            // Bundled short flags, as getopt takes them: `-qV`.
            [b'-', flags @ ..] if flags.len() > 1 && flags.iter().all(|f| b"qhV".contains(f)) => {
                for flag in flags {
                    match flag {
                        b'h' => return Command::Help,
                        b'V' => return Command::Version,
                        _ => options.quiet = true,
                    }
                }
            }
            b"--stats" => options.stats = true,
            _ => {
                // Options with a value: `--name VALUE` or `--name=VALUE`.
                let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
                    Some(eq) => (
                        bytes.get(..eq).unwrap_or(bytes),
                        arg.to_bytes_with_nul().get(eq + 1..),
                    ),
                    None => (bytes, None),
                };
                let slot = match name {
                    b"--log" => &mut options.log,
                    b"--log-append" => &mut options.log_append,
                    b"--predict" => &mut options.predict,
                    b"--pages" => &mut options.pages,
                    b"--argv0" => &mut options.argv0,
                    b"--ckpt-image" => &mut options.ckpt_image,
                    b"--ckpt-signal" => &mut options.ckpt_signal,
                    _ => return Command::Usage(UsageError::UnknownOption(arg)),
                };
                *slot = match inline {
                    Some(tail) => CStr::from_bytes_with_nul(tail).ok(),
                    None => match args.next() {
                        Some(value) => {
                            index += 1;
                            Some(value)
                        }
                        None => return Command::Usage(UsageError::MissingValue(arg)),
                    },
                };
            }
        }
        index += 1;
    }
    Command::Usage(UsageError::MissingProgram)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&'static CStr]) -> Command<'static> {
        parse(args.iter().copied())
    }

    #[test]
    fn bundled_short_flags() {
        assert_eq!(run(&[c"apager", c"-qV", c"prog"]), Command::Version);
        assert_eq!(run(&[c"apager", c"-qh"]), Command::Help);
        assert!(matches!(
            run(&[c"apager", c"-qq", c"prog"]),
            Command::Run(Options {
                quiet: true,
                program: 2,
                ..
            })
        ));
        assert_eq!(
            run(&[c"apager", c"-qx", c"prog"]),
            Command::Usage(UsageError::UnknownOption(c"-qx"))
        );
    }

    #[test]
    fn options_stop_at_the_program() {
        let cmd = run(&[c"apager", c"-q", c"prog", c"-q", c"--help"]);
        assert_eq!(
            cmd,
            Command::Run(Options {
                quiet: true,
                log: None,
                program: 2,
                ..Options::default()
            })
        );
    }

    #[test]
    fn log_file_both_spellings() {
        let cmd = run(&[c"apager", c"--log", c"/tmp/x", c"prog"]);
        assert_eq!(
            cmd,
            Command::Run(Options {
                quiet: false,
                log: Some(c"/tmp/x"),
                program: 3,
                ..Options::default()
            })
        );
        let cmd = run(&[c"apager", c"--log=/tmp/y", c"prog", c"a"]);
        assert_eq!(
            cmd,
            Command::Run(Options {
                quiet: false,
                log: Some(c"/tmp/y"),
                program: 2,
                ..Options::default()
            })
        );
    }

    #[test]
    fn pager_options() {
        let cmd = run(&[
            c"hpager",
            c"--stats",
            c"--predict=adaptive",
            c"--pages",
            c"3",
            c"prog",
        ]);
        let Command::Run(o) = cmd else {
            panic!("{cmd:?}")
        };
        assert!(o.stats);
        assert_eq!(
            (o.predict, o.pages, o.program),
            (Some(c"adaptive"), Some(c"3"), 5)
        );
        assert_eq!(
            run(&[c"hpager", c"--pages"]),
            Command::Usage(UsageError::MissingValue(c"--pages"))
        );
    }

    #[test]
    fn double_dash_ends_options() {
        let cmd = run(&[c"apager", c"--", c"-weird-name", c"x"]);
        assert_eq!(
            cmd,
            Command::Run(Options {
                program: 2,
                ..Options::default()
            })
        );
    }

    #[test]
    fn help_version_and_usage_errors() {
        assert_eq!(run(&[c"apager", c"--help", c"prog"]), Command::Help);
        assert_eq!(run(&[c"apager", c"-V"]), Command::Version);
        assert_eq!(
            run(&[c"apager"]),
            Command::Usage(UsageError::MissingProgram)
        );
        assert_eq!(
            run(&[c"apager", c"-q"]),
            Command::Usage(UsageError::MissingProgram)
        );
        assert_eq!(
            run(&[c"apager", c"--"]),
            Command::Usage(UsageError::MissingProgram)
        );
        assert_eq!(
            run(&[c"apager", c"--log"]),
            Command::Usage(UsageError::MissingValue(c"--log"))
        );
        assert_eq!(
            run(&[c"apager", c"-x", c"p"]),
            Command::Usage(UsageError::UnknownOption(c"-x"))
        );
    }
}
