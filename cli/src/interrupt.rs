//! Ctrl-C, `kill` and a closed terminal during a command that must end cleanly (an
//! import, one transaction): the signal is taken as a request to stop, the command
//! stops where it may and undoes what it did, and only then does the process end, of
//! that signal, as it would have. Dying of it on the spot leaves an import's value
//! files behind (orphans, until a sweep an hour later) and the file it was creating.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// The signals by which a user stops a command.
const STOPS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// From now on, the first of [`STOPS`] to arrive is handed to `stop` (on a thread of
/// its own) instead of ending the process. A signal the process was started with
/// ignored stays ignored: `nohup` ignores SIGHUP and a shell's background job SIGINT,
/// so that they go on when the terminal goes, which a handler would undo.
///
/// Gives the signal that came, 0 while none did: set by the signal's handler itself, so
/// it is seen by whoever reads it after the signal was delivered. A Ctrl-C also ends the
/// command writing into `backlite import`'s pipe, and the import must not take the end
/// of its input that follows for the end of a whole dump (if `stop` had not run yet).
pub fn on_stop(stop: impl FnOnce(i32) + Send + 'static) -> std::io::Result<Arc<AtomicUsize>> {
    let watched: Vec<i32> = STOPS.into_iter().filter(|s| !ignored(*s)).collect();
    let came = Arc::new(AtomicUsize::new(0));
    for signal in &watched {
        signal_hook::flag::register_usize(*signal, Arc::clone(&came), *signal as usize)?;
    }
    let mut signals = Signals::new(watched)?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            stop(signal);
        }
    });
    Ok(came)
}

/// Ends the process of `signal`, as if it had not been caught: a shell sees the command
/// killed by it (and stops its loop or script on Ctrl-C), not an exit code.
pub fn die_of(signal: i32) -> ! {
    let _ = signal_hook::low_level::emulate_default_handler(signal);
    // Not reached for the signals of STOPS, which all end a process.
    std::process::exit(128 + signal)
}

/// The name of a signal of [`STOPS`], for a message.
pub fn name(signal: i32) -> &'static str {
    signal_hook::low_level::signal_name(signal).unwrap_or("a signal")
}

/// Whether `signal` is ignored now (SIG_IGN), as it was when the process started.
fn ignored(signal: i32) -> bool {
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null new action, sigaction only writes the current one into
    // `current`, a sigaction we own; nothing is changed.
    let read = unsafe { libc::sigaction(signal, std::ptr::null(), current.as_mut_ptr()) };
    // SAFETY: zeroed is a valid sigaction (plain integers and pointers), and a
    // successful call filled it in.
    read == 0 && unsafe { current.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// The signals of [`STOPS`] held off while a write that cannot stop half-way runs (a
/// set writing a large value's file, a delete or clear unlinking the files of the
/// entries it removed): killed there, the process left a value file cut short, or files
/// no entry names, orphans that `check` reports as damage. The write finishes; then
/// [`Deferred::end`] ends the process of the signal that came meanwhile.
pub struct Deferred {
    came: Arc<AtomicUsize>,
}

/// Holds off the signals from now on (see [`Deferred`]).
pub fn defer() -> std::io::Result<Deferred> {
    Ok(Deferred {
        came: on_stop(|_| {})?,
    })
}

impl Deferred {
    /// If a signal came meanwhile: says so in a line about `file` (after `failure`'s,
    /// if the command failed), and ends the process of that signal. Else nothing.
    pub fn end(&self, file: &std::path::Path, failure: Option<&crate::cmd::Failure>) {
        let signal = self.came.load(SeqCst) as i32;
        if signal == 0 {
            return;
        }
        if let Some(failure) = failure {
            eprintln!("backlite: {}", failure.line().replace('\n', " "));
        }
        eprintln!(
            "backlite: {}: {} received while writing: stopped once the write was whole",
            crate::bytes::escape_path(file),
            name(signal)
        );
        die_of(signal)
    }
}
