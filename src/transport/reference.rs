//! Image references in skopeo's transport syntax.

use anyhow::{bail, Result};
use oci_spec::distribution::Reference;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `docker-archive:PATH[:NAME:TAG|:@INDEX]`, the `docker save` format.
    DockerArchive { path: PathBuf, select: Select },
    /// `oci:DIR[:TAG|:@INDEX]`, an OCI image layout directory.
    Oci { dir: PathBuf, select: Select },
    /// `oci-archive:PATH[:TAG|:@INDEX]`, an OCI image layout in a tar file.
    OciArchive { path: PathBuf, select: Select },
    /// `docker://REF`, an image in a registry, normalized as docker does
    /// (`alpine` is `docker.io/library/alpine:latest`).
    Docker(Reference),
    /// `docker-daemon:NAME[:TAG|@DIGEST]` or `docker-daemon:sha256:ID`, an
    /// image in a Docker Engine API (dockerd, podman's service), named as
    /// written: the engine resolves it (podman's `aws:v1` is
    /// `localhost/aws:v1`, docker's `docker.io/library/aws:v1`).
    DockerDaemon(String),
}

/// Which image of a file or layout: the only one, one by name (a
/// docker-archive's NAME:TAG, an OCI layout's ref name) or by its place in
/// the list (`@INDEX`, from 0, as skopeo numbers them; sources only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    Only,
    Name(String),
    Index(usize),
}

impl Select {
    /// `:NAME` or `:@INDEX` as written after the path; nothing for `Only`.
    fn suffix(&self) -> String {
        match self {
            Select::Only => String::new(),
            Select::Name(n) => format!(":{n}"),
            Select::Index(i) => format!(":@{i}"),
        }
    }

    /// The name of a destination, which `@INDEX` cannot be (`what` says
    /// what to write instead).
    fn output_name(&self, what: &str) -> Result<Option<&str>> {
        match self {
            Select::Only => Ok(None),
            Select::Name(n) => Ok(Some(n)),
            Select::Index(_) => bail!("@INDEX selects a source image; name the output {what}"),
        }
    }
}

/// How a destination wants an image's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerForm {
    /// As the source has them (an OCI layout holds any).
    AsTheyAre,
    /// Compressed: plain layers are gzipped first (a registry, as docker
    /// push, skopeo and crane write them).
    Gzip,
    /// Plain tars, which the format wants (docker-archive).
    Plain,
}

/// What a destination holds and wants. The pipeline asks these instead of
/// matching the transport, as containers/image's destinations declare their
/// manifest types and layer compression; a new transport states them here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Docker v2s2 media types as well as OCI's; without them a Docker image
    /// is converted to OCI (as `skopeo copy` does to an OCI layout).
    pub docker_media_types: bool,
    pub layers: LayerForm,
    /// An index of several platforms; else exactly one image.
    pub many_platforms: bool,
}

impl ImageRef {
    pub fn capabilities(&self) -> Capabilities {
        match self {
            ImageRef::Docker(_) => Capabilities {
                docker_media_types: true,
                layers: LayerForm::Gzip,
                many_platforms: true,
            },
            ImageRef::DockerArchive { .. } => Capabilities {
                docker_media_types: true,
                layers: LayerForm::Plain,
                many_platforms: false,
            },
            // The engine loads a docker-archive.
            ImageRef::DockerDaemon(_) => Capabilities {
                docker_media_types: true,
                layers: LayerForm::Plain,
                many_platforms: false,
            },
            ImageRef::Oci { .. } | ImageRef::OciArchive { .. } => Capabilities {
                docker_media_types: false,
                layers: LayerForm::AsTheyAre,
                many_platforms: true,
            },
        }
    }

    /// The transport's name in messages ("a docker-archive").
    pub fn transport_name(&self) -> &'static str {
        match self {
            ImageRef::Docker(_) => "a registry",
            ImageRef::DockerArchive { .. } => "a docker-archive",
            ImageRef::Oci { .. } => "an OCI layout",
            ImageRef::OciArchive { .. } => "an oci-archive",
            ImageRef::DockerDaemon(_) => "a Docker engine",
        }
    }

    /// The name a file destination is written under (`:NAME:TAG`, `:TAG`);
    /// none for a registry, whose reference is the name.
    pub fn output_name(&self) -> Result<Option<&str>> {
        match self {
            ImageRef::Docker(_) => Ok(None),
            ImageRef::DockerDaemon(name) if is_image_id(name) => {
                bail!("{name:?} is an image ID; a docker-daemon destination is NAME:TAG")
            }
            ImageRef::DockerDaemon(name) if name.contains('@') => {
                bail!("{name:?} names a digest; a docker-daemon destination is NAME:TAG")
            }
            ImageRef::DockerDaemon(name) => Ok(Some(name)),
            ImageRef::DockerArchive { select, .. } => select.output_name(":NAME:TAG"),
            ImageRef::Oci { select, .. } | ImageRef::OciArchive { select, .. } => {
                select.output_name(":TAG")
            }
        }
    }

    pub fn parse(s: &str) -> Result<ImageRef> {
        if let Some(r) = s.strip_prefix("docker://") {
            return Ok(ImageRef::Docker(parse_reference(r)?));
        }
        if let Some(name) = s.strip_prefix("docker-daemon:") {
            return Ok(ImageRef::DockerDaemon(daemon_name(name)?));
        }
        let Some((transport, rest)) = s.split_once(':') else {
            bail!("{s:?} names no transport: use docker://REF, docker-daemon:NAME:TAG, docker-archive:PATH, oci:DIR[:TAG] or oci-archive:PATH[:TAG]");
        };
        let (path, reference) = match rest.split_once(':') {
            Some((p, r)) => (p, Some(r)),
            None => (rest, None),
        };
        if path.is_empty() {
            bail!("{s:?}: the path is empty");
        }
        let path = PathBuf::from(path);
        let select = |name: fn(&str) -> Result<String>| -> Result<Select> {
            Ok(match reference {
                None => Select::Only,
                Some(r) if r.starts_with('@') => match r[1..].parse() {
                    Ok(i) => Select::Index(i),
                    Err(_) => bail!("{s:?}: {r:?} is not @INDEX"),
                },
                Some(r) => Select::Name(name(r).map_err(|e| anyhow::anyhow!("{s:?}: {e}"))?),
            })
        };
        match transport {
            "docker-archive" => Ok(ImageRef::DockerArchive {
                path,
                select: select(archive_name)?,
            }),
            "oci" => Ok(ImageRef::Oci {
                dir: path,
                select: select(ref_name)?,
            }),
            "oci-archive" => Ok(ImageRef::OciArchive {
                path,
                select: select(ref_name)?,
            }),
            "docker" => bail!("{s:?}: write docker://REF"),
            // A typo of a transport (`docker-archiv:x.tar`), before it is
            // taken for a registry host.
            other if closest_transport(other).is_some() => bail!(
                "{s:?}: unknown transport {other:?}; did you mean {}? (transports: {TRANSPORTS})",
                closest_transport(other).unwrap_or_default()
            ),
            // `alpine:3.19`, `localhost:5000/app`: a registry image without docker://.
            other if parse_reference(s).is_ok() => {
                bail!("{s:?}: unknown transport {other:?}; a registry image is docker://{s}")
            }
            other => bail!("{s:?}: unknown transport {other:?} (transports: {TRANSPORTS})"),
        }
    }
}

const TRANSPORTS: &str =
    "docker://REF, docker-daemon:NAME:TAG, docker-archive:PATH, oci:DIR, oci-archive:PATH";

/// The transport prefix `name` is a likely typo of (case aside, at most
/// two edits away and a third of the name's length).
fn closest_transport(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    [
        ("docker-archive", "docker-archive:"),
        ("docker-daemon", "docker-daemon:"),
        ("oci-archive", "oci-archive:"),
        ("docker", "docker://"),
        ("oci", "oci:"),
    ]
    .into_iter()
    .map(|(t, prefix)| (edits(&lower, t), t, prefix))
    .filter(|(d, t, _)| *d <= 2.min(t.len() / 3) && name != *t)
    .min()
    .map(|(_, _, prefix)| prefix)
}

/// Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (transport, path, select) = match self {
            ImageRef::Docker(r) => return write!(f, "docker://{r}"),
            ImageRef::DockerDaemon(name) => return write!(f, "docker-daemon:{name}"),
            ImageRef::DockerArchive { path, select } => ("docker-archive", path, select),
            ImageRef::Oci { dir, select } => ("oci", dir, select),
            ImageRef::OciArchive { path, select } => ("oci-archive", path, select),
        };
        write!(f, "{transport}:{}{}", path.display(), select.suffix())
    }
}

/// A registry reference as docker normalizes it; only sha256 digests.
pub fn parse_reference(s: &str) -> Result<Reference> {
    let invalid =
        |why: &dyn fmt::Display| anyhow::anyhow!("{s:?} is not a valid image reference: {why}");
    const LOWERCASE: &str = "repository name must be lowercase";
    let r: Reference = s.parse().map_err(|e| {
        // Tags may hold capitals, repository names may not: when only
        // capitals stand in the way, say so (as docker does).
        match s.to_lowercase().parse::<Reference>() {
            Ok(_) => invalid(&LOWERCASE),
            Err(_) => invalid(&e),
        }
    })?;
    // Docker refuses this too; the parser lets it through when the name's
    // first component looks like a host.
    if r.repository().bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid(&LOWERCASE));
    }
    if let Some(d) = r.digest() {
        crate::digest::Digest::parse(d)?;
    }
    Ok(r)
}

/// The reference `pull-rewrite-push` writes to by default: the same
/// repository, tag `TAG-hardened` (`sha256-HEX-hardened` for a digest).
pub fn default_destination(src: &Reference) -> Reference {
    let base = match (src.tag(), src.digest()) {
        (Some(t), _) => t.to_string(),
        (None, Some(d)) => d.replace(':', "-"),
        (None, None) => "latest".to_string(),
    };
    Reference::with_tag(
        src.registry().to_string(),
        src.repository().to_string(),
        hardened_tag(&base),
    )
}

/// `TAG-hardened`, the default tag of a hardened image, within the 128
/// characters a tag may have; a tag that already ends so stays as it is
/// (re-hardening replaces harden's own layer: the image is still that one).
pub fn hardened_tag(tag: &str) -> String {
    if tag.ends_with("-hardened") {
        return tag.to_string();
    }
    format!("{}-hardened", tag.chars().take(119).collect::<String>())
}

/// An OCI layout's `org.opencontainers.image.ref.name`: components of
/// alphanumerics joined by `-._:@+` or `--`, separated by `/` (the image-spec
/// grammar); so `v1` and `harden:0.1.0` (which podman load names the image by) both are.
/// It starts with an alphanumeric, so `@INDEX` is never one.
fn ref_name(r: &str) -> Result<String> {
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|x| x.is_ascii_alphanumeric() || b"-._:@+".contains(x))
            && !c.contains("..")
    };
    if r.len() > 255 || !r.split('/').all(component_ok) {
        bail!("{r:?} is not a valid OCI reference name");
    }
    Ok(r.to_string())
}

/// A docker-archive image name as skopeo takes it: any image reference
/// (`alpine:3.19`, `localhost:5000/app:v1`) but a digest; without a tag it
/// is `:latest`. Kept as written: archives hold both forms (`docker save`
/// writes `alpine:3.19`, podman and skopeo `docker.io/library/alpine:3.19`),
/// and `same_image` matches them.
pub fn archive_name(n: &str) -> Result<String> {
    if parse_reference(n)?.digest().is_some() {
        bail!("{n:?}: a docker-archive names its images by tag, not by digest");
    }
    let tagged = n.rsplit('/').next().is_some_and(|last| last.contains(':'));
    Ok(if tagged {
        n.to_string()
    } else {
        format!("{n}:latest")
    })
}

/// `sha256:` and 64 hex digits: an engine's image ID.
fn is_image_id(name: &str) -> bool {
    name.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An engine image as skopeo's docker-daemon: takes it: an image ID, or a
/// reference with a tag or a digest; without either it is `:latest`, as
/// `docker run` takes it. Kept as written, for the engine to resolve.
fn daemon_name(n: &str) -> Result<String> {
    if is_image_id(n) {
        return Ok(n.to_string());
    }
    let r = parse_reference(n).map_err(|e| anyhow::anyhow!("docker-daemon:{n}: {e}"))?;
    let tagged = r.digest().is_some() || n.rsplit('/').next().is_some_and(|l| l.contains(':'));
    Ok(if tagged {
        n.to_string()
    } else {
        format!("{n}:latest")
    })
}

/// Whether two image names are the same once docker's normalization is
/// applied to both (`alpine:3.19` is `docker.io/library/alpine:3.19`).
pub fn same_image(a: &str, b: &str) -> bool {
    a == b
        || match (parse_reference(a), parse_reference(b)) {
            (Ok(a), Ok(b)) => a.to_string() == b.to_string(),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_typos_are_named() {
        for (typo, meant) in [
            ("docker-archiv", "docker-archive:"),
            ("Docker-Archive", "docker-archive:"),
            ("oci-achive", "oci-archive:"),
            ("dokcer", "docker://"),
            ("ocii", "oci:"),
        ] {
            assert_eq!(closest_transport(typo), Some(meant), "{typo}");
        }
        for host in ["alpine", "localhost", "quay.io", "nope", "oci"] {
            assert_eq!(closest_transport(host), None, "{host}");
        }
    }

    #[test]
    fn parses_daemon_names() {
        let parse = |s: &str| ImageRef::parse(s).map_err(|e| e.to_string());
        assert_eq!(
            parse("docker-daemon:aws:v1"),
            Ok(ImageRef::DockerDaemon("aws:v1".into()))
        );
        assert_eq!(
            parse("docker-daemon:localhost:5000/app"),
            Ok(ImageRef::DockerDaemon("localhost:5000/app:latest".into()))
        );
        let id = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            parse(&format!("docker-daemon:{id}")),
            Ok(ImageRef::DockerDaemon(id.clone()))
        );
        let dest = |s: &str| {
            let r = ImageRef::parse(s).unwrap();
            r.output_name()
                .map(|n| n.map(str::to_string))
                .map_err(|e| e.to_string())
        };
        assert_eq!(dest("docker-daemon:aws:v1"), Ok(Some("aws:v1".into())));
        assert!(dest(&format!("docker-daemon:{id}")).is_err());
        let digest = format!("docker-daemon:aws@sha256:{}", "0".repeat(64));
        assert!(dest(&digest).unwrap_err().contains("NAME:TAG"));
        assert!(parse("docker-daemon:UPPER:v1").is_err());
        assert!(parse("docker-daemon:").is_err());
        assert_eq!(
            ImageRef::parse("docker-daemon:aws:v1").unwrap().to_string(),
            "docker-daemon:aws:v1"
        );
    }

    #[test]
    fn parses_transports() {
        assert_eq!(
            ImageRef::parse("docker-archive:a.tar").unwrap(),
            ImageRef::DockerArchive {
                path: "a.tar".into(),
                select: Select::Only
            }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:a.tar:example/t:1.0").unwrap(),
            ImageRef::DockerArchive {
                path: "a.tar".into(),
                select: Select::Name("example/t:1.0".into())
            }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:a.tar:@1").unwrap(),
            ImageRef::DockerArchive {
                path: "a.tar".into(),
                select: Select::Index(1)
            }
        );
        assert_eq!(
            ImageRef::parse("oci:/tmp/l:v1").unwrap(),
            ImageRef::Oci {
                dir: "/tmp/l".into(),
                select: Select::Name("v1".into())
            }
        );
        assert_eq!(
            ImageRef::parse("oci-archive:x.tar").unwrap(),
            ImageRef::OciArchive {
                path: "x.tar".into(),
                select: Select::Only
            }
        );
        for s in [
            "docker-archive:a.tar",
            "oci:/l:t",
            "oci-archive:x.tar:harden:0.1.0",
            "oci:/l:example.com/app:v1",
            "oci-archive:x.tar:latest",
            "docker-archive:a.tar:@2",
            "oci:/l:@0",
            "oci-archive:x.tar:@3",
        ] {
            assert_eq!(ImageRef::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn normalizes_registry_references() {
        let cases = [
            (
                "docker://alpine",
                "docker://docker.io/library/alpine:latest",
            ),
            (
                "docker://nginx:1.27",
                "docker://docker.io/library/nginx:1.27",
            ),
            ("docker://user/app", "docker://docker.io/user/app:latest"),
            ("docker://localhost/app:v1", "docker://localhost/app:v1"),
            (
                "docker://127.0.0.1:5000/a/b:t",
                "docker://127.0.0.1:5000/a/b:t",
            ),
            (
                "docker://ghcr.io/o/r@sha256:{h}",
                "docker://ghcr.io/o/r@sha256:{h}",
            ),
        ];
        let h = "a".repeat(64);
        for (input, want) in cases {
            let (input, want) = (input.replace("{h}", &h), want.replace("{h}", &h));
            assert_eq!(
                ImageRef::parse(&input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn archive_names_as_skopeo_takes_them() {
        let name = |s: &str| match ImageRef::parse(&format!("docker-archive:a.tar:{s}")) {
            Ok(ImageRef::DockerArchive {
                select: Select::Name(n),
                ..
            }) => n,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(name("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(name("notag"), "notag:latest");
        assert_eq!(name("localhost:5000/app"), "localhost:5000/app:latest");
        assert!(same_image("alpine:3.19", "docker.io/library/alpine:3.19"));
        assert!(same_image("docker.io/b/two:2", "b/two:2"));
        assert!(!same_image("alpine:3.19", "alpine:3.20"));
        assert!(!same_image("quay.io/alpine:3.19", "alpine:3.19"));
        assert!(same_image("not a name", "not a name"));
    }

    #[test]
    fn default_destination_tags() {
        let d = |s: &str| default_destination(&parse_reference(s).unwrap()).to_string();
        assert_eq!(d("alpine"), "docker.io/library/alpine:latest-hardened");
        assert_eq!(d("127.0.0.1:5000/x:1.0"), "127.0.0.1:5000/x:1.0-hardened");
        let h = "b".repeat(64);
        assert_eq!(
            d(&format!("h.io/x@sha256:{h}")),
            format!("h.io/x:sha256-{h}-hardened")
        );
        assert_eq!(d(&format!("h.io/x:v2@sha256:{h}")), "h.io/x:v2-hardened");
        assert_eq!(d("h.io/x:v2-hardened"), "h.io/x:v2-hardened");
        assert_eq!(
            d(&format!("h.io/x:{}", "t".repeat(128))).len(),
            "h.io/x:".len() + 128
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "a.tar",
            "tarball:a.tar",
            "oci:",
            "oci:/l:bad//tag",
            "oci:/l:bad tag",
            "oci:/l:-x",
            "docker-archive:a.tar:UPPER:t",
            "docker-archive:a.tar:x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "docker-archive:a.tar:@x",
            "oci:/l:@",
            "oci:/l:@-1",
            "docker:alpine",
            "docker://Alpine",
            "docker://UPPER/case:1",
            "docker://alpine@sha256:abc",
            "docker://alpine@md5:0123456789abcdef0123456789abcdef",
            "docker://host:5000/",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
        for upper in [
            "docker://Alpine",
            "docker://UPPER/case:1",
            "docker://127.0.0.1:5000/UPPER:y",
        ] {
            let e = ImageRef::parse(upper).unwrap_err().to_string();
            assert!(
                e.ends_with("repository name must be lowercase"),
                "{upper}: {e}"
            );
        }
        assert!(
            parse_reference("h.io/x:UpperTag").is_ok(),
            "tags may hold capitals"
        );
    }
}
