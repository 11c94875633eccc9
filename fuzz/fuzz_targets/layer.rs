//! Layer tars (plain, gzip or zstd) read for /etc/passwd and /etc/group, with
//! whiteouts and opaque directories; then the static-mode account plan on
//! what was found. No input may panic.
#![no_main]
use harden::digest::Digest;
use harden::image::{Blob, Family, Image, Layer};
use harden::{rewrite, rootfs};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let media_type = match data.starts_with(&[0x1f, 0x8b]) {
        true => harden::image::OCI_LAYER_GZIP,
        false => harden::image::OCI_LAYER,
    };
    let digest = Digest::of(data);
    let layer = Layer::new(
        media_type,
        digest.clone(),
        digest,
        Blob::Bytes(Arc::new(data.to_vec())),
    );
    let image = Image {
        family: Family::Oci,
        config: br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
        layers: vec![layer],
        manifest_annotations: Default::default(),
        manifest_digest: None,
        name: None,
    };
    if let Ok(files) = rootfs::read_files(&image, &["etc/passwd", "etc/group"]) {
        let _ = rewrite::plan_static(
            &rewrite::Settings::default(),
            "",
            files[0].as_ref(),
            files[1].as_ref(),
        );
    }
});
