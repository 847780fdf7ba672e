//! Gives the shared library a SONAME, so programs linked against it record
//! `libbacklite.so.<major>` and a later ABI break can be installed beside it.
//!
//! A program linked against `target/<profile>/libbacklite.so` records that SONAME and
//! looks for a file of that name at run time, which cargo itself never writes. So the
//! build also puts the link `libbacklite.so.<major> -> libbacklite.so` beside the
//! library (it dangles until cargo links the library a moment later): the README's
//! cargo-only steps then give a library that programs can load.

use std::path::{Path, PathBuf};

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if target_os == "linux" || target_os == "freebsd" {
        let soname = format!("libbacklite.so.{major}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
        if let Some(dir) = profile_dir() {
            link_soname(&dir, &soname);
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// `<target-dir>/[<triple>/]<profile>`: OUT_DIR is `<that>/build/<pkg>-<hash>/out`.
fn profile_dir() -> Option<PathBuf> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR")?);
    let dir = out.ancestors().nth(3)?.to_path_buf();
    // Only where cargo's layout is the one expected: never write anywhere else.
    (out.parent()?.parent()?.file_name()? == "build").then_some(dir)
}

/// Best effort: a failure here must not fail the build of the library itself.
fn link_soname(dir: &Path, soname: &str) {
    let link = dir.join(soname);
    match std::fs::read_link(&link) {
        Ok(to) if to == Path::new("libbacklite.so") => return,
        // Only ever replace a symlink of ours, never a file someone put there.
        Ok(_) => {
            let _ = std::fs::remove_file(&link);
        }
        Err(_) if link.symlink_metadata().is_ok() => return,
        Err(_) => {}
    }
    #[cfg(unix)]
    if let Err(e) = std::os::unix::fs::symlink("libbacklite.so", &link) {
        println!("cargo:warning=could not link {}: {e}", link.display());
    }
}
