//! Platforms (`os/arch[/variant]`) and the choice of which images of an
//! index to harden: pure, no I/O.

use anyhow::{bail, Result};
use serde_json::{Map, Value};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/arm64`, `linux/arm/v7`, as docker's `--platform`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => bail!("--platform {s:?} is not OS/ARCH[/VARIANT] (e.g. linux/arm64)"),
        }
    }

    fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// From an index descriptor's `platform` or an image config (same field names).
    pub fn of(v: &Value) -> Option<Platform> {
        Platform::of_map(v.as_object()?)
    }

    /// The platform an object names (`os`, `architecture`, `variant`).
    pub fn of_map(v: &Map<String, Value>) -> Option<Platform> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        Some(Platform::new(s("os")?, s("architecture")?, s("variant")))
    }

    /// Does this platform satisfy `wanted`? A wanted platform without a
    /// variant matches every variant; arm64's v8 is its only variant.
    pub fn matches(&self, wanted: &Platform) -> bool {
        let variant = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        };
        self.os == wanted.os
            && self.architecture == wanted.architecture
            && (wanted.variant.is_none() || variant(self) == variant(wanted))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        self.variant.iter().try_for_each(|v| write!(f, "/{v}"))
    }
}

/// The step-down architectures harden carries, by OCI architecture name
/// (one arm binary serves every variant: v5, v6, v7).
pub const ARCHITECTURES: [&str; 7] = [
    "amd64", "arm64", "arm", "riscv64", "386", "ppc64le", "s390x",
];

/// Why `p` cannot be hardened, naming the platforms that can.
pub fn no_stepdown_for(p: &Platform) -> String {
    let have = ARCHITECTURES.map(|a| format!("linux/{a}")).join(", ");
    format!("harden has no step-down binary for {p} (it has {have})")
}

pub fn supported(p: &Platform) -> bool {
    p.os == "linux" && ARCHITECTURES.contains(&p.architecture.as_str())
}

/// What to do with each platform of an index.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    Harden,
    /// Left out, with the reason (shown as a warning and in `--json`).
    Drop(String),
}

/// Chooses, per platform in index order, whether to harden or drop it:
/// `wanted` (from `--platform`, empty for all) filters; a platform without a
/// step-down binary is an error unless `skip_unsupported`.
pub fn choose(
    platforms: &[Platform],
    wanted: &[Platform],
    skip_unsupported: bool,
) -> Result<Vec<Choice>> {
    for w in wanted {
        if !platforms.iter().any(|p| p.matches(w)) {
            let have: Vec<String> = platforms.iter().map(Platform::to_string).collect();
            bail!(
                "--platform {w}: the image has no such platform (it has {})",
                have.join(", ")
            );
        }
    }
    let mut choices = Vec::new();
    for p in platforms {
        choices.push(
            if !wanted.is_empty() && !wanted.iter().any(|w| p.matches(w)) {
                Choice::Drop("not selected by --platform".into())
            } else if !supported(p) {
                if !skip_unsupported {
                    bail!(
                        "{}: choose platforms with --platform, or drop this one with --skip-unsupported",
                        no_stepdown_for(p)
                    );
                }
                Choice::Drop("no step-down binary for this platform (--skip-unsupported)".into())
            } else {
                Choice::Harden
            },
        );
    }
    if !choices.contains(&Choice::Harden) {
        bail!("no platform left to harden");
    }
    Ok(choices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn parses_and_matches_platforms() {
        assert_eq!(p("linux/arm/v7").to_string(), "linux/arm/v7");
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(!p("windows/amd64").matches(&p("linux/amd64")));
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        let from = Platform::of(
            &serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"}),
        );
        assert_eq!(from, Some(p("linux/arm64/v8")));
        assert_eq!(Platform::of(&serde_json::json!({"os": "linux"})), None);
    }

    #[test]
    fn chooses_platforms_to_harden() {
        let all = [p("linux/amd64"), p("linux/arm64/v8"), p("windows/amd64")];
        let e = choose(&all, &[], false).unwrap_err().to_string();
        assert!(
            e.contains("windows/amd64") && e.contains("--platform"),
            "{e}"
        );
        let c = choose(&all, &[], true).unwrap();
        assert_eq!(c[..2], [Choice::Harden, Choice::Harden]);
        assert!(matches!(&c[2], Choice::Drop(r) if r.contains("--skip-unsupported")));
        let c = choose(&all, &[p("linux/arm64")], false).unwrap();
        assert!(matches!(&c[0], Choice::Drop(_)));
        assert_eq!(c[1], Choice::Harden);
        assert!(choose(&all, &[p("linux/riscv64")], true).is_err());
        let c = choose(
            &[p("linux/arm/v6"), p("linux/386"), p("linux/s390x")],
            &[],
            false,
        );
        assert_eq!(c.unwrap(), [Choice::Harden, Choice::Harden, Choice::Harden]);
        assert!(
            choose(&all, &[p("windows/amd64")], true).is_err(),
            "nothing left"
        );
    }
}
