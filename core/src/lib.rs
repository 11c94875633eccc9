//! harden-core: the image model (digests, platforms, media types, blobs as
//! references), the manifest codec, the rewrite and harden's layer, and the
//! readers of layer content (rootfs, inspect). Pure apart from reading a
//! blob when asked; transports, the async runtime and the CLI are in the
//! harden crate.

pub mod config;
pub mod decompress;
pub mod digest;
pub mod image;
pub mod inspect;
pub mod layer;
pub mod limits;
pub mod manifest;
pub mod platform;
pub mod rewrite;
pub mod rootfs;

/// The step-down's own ID and name checks, shared so that harden refuses at
/// rewrite time exactly what the step-down would refuse at run time.
#[path = "../../stepdown/src/accounts.rs"]
#[allow(dead_code)]
pub mod accounts;
/// The fixed-capacity text type accounts.rs builds its lines with.
#[path = "../../stepdown/src/text.rs"]
#[allow(dead_code)]
mod text;
