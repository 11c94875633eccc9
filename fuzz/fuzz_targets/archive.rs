//! docker-archive and oci-archive files: the tar index (paths, links,
//! duplicates, sizes) and manifest.json / index.json. No input may panic.
#![no_main]
use harden::registry::{Access, Registries};
use harden::source;
use harden::transport::{ImageRef, Select};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(data).expect("write");
    let path = file.path().to_path_buf();
    let registries =
        Registries::new(Access::default(), Access::default(), &[]).expect("registries");
    for r in [
        ImageRef::DockerArchive {
            path: path.clone(),
            select: Select::Only,
        },
        ImageRef::OciArchive {
            path,
            select: Select::Only,
        },
    ] {
        if let Ok(harden::image::Content::Image(image)) = source::read(&r, &registries) {
            for layer in &image.layers {
                let _ = layer.blob.read_capped(1 << 20, "layer");
            }
        }
    }
});
