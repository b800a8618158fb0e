//! Tab completion at objsh's terminal prompt: the first word completes to a built-in word or a command
//! object (the `--commands` directory's `WORD.o`, then the built-in commands); the word after `call` to a
//! function of a loaded library; the word after `unload` to a loaded library's path or a path; every other
//! word to a path, as a shell completes file names.

use std::borrow::Cow;
use std::path::PathBuf;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

/// The shell's own words, completed as the first word of a line.
pub const WORDS: &[&str] = &["call", "exit", "help", "libs", "load", "unload"];

/// objsh's line-editor helper: completion only (no hints, colours or multi-line input).
pub struct ObjshHelper {
    /// The `--commands` directory, if given.
    pub commands: Option<PathBuf>,
    /// The names of the command objects built into objsh.
    pub builtin_commands: Vec<&'static str>,
    files: FilenameCompleter,
}

impl ObjshHelper {
    pub fn new(commands: Option<PathBuf>, builtin_commands: Vec<&'static str>) -> Self {
        Self {
            commands,
            builtin_commands,
            files: FilenameCompleter::new(),
        }
    }

    /// Every name the first word of a line may be, sorted, without repeats.
    fn command_names(&self) -> Vec<String> {
        let mut names: Vec<String> = WORDS.iter().map(|w| (*w).to_owned()).collect();
        names.extend(self.builtin_commands.iter().map(|w| (*w).to_owned()));
        if let Some(dir) = &self.commands {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if let Some(stem) = name.strip_suffix(".o") {
                        if !stem.is_empty() {
                            names.push(stem.to_owned());
                        }
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// Candidates among `names` that start with `prefix`, each followed by a blank as a shell adds one.
fn matching(names: impl IntoIterator<Item = String>, prefix: &str) -> Vec<Pair> {
    names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .map(|n| Pair {
            replacement: format!("{n} "),
            display: n,
        })
        .collect()
}

/// The byte offset where the word under the cursor starts, and the words before it.
fn split_at_cursor(line: &str, pos: usize) -> (usize, Vec<&str>) {
    let before = &line[..pos];
    let start = before.rfind([' ', '\t']).map_or(0, |i| i + 1);
    (start, before[..start].split_whitespace().collect())
}

impl Completer for ObjshHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = split_at_cursor(line, pos);
        let prefix = &line[start..pos];
        match words.as_slice() {
            [] => Ok((start, matching(self.command_names(), prefix))),
            ["call"] => {
                let mut names: Vec<String> = objload::libraries()
                    .into_iter()
                    .flat_map(|lib| lib.functions.into_iter().map(|(name, _)| name))
                    .collect();
                names.sort();
                names.dedup();
                Ok((start, matching(names, prefix)))
            }
            ["call", ..] => Ok((pos, Vec::new())),
            ["unload"] => {
                let loaded = objload::libraries()
                    .into_iter()
                    .map(|lib| lib.path.display().to_string());
                let mut found = matching(loaded, prefix);
                if found.is_empty() {
                    return self.files.complete_path(line, pos);
                }
                found.sort_by(|a, b| a.display.cmp(&b.display));
                Ok((start, found))
            }
            _ => self.files.complete_path(line, pos),
        }
    }
}

impl Hinter for ObjshHelper {
    type Hint = String;
}

impl Highlighter for ObjshHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ObjshHelper {}

impl Helper for ObjshHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_under_the_cursor_starts_after_the_last_blank() {
        assert_eq!(split_at_cursor("he", 2), (0, vec![]));
        assert_eq!(split_at_cursor("call ad", 7), (5, vec!["call"]));
        assert_eq!(split_at_cursor("load  /tm", 9), (6, vec!["load"]));
        assert_eq!(split_at_cursor("call add 1", 8), (5, vec!["call"]));
    }

    #[test]
    fn first_words_complete_to_built_ins_and_command_objects() {
        let dir = std::env::temp_dir().join(format!("objsh-complete-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("greet.o"), b"").unwrap();
        std::fs::write(dir.join("notes.txt"), b"").unwrap();
        let h = ObjshHelper::new(Some(dir.clone()), vec!["ls", "semdump"]);
        let names = h.command_names();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            names,
            ["call", "exit", "greet", "help", "libs", "load", "ls", "semdump", "unload"]
        );
        let l: Vec<String> = matching(names, "l")
            .into_iter()
            .map(|p| p.replacement)
            .collect();
        assert_eq!(l, ["libs ", "load ", "ls "]);
    }
}
