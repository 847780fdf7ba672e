//! BackLite's C library: the thin C ABI (`include/backlite.h`) over the safe core in
//! the `backlite-core` crate. Only [`ffi`] is compiled into `libbacklite.so`'s exports;
//! the core is re-exported so that Rust programs linking this crate keep one name.
//!
//! # Process-wide state
//!
//! The C boundary's only statics (`tests/statics.rs` fails on a static not listed here;
//! the core lists its own):
//!
//! - `ffi::panic::WRAP_HOOK`: a process has one panic hook, so the hook that keeps
//!   caught panics off the host's stderr wraps the host's once, from the first export
//!   called.
//! - `ffi::fork::INSTALL`: a process installs its `pthread_atfork` handlers once: the
//!   child handler reports forks to the core (which then asks the kernel for the
//!   process id once per fork instead of once per call), and the prepare and parent
//!   handlers make a fork wait for the library's own writing threads (hit writers).
//! - `ffi::panic::DEPTH`, `ffi::panic::LOCATION` (thread-local, not process-wide): a
//!   panic hook is called on the panicking thread, and only it knows whether it is
//!   inside an export and where its panic happened.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub use backlite_core::*;

pub mod ffi;
