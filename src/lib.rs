//! cacher: persistent caching that is boring and fast.
//!
//! The front-end (the `Cache`) is being built; for now the crate re-exports its two layers:
//! [`store`] (bytes <-> disk) and [`formats`] (values <-> bytes).
#![deny(unsafe_code)]

pub use cacher_formats as formats;
pub use cacher_store as store;
