//! Manifests, indexes and configs: `MANIFEST \0 CONFIG`. The manifest (or
//! index) is read with the config available by its digest; what reads is
//! then hardened (the pure rewrite) and inspected. No input may panic.
#![no_main]
use harden::digest::Digest;
use harden::image::{Blob, Content};
use harden::{inspect, layer, manifest, rewrite};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let (manifest, config) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let config = Arc::new(config.to_vec());
    let config_digest = Digest::of(&config);
    let blob = |d: &Digest, _size: u64| -> anyhow::Result<Blob> {
        Ok(Blob::Bytes(if *d == config_digest {
            config.clone()
        } else {
            Arc::new(Vec::new())
        }))
    };
    let load = |_: &Digest, _: u64| -> anyhow::Result<Vec<u8>> { Ok(manifest.to_vec()) };
    let Ok(content) = manifest::read_content(manifest, Digest::of(manifest), &load, &blob) else {
        return;
    };
    let images = match &content {
        Content::Image(i) => vec![i.clone()],
        Content::Index(x) => x.entries.iter().map(|e| e.image.clone()).collect(),
    };
    let stepdown = layer::stepdown_layer(b"\x7fELF fuzz", &[]).expect("layer");
    let ctx = rewrite::RunContext {
        version: "fuzz".into(),
        created: None,
        base_name: None,
    };
    for image in images {
        let _ = inspect::describe(&image);
        let settings = rewrite::Settings::default();
        let Ok(base) = rewrite::unharden(&image) else {
            continue;
        };
        let Ok(config) = base.image_config() else {
            continue;
        };
        let inferred = rewrite::infer(&settings, config.run());
        if let Ok(hardened) = rewrite::harden(&image, &settings, &inferred, &stepdown, None, &ctx) {
            let _ = hardened.manifest();
            let _ = inspect::diff(&image, &hardened);
        }
    }
});
