//! Gives the shared library a SONAME, so programs linked against it record
//! `libbacklite.so.<major>` and a later ABI break can be installed beside it.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if target_os == "linux" || target_os == "freebsd" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbacklite.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
