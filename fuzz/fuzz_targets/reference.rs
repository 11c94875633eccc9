//! Image references in every syntax harden accepts: transports, registry
//! references, platforms, docker-archive names. None may panic; what parses must
//! print back to something that parses to the same value.
#![no_main]
use harden::{platform::Platform, transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = transport::ImageRef::parse(s) {
        let again = transport::ImageRef::parse(&r.to_string()).expect("printed reference parses");
        assert_eq!(again, r);
    }
    if let Ok(r) = transport::parse_reference(s) {
        let _ = transport::default_destination(&r);
    }
    if let Ok(p) = Platform::parse(s) {
        assert_eq!(
            Platform::parse(&p.to_string()).expect("printed platform parses"),
            p
        );
    }
    let _ = transport::archive_name(s);
    let _ = transport::same_image(s, "docker.io/library/alpine:latest");
});
