//! docker-archive and oci-archive files: the tar index (paths, links,
//! duplicates, sizes) and manifest.json / index.json. No input may panic.
#![no_main]
use harden::image::Content;
use harden::transport::store::Store;
use harden::transport::{docker_archive, oci_layout, Select};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(data).expect("write");
    let Ok(store) = Store::tar(file.path()) else {
        return;
    };
    let images = [
        docker_archive::read(&store, &Select::Only).ok(),
        match oci_layout::read(&store, &Select::Only) {
            Ok(Content::Image(image)) => Some(image),
            _ => None,
        },
    ];
    for image in images.iter().flatten() {
        for layer in &image.layers {
            let _ = layer.blob.read_capped(1 << 20, "layer");
        }
    }
});
