//! The library version at run time, to check against the header's macros.

const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

const NUMBER: u32 = parse(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
    + parse(env!("CARGO_PKG_VERSION_MINOR")) * 100
    + parse(env!("CARGO_PKG_VERSION_PATCH"));

/// The library version as a static string, e.g. "0.1.0". Compare it with
/// `BACKLITE_VERSION_STRING` to check that header and library agree.
#[no_mangle]
pub extern "C" fn backlite_version() -> *const libc::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The library version as MAJOR*10000 + MINOR*100 + PATCH.
#[no_mangle]
pub extern "C" fn backlite_version_number() -> u32 {
    NUMBER
}
