//! Every function the header exports reaches some binding, and every constant reaches
//! each binding that takes its values from the header, so that a C function or a
//! result code added without its bindings fails here rather than in a user's hands.
//!
//! A function may be left out on purpose: list it in `LEFT_OUT` with the reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Exports no binding calls, each with the reason it is deliberately left out.
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "backlite_error_result",
        "every binding takes the code from the call's return value; the error object's \
         copy is for C callers that keep only the error (tests/c/test_errors.c)",
    ),
    (
        "backlite_version_number",
        "for C callers comparing BACKLITE_VERSION_NUMBER with the loaded library; the \
         bindings compare version strings (backlite_version); tests/c/test_version.c",
    ),
];

/// Bindings that include the header (C++), `@cImport` it (Zig), import it through a
/// module map (Swift) or cgo (Go): each must name every result code, policy and
/// expiration constant. Python is not a C binding: its native module wraps the Rust
/// core directly (bindings/python/native/, PyO3), and its suite checks its numbers
/// against the header (bindings/python/tests/test_header_drift.py).
const HEADER_BINDINGS: &[&str] = &["cpp", "go", "zig", "swift"];
const ALL_BINDINGS: &[&str] = &["cpp", "go", "zig", "swift"];
const SOURCE_EXTENSIONS: &[&str] = &["hpp", "h", "go", "zig", "swift"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn header() -> String {
    std::fs::read_to_string(root().join("include/backlite.h")).expect("include/backlite.h")
}

/// Identifiers starting with `prefix` in `text`, each once.
fn identifiers(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            found.insert(tail[..len].to_string());
        }
        rest = &tail[len.max(1)..];
    }
    found
}

/// The functions the header declares: `backlite_name(` outside comments.
fn exported_functions(header: &str) -> BTreeSet<String> {
    let code: String = header
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with('*') || t.starts_with("/*") || t.starts_with("//"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    identifiers(&code, "backlite_")
        .into_iter()
        .filter(|name| code.contains(&format!("{name}(")))
        .collect()
}

/// The `#define`d result codes, policies and expirations.
fn constants(header: &str) -> BTreeSet<String> {
    header
        .lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| {
            [
                "BACKLITE_RESULT_",
                "BACKLITE_EVICTION_POLICY_",
                "BACKLITE_EXPIRATION_",
                "BACKLITE_REMOTE_MODE_",
            ]
            .iter()
            .any(|p| n.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Build outputs and caches are not sources.
        if name.starts_with('.') || ["build", "target", "zig-out", "node_modules"].contains(&&*name)
        {
            continue;
        }
        if path.is_dir() {
            source_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| SOURCE_EXTENSIONS.contains(&&*e.to_string_lossy()))
        {
            out.push(path);
        }
    }
}

/// The identifiers a binding's sources (not its tests) use.
fn binding_identifiers(binding: &str) -> BTreeSet<String> {
    let mut files = Vec::new();
    source_files(&root().join("bindings").join(binding), &mut files);
    let mut names = BTreeSet::new();
    for f in files {
        let rel = f.to_string_lossy();
        let is_test = rel.contains("/tests/")
            || rel.contains("/Tests/")
            || rel.ends_with("_test.go")
            || rel.ends_with("tests.zig");
        if is_test {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        names.extend(identifiers(&text, "backlite_"));
        names.extend(identifiers(&text, "BACKLITE_"));
    }
    names
}

#[test]
fn every_exported_function_is_used_by_a_binding() {
    let header = header();
    let functions = exported_functions(&header);
    assert!(
        functions.len() > 30 && functions.contains("backlite_storage_get"),
        "the header parse found only {functions:?}"
    );
    let used: BTreeSet<String> = ALL_BINDINGS
        .iter()
        .flat_map(|b| binding_identifiers(b))
        .collect();
    for (name, reason) in LEFT_OUT {
        assert!(
            functions.contains(*name),
            "LEFT_OUT names {name}, which the header no longer exports"
        );
        assert!(!reason.is_empty(), "{name} is left out without a reason");
    }
    let missing: Vec<&String> = functions
        .iter()
        .filter(|f| !used.contains(*f) && !LEFT_OUT.iter().any(|(n, _)| n == f))
        .collect();
    assert!(
        missing.is_empty(),
        "exported but used by no binding (wrap them, or list them in LEFT_OUT with a reason): {missing:?}"
    );
}

#[test]
fn every_constant_reaches_each_header_binding() {
    let header = header();
    let constants = constants(&header);
    assert!(
        constants.contains("BACKLITE_RESULT_NOT_FOUND")
            && constants.contains("BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED"),
        "the header parse found only {constants:?}"
    );
    let mut gaps = Vec::new();
    for binding in HEADER_BINDINGS {
        let used = binding_identifiers(binding);
        for c in &constants {
            if !used.contains(c) {
                gaps.push(format!("{binding}: {c}"));
            }
        }
    }
    assert!(
        gaps.is_empty(),
        "constants a binding does not map: {gaps:?}"
    );
}

#[test]
fn the_parsers_find_what_they_should() {
    let text = "/* backlite_not_this( */\nbacklite_result backlite_x_get(int a);\n\
                #define BACKLITE_RESULT_Y 3\n#define BACKLITE_OTHER 1\n";
    assert_eq!(
        exported_functions(text).into_iter().collect::<Vec<_>>(),
        ["backlite_x_get"]
    );
    assert_eq!(
        constants(text).into_iter().collect::<Vec<_>>(),
        ["BACKLITE_RESULT_Y"]
    );
    assert!(identifiers("xbacklite_no backlite_yes", "backlite_").contains("backlite_yes"));
    assert!(!identifiers("xbacklite_no", "backlite_").contains("backlite_no"));
}

/// The policies' names, in the order of their values, as the header's doc comments
/// give them (` * "least-recently-used" ...` above each `BACKLITE_EVICTION_POLICY_*`).
fn policy_names(header: &str) -> Vec<String> {
    let lines: Vec<&str> = header.lines().collect();
    let mut names = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("#define BACKLITE_EVICTION_POLICY_") {
            continue;
        }
        let name = lines[..i]
            .iter()
            .rev()
            .take_while(|l| !l.starts_with("#define"))
            .find_map(|l| l.trim_start().strip_prefix("* \"")?.split('"').next());
        names.push(name.unwrap_or_default().to_string());
    }
    names
}

/// Swift keeps the names as the raw values of its `EvictionPolicy` enum (its values
/// come from the header); nothing else would notice a renamed or reordered policy.
#[test]
fn swift_policy_names_are_the_headers() {
    let names = policy_names(&header());
    assert_eq!(
        names.len(),
        5,
        "policy names parsed from the header: {names:?}"
    );
    assert!(names.iter().all(|n| !n.is_empty()), "{names:?}");
    let swift =
        std::fs::read_to_string(root().join("bindings/swift/Sources/BackLite/Options.swift"))
            .expect("the Swift binding's Options.swift");
    let swift_names: Vec<&str> = swift
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("case "))
        .filter_map(|l| l.split_once("= \"")?.1.split('"').next())
        .collect();
    assert_eq!(
        swift_names, names,
        "Swift's policy names differ from the header's"
    );
}
