//! What a destination says it wrote, for the report and `--json`.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Written {
    pub destination: String,
    /// Digest of the manifest written (none in a docker-archive, which has no manifest).
    pub manifest_digest: Option<String>,
    /// The config digest, which dockerd's classic store and podman show as
    /// the image ID (Docker's containerd store shows the manifest's); none
    /// for an index.
    pub image_id: Option<String>,
    /// What a registry push moved (none for the file transports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobSummary>,
}

/// Blobs of a registry push: already there, mounted from another repository,
/// or uploaded (and how many bytes).
#[derive(Debug, Default, Serialize)]
pub struct BlobSummary {
    pub skipped: usize,
    pub mounted: usize,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
}
