//! Builds the step-down binary (a separate, dependency-free crate) as a static
//! executable and hands it to the harden crate, which embeds it with
//! `include_bytes!`. One `cargo build --release` thus gives a self-contained
//! `harden`. rustc is called directly: the crate has no dependencies, and a
//! nested cargo would fight the outer one for the target directory lock.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    println!("cargo:rerun-if-changed=stepdown/src");
    println!("cargo:rerun-if-env-changed=HARDEN_STEPDOWN_AMD64");
    // `make build` may hand in a prebuilt binary; otherwise build it here.
    let amd64 = out.join("harden-stepdown-amd64");
    match env::var_os("HARDEN_STEPDOWN_AMD64") {
        Some(prebuilt) => {
            std::fs::copy(&prebuilt, &amd64).expect("copy HARDEN_STEPDOWN_AMD64");
        }
        None => build_stepdown(Path::new(&rustc), "x86_64-unknown-linux-gnu", &[], &amd64),
    }
}

fn build_stepdown(rustc: &Path, target: &str, extra: &[&str], dest: &Path) {
    let status = Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-name=harden_stepdown",
            "--crate-type=bin",
            "-Copt-level=s",
            "-Cpanic=abort",
            "-Clto=fat",
            "-Ccodegen-units=1",
            "-Cstrip=symbols",
            "-Ctarget-feature=+crt-static",
            "--target",
            target,
        ])
        .args(extra)
        .arg("stepdown/src/main.rs")
        .arg("-o")
        .arg(dest)
        .env("CARGO_PKG_VERSION", env::var("CARGO_PKG_VERSION").unwrap())
        .status()
        .expect("run rustc for the step-down binary");
    assert!(
        status.success(),
        "building the step-down binary for {target} failed"
    );
}
