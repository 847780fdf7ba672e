//! No import cycles between the core's modules (STYLE.md: "No import cycles between
//! core files"). The graph is read from the source: a module depends on another when
//! its code (tests included) names it through `crate::`, `super::` or a `use` of
//! either; a name the crate root re-exports (`crate::Storage`) counts as its home
//! module. A `mod x;` declaration is containment, not a dependency; comments and
//! strings are left out.
//!
//! `BACKLITE_MODULE_GRAPH_SRC=<dir>` reads another tree's `src` (an older commit, say):
//! `cargo test -p backlite-core --test module_graph -- --nocapture` prints the cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Every `.rs` file under `dir`, with the module path it defines.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Module, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(stem);
                walk(&path, &p, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut m = prefix.to_vec();
                if stem != "mod" && stem != "lib" {
                    m.push(stem);
                }
                out.insert(m, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// The code of a file without comments, and with every string and char literal empty.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // A raw string: r"..." or r#"..."#.
                let mut j = i + 1;
                while b.get(j) == Some(&b'#') {
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                let hashes = j - i - 1;
                let mut end = j + 1;
                while end < b.len()
                    && !(b[end] == b'"'
                        && b[end + 1..].iter().take_while(|&&c| c == b'#').count() >= hashes)
                {
                    end += 1;
                }
                out.push_str("\"\"");
                i = end + 1 + hashes;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' => {
                // A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
                let close = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map(|p| i + 2 + p)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match close {
                    Some(end) => {
                        out.push_str("' '");
                        i = end + 1;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            c => {
                // Keep multi-byte characters whole.
                let len = text[i..].chars().next().unwrap().len_utf8();
                out.push_str(&text[i..i + len]);
                let _ = c;
                i += len;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands a use tree (`a::{b, c::d as e, self}`) into its paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    // `x as y` names x: the renaming goes before the spaces do.
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut kept = String::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "as" && i + 1 < words.len() {
            // The new name may carry the separator that follows it (`y,` or `y}`).
            kept.extend(words[i + 1].chars().filter(|c| !is_ident(*c)));
            i += 2;
        } else {
            kept.push_str(words[i]);
            i += 1;
        }
    }
    let tree = kept;
    let mut out = Vec::new();
    expand_into(&tree, &[], &mut out);
    out
}

fn expand_into(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_into(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_into(&inner[start..], &base, out);
    } else if !tree.is_empty() {
        let mut path = prefix.to_vec();
        path.extend(
            tree.split("::")
                .filter(|s| !s.is_empty() && *s != "self" && *s != "*")
                .map(String::from),
        );
        out.push(path);
    }
}

/// The paths a file names, each absolute from the crate root, as written (the last
/// segments may be items rather than modules).
fn paths_named(module: &[String], is_mod_rs: bool, code: &str) -> Vec<Vec<String>> {
    // Inline `mod name {` blocks shift what `super` and `self` mean.
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut pending_mod: Option<String> = None;
    let mut i = 0;
    // The module an occurrence is in.
    let here = |inline: &[(String, usize)]| -> Vec<String> {
        let mut m = module.to_vec();
        m.extend(inline.iter().map(|(n, _)| n.clone()));
        m
    };
    let _ = is_mod_rs;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            depth += 1;
            if let Some(n) = pending_mod.take() {
                inline.push((n, depth));
            }
            i += 1;
            continue;
        }
        if c == '}' {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
            i += 1;
            continue;
        }
        if c == ';' {
            pending_mod = None;
        }
        if !is_ident(c) || (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        if word == "mod" {
            let rest: String = chars[i..].iter().take(80).collect();
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|&c| is_ident(c))
                .collect();
            pending_mod = Some(name);
            continue;
        }
        if word == "use" {
            let end = chars[i..]
                .iter()
                .position(|&c| c == ';')
                .map_or(chars.len(), |p| i + p);
            let tree: String = chars[i..end].iter().collect();
            for p in expand(&tree) {
                if let Some(abs) = absolute(&p, &here(&inline)) {
                    out.push(abs);
                }
            }
            i = end;
            continue;
        }
        if word == "crate" || word == "super" {
            // An inline path: crate::a::b or super::a.
            let mut j = start;
            let mut segs = Vec::new();
            loop {
                let s = j;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                segs.push(chars[s..j].iter().collect::<String>());
                if chars.get(j) == Some(&':')
                    && chars.get(j + 1) == Some(&':')
                    && chars.get(j + 2).is_some_and(|&c| is_ident(c))
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segs.len() > 1 {
                if let Some(abs) = absolute(&segs, &here(&inline)) {
                    out.push(abs);
                }
            }
            i = j;
            continue;
        }
    }
    out
}

/// `path` (as written in module `here`) from the crate root; `None` for paths outside
/// the crate (std, other crates).
fn absolute(path: &[String], here: &[String]) -> Option<Vec<String>> {
    let mut base = here.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super") | Some("self") => {
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The crate root's re-exports: item name -> the module it comes from.
fn reexports(lib: &str) -> BTreeMap<String, Module> {
    let mut out = BTreeMap::new();
    let code = code_only(lib);
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let Some(tree) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        for p in expand(tree) {
            if let Some((item, from)) = p.split_last() {
                out.insert(item.clone(), from.to_vec());
            }
        }
    }
    out
}

/// The module a path lands in: its longest prefix that is a module, or for an item
/// the crate root re-exports, the module it comes from.
fn resolve(
    path: &[String],
    mods: &BTreeMap<Module, PathBuf>,
    reexported: &BTreeMap<String, Module>,
) -> Module {
    if path.len() == 1 {
        if let Some(from) = reexported.get(&path[0]) {
            return resolve(from, mods, &BTreeMap::new());
        }
    }
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| mods.contains_key(p))
        .unwrap_or_default()
}

/// The dependency graph of the modules under `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let reexported = reexports(&lib);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, file) in &mods {
        if m.is_empty() {
            continue; // the crate root only declares and re-exports
        }
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let is_mod_rs = file.ends_with("mod.rs");
        let deps = g.entry(name(m)).or_default();
        for p in paths_named(m, is_mod_rs, &code) {
            let target = resolve(&p, &mods, &reexported);
            if !target.is_empty() && target != *m {
                deps.insert(name(&target));
            }
        }
    }
    g
}

/// Every elementary cycle, each starting at its smallest module.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn dfs(
        g: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        out: &mut Vec<Vec<String>>,
    ) {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                out.push(path.clone());
            } else if next.as_str() > start && !path.contains(next) {
                path.push(next.clone());
                dfs(g, start, next, path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    for start in g.keys() {
        dfs(g, start, start, &mut vec![start.clone()], &mut out);
    }
    out
}

#[test]
fn the_core_modules_import_no_cycle() {
    let src = std::env::var_os("BACKLITE_MODULE_GRAPH_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let g = graph(&src);
    let edges: usize = g.values().map(BTreeSet::len).sum();
    let found = cycles(&g);
    println!(
        "{}: {} modules, {edges} dependencies, {} cycles",
        src.display(),
        g.len(),
        found.len()
    );
    let shown: Vec<String> = found
        .iter()
        .map(|c| format!("{} -> {}", c.join(" -> "), c[0]))
        .collect();
    for c in &shown {
        println!("  {c}");
    }
    assert!(
        found.is_empty(),
        "import cycles between core modules (break each: move what both need below \
         both, or pass it in):\n  {}",
        shown.join("\n  ")
    );
}

#[test]
fn the_reader_sees_paths_the_way_rustc_does() {
    // The checker's own parsing, on the forms the core uses.
    let code = code_only(
        "use crate::{a::{B, c::D}, e as f};\n// crate::commented::Out\n\
         let s = \"crate::quoted\"; mod tests { use super::*; use crate::g::H; }\n\
         fn x() { crate::i::j(); super::k::L; }",
    );
    let here = vec!["m".to_string()];
    let mut got: Vec<String> = paths_named(&here, false, &code)
        .iter()
        .map(|p| name(p))
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["a::B", "a::c::D", "e", "g::H", "i::j", "k::L", "m"],
        "super inside `mod tests` is the file's own module"
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert(
        "b".to_string(),
        BTreeSet::from(["a".to_string(), "c".to_string()]),
    );
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&g).len(), 2, "a->b->a and a->b->c->a");
}
