//! Every static of the core, of the C boundary and of the Python module is named, with
//! its reason, in its crate's documentation ("Process-wide state" in core/src/lib.rs,
//! src/lib.rs and bindings/python/native/lib.rs):
//! this fails on a static that is not listed, and on a listed one that is gone.

use std::collections::BTreeSet;
use std::path::Path;

/// `module::NAME` of each `static` under `src` (thread-local ones included), with
/// comments and strings left out.
fn statics(src: &Path, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension() != Some(std::ffi::OsStr::new("rs")) {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: Vec<String> = prefix
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            module.extend(
                rel.iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .filter(|c| c != "mod" && c != "lib"),
            );
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or("");
                let mut words = code
                    .split_whitespace()
                    .skip_while(|w| *w == "pub" || w.starts_with("pub("));
                if words.next() != Some("static") {
                    continue;
                }
                let name = words
                    .find(|w| *w != "mut")
                    .map(|w| w.trim_end_matches(':').to_string())
                    .unwrap();
                let mut full = module.clone();
                full.push(name);
                found.insert(full.join("::"));
            }
        }
    }
    found
}

/// The `module::NAME` items the "Process-wide state" section of `lib` names.
fn listed(lib: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(lib).unwrap();
    let section = text
        .split("//! # Process-wide state")
        .nth(1)
        .expect("a \"# Process-wide state\" section in the crate docs");
    let section = section.split("\n//! #").next().unwrap();
    let mut out = BTreeSet::new();
    for piece in section.split('`').skip(1).step_by(2) {
        let last = piece.rsplit("::").next().unwrap();
        if piece.contains("::")
            && last
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            out.insert(piece.to_string());
        }
    }
    out
}

#[test]
fn every_static_is_listed_with_its_reason() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (src, prefix, lib) in [
        (root.join("core/src"), "", root.join("core/src/lib.rs")),
        (root.join("src/ffi"), "ffi", root.join("src/lib.rs")),
        (
            root.join("bindings/python/native"),
            "",
            root.join("bindings/python/native/lib.rs"),
        ),
    ] {
        let found = statics(&src, prefix);
        let listed = listed(&lib);
        let unlisted: Vec<_> = found.difference(&listed).collect();
        let gone: Vec<_> = listed.difference(&found).collect();
        assert!(
            unlisted.is_empty() && gone.is_empty(),
            "{}: statics not listed under \"Process-wide state\" (a handle's state belongs \
             in the handle; a static needs a reason the process is its unit): {unlisted:?}; \
             listed but gone: {gone:?}",
            lib.display()
        );
        assert!(
            !found.is_empty(),
            "{}: the scan found nothing",
            src.display()
        );
    }
}
