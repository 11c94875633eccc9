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
    for var in [
        "HARDEN_STEPDOWN_AMD64",
        "HARDEN_STEPDOWN_ARM64",
        "HARDEN_REQUIRE_ARM64",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // A prebuilt binary may be handed in; otherwise build it here.
    let amd64 = out.join("harden-stepdown-amd64");
    match env::var_os("HARDEN_STEPDOWN_AMD64") {
        Some(prebuilt) => {
            std::fs::copy(&prebuilt, &amd64).expect("copy HARDEN_STEPDOWN_AMD64");
        }
        None => assert!(
            build_stepdown(Path::new(&rustc), "x86_64-unknown-linux-gnu", &[], &amd64),
            "building the step-down binary for amd64 failed"
        ),
    }
    // arm64 comes from Debian's rustc (rustup's cannot fetch the aarch64 std
    // here), with the aarch64 std and cross linker from Debian's packages.
    // Without them the arm64 binary is left empty and harden says so when an
    // arm64 image needs it; `make build` and `make test` install them and set
    // HARDEN_REQUIRE_ARM64, which makes a failed build fatal.
    let arm64 = out.join("harden-stepdown-arm64");
    let built = match env::var_os("HARDEN_STEPDOWN_ARM64") {
        Some(prebuilt) => std::fs::copy(&prebuilt, &arm64).is_ok(),
        None => {
            let debian_rustc = Path::new("/usr/bin/rustc");
            debian_rustc.exists()
                && build_stepdown(
                    debian_rustc,
                    "aarch64-unknown-linux-gnu",
                    // arm64 kernels may use 16 or 64 KiB pages (Asahi Linux,
                    // RHEL's kernel-64k): the segments must not share one.
                    &[
                        "-Clinker=aarch64-linux-gnu-gcc",
                        "-Clink-arg=-Wl,-z,max-page-size=65536",
                    ],
                    &arm64,
                )
        }
    };
    if !built {
        if env::var_os("HARDEN_REQUIRE_ARM64").is_some() {
            panic!("building the arm64 step-down failed (see ../README.md: Debian's rustc-web, libstd-rust-web-dev:arm64, gcc-aarch64-linux-gnu)");
        }
        println!("cargo:warning=no arm64 step-down: install Debian's rustc-web, libstd-rust-web-dev:arm64 and gcc-aarch64-linux-gnu (make deps)");
        std::fs::write(&arm64, b"").expect("write the empty arm64 placeholder");
    }
}

/// Compiles the step-down for `target`; false when the toolchain cannot.
/// No libc: its own `_start`, no start files, no default libraries, a
/// static non-PIE executable (nothing to relocate at start), one text segment
/// holding the read-only data too, and no unwind
/// tables (panics abort; the precompiled core brings them anyway, so the
/// linker script discards them).
fn build_stepdown(rustc: &Path, target: &str, extra: &[&str], dest: &Path) -> bool {
    let script = dest.with_extension("ld");
    std::fs::write(
        &script,
        "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) *(.comment) } } INSERT AFTER .text;\n",
    )
    .expect("write the linker script");
    Command::new(rustc)
        .args([
            "--edition=2021",
            "--crate-name=harden_stepdown",
            "--crate-type=bin",
            "--cfg=harden_stepdown_bin",
            "-Copt-level=z",
            "-Cpanic=abort",
            "-Clto=fat",
            "-Ccodegen-units=1",
            "-Cstrip=symbols",
            "-Ctarget-feature=+crt-static",
            "-Crelocation-model=static",
            "-Cforce-unwind-tables=no",
            "-Clink-arg=-nostartfiles",
            "-Clink-arg=-nostdlib",
            "-Clink-arg=-Wl,--build-id=none",
            "-Clink-arg=-Wl,-z,norelro",
            "-Clink-arg=-Wl,-z,noseparate-code",
            // amd64 pages are 4 KiB; `extra` raises it for arm64.
            "-Clink-arg=-Wl,-z,max-page-size=4096",
            "-Clink-arg=-Wl,--no-eh-frame-hdr",
            // GNU ld on both architectures: with -z noseparate-code it puts
            // the read-only data in the text segment, one mapping and one page
            // fault less at every start (lld, rustup's default, would not).
            "-Clink-arg=-fuse-ld=bfd",
            "--target",
            target,
        ])
        .args(extra)
        .arg(format!("-Clink-arg=-Wl,-T,{}", script.display()))
        .arg("stepdown/src/main.rs")
        .arg("-o")
        .arg(dest)
        .env("CARGO_PKG_VERSION", env::var("CARGO_PKG_VERSION").unwrap())
        .status()
        .is_ok_and(|s| s.success())
        && strip_section_headers(dest).is_ok()
}

/// Cuts the section header table and what only it points to (as ELFkickers'
/// sstrip): the kernel loads segments, and the sections are ~400 bytes of
/// bookkeeping in every image. ELF64 little-endian (amd64, arm64).
fn strip_section_headers(path: &Path) -> std::io::Result<()> {
    let mut elf = std::fs::read(path)?;
    let at = |o: usize, n: usize| -> usize {
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(&elf[o..o + n]);
        u64::from_le_bytes(v) as usize
    };
    assert_eq!(
        &elf[..6],
        b"\x7fELF\x02\x01",
        "{}: not ELF64 LE",
        path.display()
    );
    let (phoff, phentsize, phnum) = (at(0x20, 8), at(0x36, 2), at(0x38, 2));
    let mut end = phoff + phentsize * phnum;
    for ph in (0..phnum).map(|i| phoff + i * phentsize) {
        const PT_LOAD: usize = 1;
        // A segment with no file bytes (.bss) needs none of the file.
        if at(ph, 4) == PT_LOAD && at(ph + 32, 8) > 0 {
            end = end.max(at(ph + 8, 8) + at(ph + 32, 8)); // p_offset + p_filesz
        }
    }
    elf.truncate(end);
    elf[0x28..0x30].fill(0); // e_shoff
    elf[0x3c..0x40].fill(0); // e_shnum, e_shstrndx
    std::fs::write(path, elf)
}
