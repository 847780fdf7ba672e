//! BackLite's C library: the thin C ABI (`include/backlite.h`) over the safe core in
//! the `backlite-core` crate. Only [`ffi`] is compiled into `libbacklite.so`'s exports;
//! the core is re-exported so that Rust programs linking this crate keep one name.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub use backlite_core::*;

pub mod ffi;
