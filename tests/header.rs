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
