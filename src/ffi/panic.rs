//! Catching panics at the C boundary without printing them. A caught panic is reported
//! through the result code and `*err`; the standard panic hook would also print it, with
//! a backtrace, on the host program's stderr. The hook installed here wraps whichever
//! hook was set before it (the host's own, or the standard one) and stays silent only
//! while the panicking thread is inside a BackLite export; any other panic goes to the
//! previous hook as before. (A hook the host sets later replaces this one, and then
//! prints BackLite's caught panics too.)

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many BackLite exports this thread is inside (a callback may call another).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the last silenced panic of this thread happened, for its error message.
    static LOCATION: Cell<Option<String>> = const { Cell::new(None) };
}

/// The process has one panic hook: it is wrapped once, by the first export called.
static WRAP_HOOK: Once = Once::new();

fn wrap_hook() {
    // Replacing the hook from a thread that is panicking (an export called from a
    // destructor during unwinding) would abort: leave it to a later call.
    if std::thread::panicking() {
        return;
    }
    WRAP_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if DEPTH.try_with(|d| d.get() > 0).unwrap_or(false) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                let _ = LOCATION.try_with(|l| l.set(at));
            } else {
                previous(info);
            }
        }));
    });
}

/// Marks this thread as inside an export for as long as it lives, unwinding included.
struct Inside {
    counted: bool,
}

impl Inside {
    fn enter() -> Inside {
        let counted = DEPTH.try_with(|d| d.set(d.get() + 1)).is_ok();
        Inside { counted }
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        if self.counted {
            let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
        }
    }
}

/// Thread cancellation held off for as long as it lives, unwinding included. glibc
/// cancels a thread with a forced unwind; one that began inside an export (a sleep
/// while waiting for a lock or a lease, a compute's own cancellation point) met
/// `catch_unwind`, which may not stop it, and the process aborted ("FATAL: exception
/// not rethrown"), with the file's locks held. So a BackLite call is no cancellation
/// point: a cancel sent during one takes effect at the caller's next one after it.
struct NoCancel {
    #[cfg(target_os = "linux")]
    before: std::ffi::c_int,
}

// Private, so that cbindgen leaves them out of backlite.h.
#[cfg(target_os = "linux")]
mod cancel {
    use std::ffi::c_int;
    // `PTHREAD_CANCEL_DISABLE` in glibc's and musl's `<pthread.h>`.
    pub(super) const DISABLE: c_int = 1;
    extern "C" {
        // Not in the libc crate for Linux; POSIX, in glibc and musl.
        pub(super) fn pthread_setcancelstate(state: c_int, old: *mut c_int) -> c_int;
    }
}

impl NoCancel {
    #[cfg(target_os = "linux")]
    fn enter() -> NoCancel {
        let mut before = cancel::DISABLE;
        // SAFETY: a valid state and a valid pointer to an int; it only sets this
        // thread's cancelability state (not a cancellation point).
        unsafe { cancel::pthread_setcancelstate(cancel::DISABLE, &mut before) };
        NoCancel { before }
    }

    #[cfg(not(target_os = "linux"))]
    fn enter() -> NoCancel {
        NoCancel {}
    }
}

impl Drop for NoCancel {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if self.before != cancel::DISABLE {
            let mut ignored = 0;
            // SAFETY: as in `enter`; puts back the state the caller had.
            unsafe { cancel::pthread_setcancelstate(self.before, &mut ignored) };
        }
    }
}

/// Runs `body`, catching a panic silently; a panic gives its message and location.
/// The thread cannot be cancelled meanwhile (see [`NoCancel`]).
pub(crate) fn catch<R>(body: impl FnOnce() -> R) -> Result<R, String> {
    wrap_hook();
    let no_cancel = NoCancel::enter();
    let inside = Inside::enter();
    let out = catch_unwind(AssertUnwindSafe(body));
    drop(inside);
    drop(no_cancel);
    out.map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        match LOCATION.try_with(Cell::take).ok().flatten() {
            Some(at) => format!("{what} (at {at})"),
            None => what,
        }
    })
}

#[cfg(test)]
mod tests {
    //! Each case runs its body in a child process (this test binary, re-run on the one
    //! test with `--nocapture`), so that what reaches the real stderr can be read, and
    //! so that the hooks it sets stay out of the other tests.

    use super::super::{boundary, error, result::*};
    use std::process::Command;

    const CHILD: &str = "BACKLITE_PANIC_TEST_CHILD";

    /// Runs `test` in a child when this is the parent; returns its stderr, or `None` in
    /// the child (which then runs the body).
    fn stderr_of_child(test: &str) -> Option<String> {
        if std::env::var_os(CHILD).is_some() {
            return None;
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {stdout}");
        assert!(
            stdout.contains("1 passed"),
            "the child ran no test: {stdout}"
        );
        Some(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Panics inside an export's body; returns the error message.
    fn panic_inside(what: &'static str) -> String {
        let mut err = std::ptr::null_mut();
        let rc = boundary(&mut err, || panic!("{what}"));
        assert_eq!(rc, BACKLITE_RESULT_PANIC);
        assert!(!err.is_null());
        // SAFETY: `err` is the live error object `boundary` just made.
        let message = unsafe { error::backlite_error_message(err) };
        // SAFETY: an error's message is a NUL-terminated string that lives as long as it.
        let message = unsafe { std::ffi::CStr::from_ptr(message) };
        let message = message.to_string_lossy().into_owned();
        // SAFETY: `err` is live and freed once, after its message was copied.
        unsafe { error::backlite_error_free(err) };
        assert!(message.contains(what), "{message}");
        message
    }

    #[test]
    fn a_panic_caught_at_the_boundary_prints_nothing() {
        let Some(stderr) =
            stderr_of_child("ffi::panic::tests::a_panic_caught_at_the_boundary_prints_nothing")
        else {
            // The standard hook is in place: it would print the panic and a backtrace.
            panic_inside("deliberate");
            return;
        };
        assert_eq!(stderr, "", "a caught panic reached stderr");
    }

    #[test]
    fn a_host_hook_still_sees_every_panic_outside_backlite() {
        let Some(stderr) = stderr_of_child(
            "ffi::panic::tests::a_host_hook_still_sees_every_panic_outside_backlite",
        ) else {
            std::panic::set_hook(Box::new(|info| {
                let what = info.payload().downcast_ref::<&str>().unwrap_or(&"?");
                eprintln!("host hook: {what}");
            }));
            let _ = std::panic::catch_unwind(|| panic!("before"));
            let message = panic_inside("inside");
            // What the hook would have printed goes to the error message instead.
            assert!(message.contains("panic.rs:"), "no location: {message}");
            let _ = std::panic::catch_unwind(|| panic!("after"));
            // Another thread's panic while this one is inside an export is not ours.
            let mut err = std::ptr::null_mut();
            let rc = boundary(&mut err, || {
                let other = std::thread::spawn(|| panic!("other thread"));
                assert!(other.join().is_err());
                Ok(BACKLITE_RESULT_OK)
            });
            assert_eq!(rc, BACKLITE_RESULT_OK);
            return;
        };
        assert_eq!(
            stderr,
            "host hook: before\nhost hook: after\nhost hook: other thread\n"
        );
    }
}
