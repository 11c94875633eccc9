//! harden: make an existing container image run as a non-root user.
//!
//! The library is the whole tool; `src/main.rs` is its command line. It is a
//! library so that the fuzz targets (fuzz/) reach the parsers.

pub mod compress;
pub mod copies;
pub mod decompress;
pub mod digest;
pub mod exit;
pub mod image;
pub mod inspect;
pub mod interrupt;
pub mod layer;
pub mod limits;
pub mod mapping;
pub mod platform;
pub mod progress;
pub mod registry;
pub mod rewrite;
pub mod rootfs;
pub mod run;
pub mod sink;
pub mod source;
pub mod store;
pub mod transport;

/// The step-down's own ID and name checks, shared so that harden refuses at
/// rewrite time exactly what the step-down would refuse at run time.
#[path = "../stepdown/src/accounts.rs"]
#[allow(dead_code)]
pub mod accounts;
/// The fixed-capacity text type accounts.rs builds its lines with.
#[path = "../stepdown/src/text.rs"]
#[allow(dead_code)]
mod text;
