//! harden: make an existing container image run as a non-root user.
//!
//! The library is the whole tool; `src/main.rs` is its command line. It is a
//! library so that the fuzz targets (fuzz/) reach the parsers.

pub mod compress;
pub mod copies;
pub mod exit;
pub mod interrupt;
pub mod mapping;
pub mod progress;
pub mod run;
pub mod serve;
pub mod transport;

// The core crate's modules, where the rest of harden names them (`crate::image`).
pub use harden_core::{
    accounts, config, decompress, digest, image, inspect, layer, limits, manifest, platform,
    rewrite, rootfs,
};

// The registry transport, where the pipeline names it (`crate::registry`).
pub use transport::registry;
