//! Builds the step-down binary (a separate, dependency-free crate) as a static
//! executable and hands it to the harden crate, which embeds it with
//! `include_bytes!`. One `cargo build --release` thus gives a self-contained
//! `harden`. rustc is called directly: the crate has no dependencies, and a
//! nested cargo would fight the outer one for the target directory lock.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How one architecture's step-down is built.
struct Arch {
    /// OCI architecture name; the binary is `harden-stepdown-<name>`.
    name: &'static str,
    target: &'static str,
    /// Whose rustc, and where `core` comes from.
    toolchain: Toolchain,
    /// The largest page size of the architecture's kernels: segments never
    /// share a page of that size (arm64 kernels may use 16 or 64 KiB pages:
    /// Asahi Linux, RHEL's kernel-64k).
    page: u32,
    /// What to install when it cannot be built (said in the warning).
    needs: &'static str,
}

enum Toolchain {
    /// The rustc cargo runs (rustup's), its own std; its linker via cc.
    Host,
    /// Debian's rustc with Debian's std for the target, linked by a cross gcc.
    DebianStd { gcc: &'static str },
    /// Debian's rustc with `core` built here from Debian's rust-web-src (no
    /// Debian std for the target at this version), linked by binutils' ld.
    DebianSource { ld: &'static str },
}

const ARCHS: &[Arch] = &[
    Arch {
        name: "amd64",
        target: "x86_64-unknown-linux-gnu",
        toolchain: Toolchain::Host,
        page: 4096,
        needs: "rustup's stable toolchain",
    },
    Arch {
        name: "arm64",
        target: "aarch64-unknown-linux-gnu",
        toolchain: Toolchain::DebianStd {
            gcc: "aarch64-linux-gnu-gcc",
        },
        page: 65536,
        needs: "rustc-web, libstd-rust-web-dev:arm64, gcc-aarch64-linux-gnu",
    },
    // One binary for arm/v5, v6 and v7: ARMv5TE code in ARM state runs on all.
    Arch {
        name: "arm",
        target: "armv5te-unknown-linux-gnueabi",
        toolchain: Toolchain::DebianSource {
            ld: "arm-linux-gnueabi-ld",
        },
        page: 4096,
        needs: "rustc-web, rust-web-src, binutils-arm-linux-gnueabi",
    },
    Arch {
        name: "riscv64",
        target: "riscv64gc-unknown-linux-gnu",
        toolchain: Toolchain::DebianSource {
            ld: "riscv64-linux-gnu-ld",
        },
        page: 4096,
        needs: "rustc-web, rust-web-src, binutils-riscv64-linux-gnu",
    },
    // Pentium code (no SSE): runs on every 32-bit x86 a 386 image may meet.
    Arch {
        name: "386",
        target: "i586-unknown-linux-gnu",
        toolchain: Toolchain::DebianSource {
            ld: "i686-linux-gnu-ld",
        },
        page: 4096,
        needs: "rustc-web, rust-web-src, binutils-i686-linux-gnu",
    },
    // ppc64le kernels commonly use 64 KiB pages.
    Arch {
        name: "ppc64le",
        target: "powerpc64le-unknown-linux-gnu",
        toolchain: Toolchain::DebianSource {
            ld: "powerpc64le-linux-gnu-ld",
        },
        page: 65536,
        needs: "rustc-web, rust-web-src, binutils-powerpc64le-linux-gnu",
    },
    Arch {
        name: "s390x",
        target: "s390x-unknown-linux-gnu",
        toolchain: Toolchain::DebianSource {
            ld: "s390x-linux-gnu-ld",
        },
        page: 4096,
        needs: "rustc-web, rust-web-src, binutils-s390x-linux-gnu",
    },
];

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
/// Where Debian's rust-web-src puts the standard library's sources.
const DEBIAN_LIBRARY_SRC: &str = "/usr/lib/rustlib/src/rust/library";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=stepdown/src");
    println!("cargo:rerun-if-env-changed=HARDEN_REQUIRE_ALL_ARCHS");
    // Each architecture on a thread of its own: compiling `core` for one
    // takes ~20 s of a core.
    let built: Vec<bool> = std::thread::scope(|threads| {
        let builds: Vec<_> = ARCHS
            .iter()
            .map(|arch| {
                // A prebuilt binary may be handed in; otherwise it is built here.
                let var = format!("HARDEN_STEPDOWN_{}", arch.name.to_uppercase());
                println!("cargo:rerun-if-env-changed={var}");
                let dest = out.join(format!("harden-stepdown-{}", arch.name));
                let out = &out;
                threads.spawn(move || match env::var_os(&var) {
                    Some(prebuilt) => std::fs::copy(&prebuilt, &dest).is_ok(),
                    None => build_stepdown(arch, out, &dest),
                })
            })
            .collect();
        builds.into_iter().map(|b| b.join().unwrap()).collect()
    });
    for (arch, built) in ARCHS.iter().zip(built) {
        // amd64 (the host's) is always needed. Without the cross toolchains
        // the other binaries are left empty and harden says so when an image
        // needs one; `make build` and `make test` install them and set
        // HARDEN_REQUIRE_ALL_ARCHS, which makes a failed build fatal.
        if !built {
            let host = matches!(arch.toolchain, Toolchain::Host);
            if host || env::var_os("HARDEN_REQUIRE_ALL_ARCHS").is_some() {
                panic!(
                    "building the {} step-down failed (see ../README.md; it needs {})",
                    arch.name, arch.needs
                );
            }
            println!(
                "cargo:warning=no {} step-down: install {} (make deps)",
                arch.name, arch.needs
            );
            let dest = out.join(format!("harden-stepdown-{}", arch.name));
            std::fs::write(&dest, b"").expect("write the empty placeholder");
        }
    }
}

/// Compiles the step-down for `arch`; false when the toolchain cannot.
/// No libc: its own `_start`, no start files, no default libraries, a
/// static non-PIE executable (nothing to relocate at start), one text segment
/// holding the read-only data too, and no unwind tables (panics abort; the
/// precompiled core brings them anyway, so the linker script discards them).
fn build_stepdown(arch: &Arch, out: &Path, dest: &Path) -> bool {
    let script = dest.with_extension("ld");
    std::fs::write(
        &script,
        "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) *(.comment) *(.ARM.exidx*) *(.ARM.extab*) } } INSERT AFTER .text;\n",
    )
    .expect("write the linker script");
    // GNU ld on every architecture: with -z noseparate-code it puts the
    // read-only data in the text segment, one mapping and one page fault
    // less at every start (lld, rustup's default, would not).
    let page = format!("max-page-size={}", arch.page);
    let script = script.display().to_string();
    let ld_args = [
        "--build-id=none",
        "-z",
        "norelro",
        "-z",
        "noseparate-code",
        "-z",
        &page,
        "--no-eh-frame-hdr",
        "-T",
        &script,
    ];
    let mut rustc = match arch.toolchain {
        Toolchain::Host => Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())),
        _ if !Path::new(DEBIAN_RUSTC).exists() => return false,
        _ => Command::new(DEBIAN_RUSTC),
    };
    match arch.toolchain {
        Toolchain::Host | Toolchain::DebianStd { .. } => {
            if let Toolchain::DebianStd { gcc } = arch.toolchain {
                rustc.arg(format!("-Clinker={gcc}"));
            }
            rustc.args(["-Clink-arg=-nostartfiles", "-Clink-arg=-fuse-ld=bfd"]);
            rustc.arg(format!("-Clink-arg=-Wl,{}", ld_args.join(",")));
        }
        Toolchain::DebianSource { ld } => {
            let Some(sysroot) = core_sysroot(arch.target, out) else {
                return false;
            };
            rustc.arg("--sysroot").arg(sysroot);
            rustc.args([&format!("-Clinker={ld}"), "-Clinker-flavor=ld"]);
            rustc.args(ld_args.iter().map(|a| format!("-Clink-arg={a}")));
        }
    }
    rustc
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
            "-Clink-arg=-nostdlib",
            "--target",
            arch.target,
        ])
        .arg("stepdown/src/main.rs")
        .arg("-o")
        .arg(dest)
        .env("CARGO_PKG_VERSION", env::var("CARGO_PKG_VERSION").unwrap())
        .status()
        .is_ok_and(|s| s.success())
        && strip_section_headers(dest).is_ok()
}

/// A sysroot holding `core` and `compiler_builtins` for `target`, compiled
/// by Debian's rustc from its own sources (the step-down needs nothing
/// else). Kept in the cargo target directory (the outermost holding a
/// CACHEDIR.TAG), per rustc version: debug and release builds, with or
/// without --target, share it instead of compiling it each.
fn core_sysroot(target: &str, out: &Path) -> Option<PathBuf> {
    let version = Command::new(DEBIAN_RUSTC).arg("-vV").output().ok()?.stdout;
    let version = String::from_utf8_lossy(&version);
    let field = |name: &str| {
        let line = version.lines().find(|l| l.starts_with(name))?;
        Some(line[name.len()..].trim().to_string())
    };
    let key = format!("{}-{}", field("release:")?, field("commit-hash:")?);
    let cache = out
        .ancestors()
        .filter(|dir| dir.join("CACHEDIR.TAG").exists())
        .last() // target/, not target/<triple>/
        .unwrap_or(out)
        .join("stepdown-core");
    let sysroot = cache.join(&key);
    let lib = Path::new("lib/rustlib").join(target).join("lib");
    if sysroot.join(&lib).exists() {
        return Some(sysroot);
    }
    let src = Path::new(DEBIAN_LIBRARY_SRC);
    if !src.exists() {
        return None;
    }
    // Built aside and renamed into place: another build may be doing the same.
    let building = cache.join(format!("{key}.{target}.{}", std::process::id()));
    std::fs::create_dir_all(&building).ok()?;
    for (krate, path, extra) in [
        ("core", "core/src/lib.rs", &[][..]),
        (
            "compiler_builtins",
            "compiler-builtins/compiler-builtins/src/lib.rs",
            &["--cfg", "feature=\"compiler-builtins\""][..],
        ),
    ] {
        let ok = Command::new(DEBIAN_RUSTC)
            // The standard library's own sources use unstable features.
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["--edition=2024", "--crate-type=rlib", "--crate-name", krate])
            .args(["-Copt-level=z", "-Cpanic=abort", "-Ccodegen-units=1"])
            .args(["-Zforce-unstable-if-unmarked", "--target", target])
            .arg("-L")
            .arg(&building)
            .args(extra)
            .arg(src.join(path))
            .arg("--out-dir")
            .arg(&building)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir_all(&building);
            return None;
        }
    }
    std::fs::create_dir_all(sysroot.join(&lib).parent()?).ok()?;
    if std::fs::rename(&building, sysroot.join(&lib)).is_err() {
        let _ = std::fs::remove_dir_all(&building); // the other build won
    }
    sysroot.join(&lib).exists().then_some(sysroot)
}

/// Cuts the section header table and what only it points to (as ELFkickers'
/// sstrip): the kernel loads segments, and the sections are ~400 bytes of
/// bookkeeping in every image. ELF of 64 or 32 bits, either byte order.
fn strip_section_headers(path: &Path) -> std::io::Result<()> {
    let mut elf = std::fs::read(path)?;
    assert_eq!(&elf[..4], b"\x7fELF", "{}: not ELF", path.display());
    // The width of addresses and offsets: the header fields after the first
    // one of that width, and the program header fields, move with it.
    let w = if elf[4] == 2 { 8 } else { 4 };
    let big_endian = elf[5] == 2; // s390x
    let at = |o: usize, n: usize| -> usize {
        let bytes = elf[o..o + n].iter();
        let fold = |v: usize, b: &u8| v << 8 | *b as usize;
        if big_endian {
            bytes.fold(0, fold)
        } else {
            bytes.rev().fold(0, fold)
        }
    };
    let (phoff, phentsize, phnum) = (at(0x18 + w, w), at(0x1e + 3 * w, 2), at(0x20 + 3 * w, 2));
    let mut end = phoff + phentsize * phnum;
    for ph in (0..phnum).map(|i| phoff + i * phentsize) {
        const PT_LOAD: usize = 1;
        let (offset, filesz) = (at(ph + w, w), at(ph + 4 * w, w));
        // A segment with no file bytes (.bss) needs none of the file.
        if at(ph, 4) == PT_LOAD && filesz > 0 {
            end = end.max(offset + filesz);
        }
    }
    elf.truncate(end);
    elf[0x18 + 2 * w..0x18 + 3 * w].fill(0); // e_shoff
    elf[0x24 + 3 * w..0x28 + 3 * w].fill(0); // e_shnum, e_shstrndx
    std::fs::write(path, elf)
}
