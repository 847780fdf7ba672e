//! stdin and stdout, which the command may have been started without (`backlite get
//! c.db k >&-`, `backlite set c.db k <&-`). Rust's runtime puts /dev/null in place of a
//! closed 0, 1 or 2 before `main` (so that no file the program opens takes their
//! number), and its stdout takes a write that fails EBADF for one that succeeded: a
//! `get` with stdout closed counted a hit, wrote the value nowhere and exited 0, and a
//! `set` with stdin closed stored an empty value. Which were closed is looked at before
//! that, by a function the loader runs before `main`, and such a stream fails as a
//! closed one does in any other program ("Bad file descriptor").

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// Bit `fd` set: the stream of that number was closed when the process started.
static CLOSED: AtomicU8 = AtomicU8::new(0);

/// Run by the loader before `main`, and so before Rust's runtime opens /dev/null in
/// place of the closed streams (as its own `std::env::args` is captured, on Linux).
#[used]
#[cfg_attr(
    any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos",
        target_os = "solaris"
    ),
    link_section = ".init_array"
)]
#[cfg_attr(target_vendor = "apple", link_section = "__DATA,__mod_init_func")]
static LOOK: extern "C" fn() = look;

extern "C" fn look() {
    for fd in 0..2 {
        // SAFETY: F_GETFD only reads the descriptor's flags; it fails EBADF for a
        // number that is not open.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
        if closed {
            CLOSED.fetch_or(1 << fd, Relaxed);
        }
    }
}

fn closed(fd: i32) -> std::io::Result<()> {
    match CLOSED.load(Relaxed) & (1 << fd) {
        0 => Ok(()),
        _ => Err(std::io::Error::from_raw_os_error(libc::EBADF)),
    }
}

/// stdout, locked; EBADF if the command was started with it closed.
pub fn stdout() -> std::io::Result<std::io::StdoutLock<'static>> {
    closed(1)?;
    Ok(std::io::stdout().lock())
}

/// stdin; EBADF if the command was started with it closed.
pub fn stdin() -> std::io::Result<std::io::Stdin> {
    closed(0)?;
    Ok(std::io::stdin())
}
