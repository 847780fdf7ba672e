//! `include/backlite.h` is generated from the Rust source and checked in; this test
//! regenerates it in memory and fails on any difference. To update the file:
//! `BACKLITE_UPDATE_HEADER=1 cargo test --test header`.

use std::path::Path;

fn version_block() -> String {
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
    let minor: u32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
    let patch: u32 = env!("CARGO_PKG_VERSION_PATCH").parse().unwrap();
    format!(
        "\n/* The version of this header, from Cargo.toml. backlite_version() gives the\n \
         * library's; they should agree. */\n\
         #define BACKLITE_VERSION_MAJOR {major}\n\
         #define BACKLITE_VERSION_MINOR {minor}\n\
         #define BACKLITE_VERSION_PATCH {patch}\n\
         #define BACKLITE_VERSION_NUMBER {}\n\
         #define BACKLITE_VERSION_STRING \"{}\"\n",
        major * 10000 + minor * 100 + patch,
        env!("CARGO_PKG_VERSION"),
    )
}

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(version_block());
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    let header = String::from_utf8(out).expect("the header is UTF-8");
    parenthesize_negative_macros(&header)
}

/// `#define X -1` becomes `#define X (-1)`, so `a-X` still parses in C.
fn parenthesize_negative_macros(header: &str) -> String {
    header
        .lines()
        .map(|line| match line.strip_prefix("#define ") {
            Some(rest) => match rest.split_once(' ') {
                Some((name, value)) if value.starts_with('-') => {
                    format!("#define {name} ({value})")
                }
                _ => line.to_string(),
            },
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn header_matches_the_rust_source() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/backlite.h");
    let fresh = generate();
    if std::env::var_os("BACKLITE_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write include/backlite.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/backlite.h differs from what cbindgen generates from src/ffi; \
         run `BACKLITE_UPDATE_HEADER=1 cargo test --test header` and commit the result"
    );
}

/// The header opens with the rules every call shares, before any declaration, so that
/// a reader of one function's comment never has to guess them.
#[test]
fn header_opens_with_the_rules_every_call_shares() {
    let header = generate();
    let opening = &header[..header
        .find("#ifndef BACKLITE_H")
        .expect("the include guard")];
    // The comment's words, without its " * " margins or line breaks.
    let squashed = opening
        .lines()
        .map(|line| {
            let line = line.trim_start();
            ["/*", "*/", "*"]
                .iter()
                .find_map(|margin| line.strip_prefix(margin))
                .unwrap_or(line)
        })
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    for rule in [
        // no partial results, and the one out-parameter a miss writes
        "Out-parameters, and the caller's buffer of backlite_value_reader_read, are \
         written only on success (OK): no partial results.",
        "The one exception is an answer: the lease that backlite_lease_try_acquire and \
         backlite_lease_step give on NOT_FOUND.",
        // who owns *err
        "the caller owns: free it with backlite_error_free",
        "On OK, *err is left untouched.",
        // when NOT_FOUND sets nothing
        "BACKLITE_RESULT_NOT_FOUND from backlite_storage_get, backlite_storage_delete, \
         backlite_storage_contains, backlite_storage_get_chunks, \
         backlite_storage_open_reader, backlite_value_reader_read, \
         backlite_lease_try_acquire and backlite_lease_step leaves *err untouched",
        "Every other non-OK result fills *err.",
        // which opaque types may be used from several threads
        "backlite_storage: any number of threads at once.",
        "backlite_lease: one thread at a time",
        "backlite_value_reader: the same as a lease.",
        "backlite_options, backlite_error, backlite_buf: plain single-owner values",
        "backlite_sink: only inside the compute callback",
    ] {
        assert!(
            squashed.contains(rule),
            "the opening comment of include/backlite.h (cbindgen.toml `header`) must state: \
             {rule:?}\n--- it reads:\n{opening}"
        );
    }
}
