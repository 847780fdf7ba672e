//! Forks reported to the core, so that a get does not ask the kernel for the process
//! id (a system call) to tell whether it runs in a forked child.
//!
//! On Linux the core keeps the id on a page the kernel zeroes in the child of every
//! fork (`MADV_WIPEONFORK`), however the child was made: a `pthread_atfork` handler
//! alone misses `_Fork` and raw `fork`/`clone` system calls, whose child would then
//! take itself for the parent and use its connections and buffered hits. Elsewhere a
//! `pthread_atfork` child handler counts each fork, and the core asks again after one.
//!
//! Everywhere, `pthread_atfork` handlers make a fork wait until no thread of the library
//! (a hit writer) is inside a write (`backlite_core::before_fork`): a child must not
//! inherit a lock such a thread held, with no thread to let it go.

use std::sync::Once;

/// Installs the handler once per process (a forked child inherits it).
static INSTALL: Once = Once::new();

/// Runs in the child of every fork, before `fork` returns there: one atomic addition,
/// which is async-signal-safe.
#[cfg(not(target_os = "linux"))]
extern "C" fn child() {
    backlite_core::forked();
}

/// Runs before every fork of the process: waits until no thread of the library (a hit
/// writer) is inside a write, so that the child inherits no lock such a thread held.
extern "C" fn before_fork() {
    backlite_core::before_fork();
}

/// Runs after every fork, in the parent: the library's threads go on.
extern "C" fn after_fork() {
    backlite_core::after_fork();
}

/// Runs after every fork, in the child: it has none of the parent's threads. Two
/// atomic stores, async-signal-safe.
extern "C" fn after_fork_in_child() {
    backlite_core::after_fork_in_child();
}

/// Runs at the process's normal exit (`exit`, a return from `main`): writes the hits
/// that handles never freed still buffer, so that other processes' evictions see them.
extern "C" fn at_exit() {
    // No panic may unwind out of an `atexit` handler.
    let _ = std::panic::catch_unwind(backlite_core::write_waiting_at_exit);
}

/// Gives the core a word to keep the process id in, or installs the child handler, if
/// not done yet. Called by every export that opens a handle, before the handle exists.
/// If neither can be set up, the core keeps asking the kernel on each call.
pub(crate) fn report_forks() {
    INSTALL.call_once(|| {
        // SAFETY: the three are functions with C linkage that live as long as the
        // process (this library is never unloaded while a handle exists); they only
        // touch atomics of the core (and sleep, before the fork). A failure (ENOMEM)
        // leaves forks unguarded, as before.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork),
                Some(after_fork_in_child),
            )
        };
        // SAFETY: `at_exit` is a function with C linkage that catches every panic;
        // glibc runs it at exit, or when this library is unloaded (it is registered
        // for this library's own handle). A failure (ENOMEM) only leaves unfreed
        // handles' hits unwritten, as before.
        unsafe { libc::atexit(at_exit) };
        #[cfg(target_os = "linux")]
        if let Some(word) = wiped_on_fork() {
            backlite_core::keep_pid_in(word);
        }
        #[cfg(not(target_os = "linux"))]
        // SAFETY: `child` is a function with C linkage that lives as long as the
        // process (this library is never unloaded while a handle exists, and the
        // handler only touches a static).
        if unsafe { libc::pthread_atfork(None, None, Some(child)) } == 0 {
            backlite_core::report_forks();
        }
    });
}

/// A zeroed word on a page of its own that the kernel zeroes again in the child of any
/// fork, kept for the life of the process. None on a kernel without `MADV_WIPEONFORK`
/// (before 4.14).
#[cfg(target_os = "linux")]
fn wiped_on_fork() -> Option<&'static std::sync::atomic::AtomicU32> {
    // SAFETY: sysconf has no preconditions.
    let size = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => return None,
    };
    // SAFETY: a new anonymous private mapping; it overlaps nothing.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: `page` is the mapping of `size` bytes made above.
    if unsafe { libc::madvise(page, size, libc::MADV_WIPEONFORK) } != 0 {
        // SAFETY: as above; nothing refers to it.
        unsafe { libc::munmap(page, size) };
        return None;
    }
    // SAFETY: the page is zeroed, writable, page-aligned (so aligned for an AtomicU32),
    // never unmapped, and used only through this reference.
    Some(unsafe { &*(page as *const std::sync::atomic::AtomicU32) })
}
