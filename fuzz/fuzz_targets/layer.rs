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
    // The same walk static mode does: account files and an inferred directory.
    if let Ok(found) = rootfs::find(&image, &["etc/passwd", "etc/group", "data"]) {
        let mut found = found.into_iter();
        let passwd = rootfs::file("etc/passwd", found.next().flatten());
        let group = rootfs::file("etc/group", found.next().flatten());
        let owner = match found.next().flatten() {
            Some(rootfs::Found::Dir { uid, gid, .. }) => {
                u32::try_from(uid).ok().zip(u32::try_from(gid).ok())
            }
            _ => None,
        };
        if let (Ok(passwd), Ok(group)) = (passwd, group) {
            let _ = rewrite::plan_static(
                &rewrite::Settings::default(),
                harden::config::User::parse(""),
                passwd.as_ref(),
                group.as_ref(),
                owner,
            );
        }
    }
});
