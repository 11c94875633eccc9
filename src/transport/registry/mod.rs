//! The `docker://` transport: registries that speak the distribution API.
//!
//! Reading fetches the manifest and the config; layers stay references to the
//! registry (`RemoteBlob`) until a sink needs them. Writing to a registry
//! HEADs each blob, mounts it across repositories of the same registry, and
//! uploads only what is missing (streamed, verified; a layer harden gzips is
//! streamed while it is compressed); the manifest (the tag) goes last.

mod auth;
mod blob;
mod client;
mod pool;
mod push;
mod read;
mod repo;
#[cfg(test)]
mod testing;
mod tls;
mod upload;

pub use auth::{AuthFile, Credential};
pub use blob::RemoteBlob;
pub use client::Access;
pub use pool::{runtime, Registries};
pub use push::{plan, write, BlobKind, EarlyUploads, PlannedBlob};
pub use read::read;
pub use repo::{read_capped, Repo};
