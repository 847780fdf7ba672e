//! The BackLite core, named in one place: the CLI is a client of the core crate's
//! safe Rust API and of nothing else.

pub use backlite_core::{
    CheckReport, Error, ErrorKind, EvictionPolicy, Expiration, ExportedEntry, FileInfo, KeyInfo,
    LifetimeStats, Options, Storage, Streamed, MEMORY,
};
