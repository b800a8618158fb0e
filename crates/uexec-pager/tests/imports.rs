//! The crate's import graph has no cycle: no file of `src/` uses, directly or through others, a file
//! that uses it (issue 10), and each file names its one job in its first line, a `//!` line of its own.
//!
//! The graph is read from the sources themselves: comments, strings and character literals are
//! dropped, then every `crate::X` and top-level `super::X` path (in `use` declarations, groups
//! included, and in expressions) is an edge to module `X`, or to the crate root (`lib`) when `X` is
//! not a module; in `lib.rs`, a path starting with a module's name is an edge to that module. `mod`
//! declarations are structure, not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// `source` without comments, string literals and character literals (each replaced by a space), so
/// that a path in a doc comment or a message is not taken for an import.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if (c == 'r' || (c == 'b' && at(i + 1) == 'r'))
            && !at(i.wrapping_sub(1)).is_alphanumeric()
            && {
                let mut j = i + if c == 'b' { 2 } else { 1 };
                while at(j) == '#' {
                    j += 1;
                }
                at(j) == '"'
            }
        {
            // A raw string: r"..." or r#"..."#, perhaps with a b prefix.
            let mut j = i + if c == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (1..=hashes).all(|h| at(j + h) == '#') {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
            out.push(' ');
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // A character literal ('x', '\n', '\u{..}'); a lifetime ('a) has no closing quote.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Identifiers and the punctuation that matters here (`::` as one token).
fn tokens(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".to_string());
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// The modules (or `lib`) that the file `name` (`lib` for lib.rs) refers to, given the crate's module
/// names.
fn imports(name: &str, source: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let toks = tokens(&strip(source));
    let tok = |i: usize| toks.get(i).map_or("", String::as_str);
    let target = |m: &str| {
        if modules.contains(m) {
            m.to_string()
        } else {
            "lib".to_string()
        }
    };
    let mut out = BTreeSet::new();
    // Brace depth, and the depths at which inline `mod NAME {` blocks opened.
    let mut depth = 0usize;
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match tok(i) {
            "{" => {
                if i >= 2 && tok(i - 2) == "mod" {
                    inline_mods.push(depth);
                }
                depth += 1;
            }
            "}" => {
                depth = depth.saturating_sub(1);
                if inline_mods.last() == Some(&depth) {
                    inline_mods.pop();
                }
            }
            _ => {}
        }
        let path_start = i == 0 || tok(i - 1) != "::";
        // Where a crate-root-relative path continues (after `crate::` or enough `super::`s).
        let mut rest = None;
        if path_start && tok(i) == "crate" && tok(i + 1) == "::" {
            rest = Some(i + 2);
        } else if path_start && tok(i) == "super" && name != "lib" {
            let mut j = i;
            let mut supers = 0;
            while tok(j) == "super" && tok(j + 1) == "::" {
                supers += 1;
                j += 2;
            }
            // A top-level `super` is the crate root; inside an inline module, one per level first.
            if supers > inline_mods.len() {
                rest = Some(j);
            }
        } else if path_start
            && name == "lib"
            && inline_mods.is_empty()
            && modules.contains(tok(i))
            && tok(i + 1) == "::"
            && tok(i.wrapping_sub(1)) != "mod"
        {
            rest = Some(i);
        }
        if let Some(r) = rest {
            if tok(r) == "{" {
                // A group: each item's first name.
                let mut j = r + 1;
                let mut group = 1;
                let mut first = true;
                while j < toks.len() && group > 0 {
                    match tok(j) {
                        "{" => group += 1,
                        "}" => group -= 1,
                        "," if group == 1 => first = true,
                        t if first && group == 1 => {
                            if t != "self" && t != "*" {
                                out.insert(target(t));
                            }
                            first = false;
                        }
                        _ => {}
                    }
                    j += 1;
                }
            } else if !tok(r).is_empty() {
                out.insert(target(tok(r)));
            }
        }
        i += 1;
    }
    out.remove(name);
    out
}

/// The import graph of the crate whose `src/` holds `files` (name without `.rs`, source).
fn graph(files: &[(String, String)]) -> Graph {
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n != "lib")
        .collect();
    files
        .iter()
        .map(|(n, s)| (n.clone(), imports(n, s, &modules)))
        .collect()
}

/// Every elementary cycle found by a depth-first search (one per back edge), each as its path.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            found.push(cycle);
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, stack, done, found);
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&src)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("a source file"))
        })
        .collect();
    files.sort();
    files
}

fn show(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(n, to)| {
            format!(
                "  {n} -> {}\n",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect()
}

#[test]
fn no_file_imports_a_file_that_imports_it() {
    let graph = graph(&sources());
    assert!(graph.len() > 5, "src/ not found: {graph:?}");
    let found = cycles(&graph);
    // The graph, for docs/pagers.md (`cargo test -p uexec-pager --test imports -- --nocapture`).
    println!("{}", show(&graph));
    assert!(
        found.is_empty(),
        "import cycles in crates/uexec-pager/src:\n{}\nthe graph:\n{}",
        found
            .iter()
            .map(|c| format!("  {}\n", c.join(" -> ")))
            .collect::<String>(),
        show(&graph)
    );
}

#[test]
fn every_file_names_its_job_in_its_first_line() {
    for (name, source) in sources() {
        let mut lines = source.lines();
        let first = lines.next().unwrap_or("");
        let second = lines.next().unwrap_or("");
        assert!(
            first.starts_with("//! ") && first.len() > 10 && first.ends_with('.'),
            "{name}.rs does not start with a `//!` line saying its job: {first:?}"
        );
        assert!(
            second == "//!" || !second.starts_with("//!"),
            "{name}.rs: its job must fit its first line (the second goes on with it: {second:?})"
        );
    }
}

#[test]
fn the_bpf_builder_forbids_unsafe_code() {
    let lib = sources()
        .into_iter()
        .find(|(n, _)| n == "lib")
        .expect("lib.rs")
        .1;
    let code = strip(&lib);
    let compact: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        compact.contains("#[forbid(unsafe_code)] mod bpf;"),
        "lib.rs must declare `#[forbid(unsafe_code)] mod bpf;`"
    );
}

/// The reader itself: a cycle through a `use` group and a `super::` path is found, while paths in
/// comments, strings and an inline test module's `super::*` are not edges.
#[test]
fn the_reader_finds_a_planted_cycle_and_ignores_what_is_not_an_import() {
    let file = |n: &str, s: &str| (n.to_string(), s.to_string());
    let files = [
        file("lib", "pub mod a; pub mod b; pub mod c;\npub use a::Thing;\n"),
        file(
            "a",
            "//! a. See crate::c::f.\nuse crate::{b::g, lock};\nconst S: &str = \"crate::c\";\n\
             const C: char = '{';\nfn x<'a>(_: &'a u8) {}\n#[cfg(test)]\nmod tests { use super::*; }\n",
        ),
        file("b", "//! b\nfn g() { super::c::h(r#\"crate::a\"#) }\n"),
        file("c", "//! c\n/* crate::a::x */ fn h() { crate::a::x(); }\n"),
        file("lock", "//! lock\nfn l() {}\n"),
    ];
    let graph = graph(&files);
    let edges = |n: &str| graph[n].iter().cloned().collect::<Vec<_>>();
    assert_eq!(edges("lib"), ["a"]);
    assert_eq!(edges("a"), ["b", "lock"]);
    assert_eq!(edges("b"), ["c"]);
    assert_eq!(edges("c"), ["a"]);
    assert!(edges("lock").is_empty());
    let found = cycles(&graph);
    assert_eq!(found, [["a", "b", "c", "a"]], "{found:?}");
    // A crate-root item used by a module the root imports, even through others, is a cycle too.
    let mut files = files.to_vec();
    files[4].1 = "//! lock\nfn l() { crate::Config::new(); }\n".to_string();
    let found = cycles(&self::graph(&files));
    assert_eq!(found[1], ["a", "lock", "lib", "a"], "{found:?}");
}
