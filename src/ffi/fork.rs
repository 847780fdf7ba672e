//! Forks reported to the core, so that a get does not ask the kernel for the process
//! id (a system call) to tell whether it runs in a forked child: a `pthread_atfork`
//! child handler counts each fork, and the core asks again only after one.

use std::sync::Once;

/// Installs the handler once per process (a forked child inherits it).
static INSTALL: Once = Once::new();

/// Runs in the child of every fork, before `fork` returns there: one atomic addition,
/// which is async-signal-safe.
extern "C" fn child() {
    backlite_core::forked();
}

/// Installs the child handler, if it is not installed yet. Called by every export that
/// opens a handle, before the handle exists. If the C library cannot install it, the
/// core keeps asking the kernel on each call.
pub(crate) fn report_forks() {
    INSTALL.call_once(|| {
        // SAFETY: `child` is a function with C linkage that lives as long as the
        // process (this library is never unloaded while a handle exists, and the
        // handler only touches a static).
        if unsafe { libc::pthread_atfork(None, None, Some(child)) } == 0 {
            backlite_core::report_forks();
        }
    });
}
