//! One harden run: read an image or index, harden each platform with the
//! step-down of its architecture, write it; and batches of such runs.

use crate::config::User;
use crate::image::{self, Content, Image, Index, IndexEntry};
use crate::transport::{self, ImageRef, LayerForm};
use crate::{
    accounts, compress, decompress, digest, inspect, layer, platform, progress, registry, rewrite,
    rootfs,
};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The step-down binaries harden puts into images, built by build.rs, by
/// OCI architecture name; empty when the build had no cross toolchain for one.
macro_rules! stepdowns {
    ($($arch:literal),*) => {
        [$(($arch, include_bytes!(concat!(env!("OUT_DIR"), "/harden-stepdown-", $arch)) as &[u8])),*]
    };
}
const STEPDOWNS: [(&str, &[u8]); platform::ARCHITECTURES.len()] =
    stepdowns!("amd64", "arm64", "arm", "riscv64", "386", "ppc64le", "s390x");

/// How to harden: the validated rewrite settings and the platforms wanted.
#[derive(Debug, Clone)]
pub struct Hardening {
    pub settings: rewrite::Settings,
    /// `--platform`: empty for every platform.
    pub wanted: Vec<platform::Platform>,
    pub skip_unsupported: bool,
}

/// What every image of a run shares: the hardening options, the registry
/// clients (connections, tokens) and the progress output.
pub struct Run {
    pub hardening: Hardening,
    pub dry_run: bool,
    /// fsync file outputs before they are renamed into place (`--no-sync` turns it off).
    pub sync: bool,
    pub registries: registry::Registries,
    pub progress: progress::Progress,
}

/// `pull-rewrite-push` arguments as registry references (DEST defaulted).
pub fn registry_pair(source: &str, dest: Option<&str>) -> Result<(ImageRef, ImageRef)> {
    let reference = |r: &str| {
        // `oci:dir` would parse as image "oci", tag "dir" of Docker Hub.
        if ["docker-archive:", "oci-archive:", "oci:"]
            .iter()
            .any(|t| r.starts_with(t))
        {
            bail!("{r:?}: pull-rewrite-push reads and writes registries; for files use harden rewrite SOURCE DEST");
        }
        transport::parse_reference(r.trim_start_matches("docker://"))
    };
    let src = reference(source)?;
    let dest = match dest {
        Some(d) => reference(d)?,
        None => {
            let dest = transport::default_destination(&src);
            if dest.tag() == src.tag() && src.digest().is_none() {
                bail!("{src} is already a -hardened tag, and harden never modifies its input: name DEST");
            }
            dest
        }
    };
    Ok((ImageRef::Docker(src), ImageRef::Docker(dest)))
}

/// A `--from` list: one `SOURCE [DEST]` per line, `#` comments. Every line
/// is checked; then `shard` (`K/N`) keeps lines K, K+N, ... for this worker.
pub fn parse_list(
    text: &str,
    file: &str,
    shard: Option<&str>,
) -> Result<Vec<(ImageRef, ImageRef)>> {
    let (k, n) = match shard {
        None => (0, 1),
        Some(s) => match s
            .split_once('/')
            .map(|(k, n)| (k.parse::<usize>(), n.parse::<usize>()))
        {
            Some((Ok(k), Ok(n))) if k < n => (k, n),
            _ => bail!("--shard {s:?} is not K/N with 0 <= K < N"),
        },
    };
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let pair = match words.as_slice() {
            [src] => registry_pair(src, None),
            [src, dest] => registry_pair(src, Some(dest)),
            _ => Err(anyhow::anyhow!("expected SOURCE [DEST]")),
        };
        pairs.push(pair.with_context(|| format!("{file}:{}: {line:?}", number + 1))?);
    }
    Ok(pairs.into_iter().skip(k).step_by(n).collect())
}

/// Hardens `pairs`, `jobs` at a time, one report each (a JSON line with
/// `json`); fails when any image failed.
pub fn batch(run: &Run, pairs: &[(ImageRef, ImageRef)], jobs: usize, json: bool) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let out = Mutex::new(());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, 32) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((src, dst)) = pairs.get(i) else {
                    break;
                };
                // With several at once, each line says which image it is about.
                let progress = if jobs > 1 && pairs.len() > 1 {
                    run.progress
                        .labelled(dst.to_string().trim_start_matches("docker://").into())
                } else {
                    run.progress.clone()
                };
                let result = harden_one(run, &progress, src, dst);
                let _guard = out.lock();
                match result {
                    Ok(report) => {
                        if json {
                            println!("{}", report.unwrap_or(Value::Null));
                        }
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        // Most errors name the image already ("reading SRC: …").
                        let text = format!("{e:#}");
                        let named = [src.to_string(), dst.to_string()]
                            .iter()
                            .any(|r| text.contains(r.as_str()));
                        match named {
                            true => eprintln!("harden: error: {text}"),
                            false => eprintln!("harden: error: {src}: {text}"),
                        }
                        if json {
                            let line = serde_json::json!({
                                "source": src.to_string(),
                                "destination": dst.to_string(),
                                "error": text,
                            });
                            println!("{line}");
                        }
                    }
                }
            });
        }
    });
    let failed = failed.into_inner();
    if failed > 0 {
        bail!("{failed} of {} failed", image::count(pairs.len()));
    }
    run.progress
        .say(&format!("hardened {}", image::count(pairs.len())));
    Ok(())
}

/// Reads, hardens and writes one image or index, saying so on `progress`;
/// returns the `--json` report (none for a dry run, which prints its own output).
pub fn harden_one(
    run: &Run,
    progress: &progress::Progress,
    src: &ImageRef,
    dst: &ImageRef,
) -> Result<Option<Value>> {
    let (settings, registries) = (&run.hardening.settings, &run.registries);
    transport::check_destination(src, dst)?;
    if let Some(home) = settings.home.as_deref() {
        if !accounts::home_preparable(home.as_bytes()) {
            let roots: Vec<_> = accounts::HOME_ROOTS
                .iter()
                .map(|r| String::from_utf8_lossy(r))
                .collect();
            progress.say(&format!(
                "note: --home {home} is not below {}: the step-down uses it as it is, \
                 never creates it or gives it to the user",
                roots.join(", ")
            ));
        }
    }
    let content = transport::read(src, registries)?;
    // A destination that wants gzipped layers (a registry, as from docker
    // push, skopeo, crane) gets them; a dry run only says so.
    let mut early = None;
    let content = match dst.capabilities().layers {
        LayerForm::Gzip if !run.dry_run => {
            // A registry starts pushing each layer while it is gzipped.
            let mut uploads =
                transport::early_uploads(dst, registries, progress)?.map(|u| early.insert(u));
            compress::gzip_layers(content, progress, |growing| match uploads.as_mut() {
                Some(uploads) => uploads.push(growing),
                None => Ok(()),
            })?
        }
        _ => content,
    };
    let Hardened {
        source_digest,
        content: hardened,
        mut report,
        dropped,
        pairs,
    } = harden_content(&run.hardening, &content)?;
    for d in &dropped {
        progress.say(&format!(
            "warning: left out {} ({}): {}",
            d.platform, d.digest, d.reason
        ));
    }
    if run.dry_run {
        say_inferred(progress, &report, settings.mode);
        print_dry_run(&pairs, dst, registries)?;
        return Ok(None);
    }
    let written = transport::write(&hardened, dst, registries, progress, early, run.sync)?;
    progress.say(&format!("wrote {}", written.destination));
    say_inferred(progress, &report, settings.mode);
    match (&written.manifest_digest, &hardened) {
        // A docker-archive stores no manifest: no manifest digests to report.
        (None, _) => report
            .iter_mut()
            .for_each(|p| p["manifest_digest"] = Value::Null),
        // One image's manifest is the one the destination stores (an engine's
        // containerd store holds its layers plain, not gzipped).
        (Some(d), Content::Image(_)) => report[0]["manifest_digest"] = d.as_str().into(),
        (Some(_), Content::Index(_)) => {}
    }
    let mut out = serde_json::json!({
        "source": src.to_string(),
        "source_manifest_digest": source_digest.as_ref().map(|d| d.as_str()),
        "destination": written.destination,
        "manifest_digest": written.manifest_digest,
        "image_id": written.image_id,
        "platforms": report,
        "dropped": dropped,
        "kept": match &hardened {
            Content::Index(x) => x.others.iter().map(|o| serde_json::json!({
                "digest": o.descriptor.get("digest"),
                "mediaType": o.media_type(),
                "artifactType": o.descriptor.get("artifactType"),
            })).collect(),
            Content::Image(_) => Vec::new(),
        },
        "blobs": written.blobs,
    });
    if let Content::Image(_) = hardened {
        out["added_layer"] = out["platforms"][0]["added_layer"].clone();
    }
    Ok(Some(out))
}

/// An image or index hardened, with what the report and a dry run show.
pub struct Hardened<'a> {
    /// Digest of the source manifest or index, when the source had one.
    pub source_digest: Option<digest::Digest>,
    pub content: Content,
    /// Per platform, what was done (the `platforms` of the `--json` report).
    pub report: Vec<Value>,
    /// Index entries left out, with the reason.
    pub dropped: Vec<image::Skipped>,
    /// (platform, before, after) of every image hardened.
    pub pairs: Vec<(String, &'a Image, Image)>,
}

/// Hardens each platform of `content` that `hardening` selects: a pure
/// step over the model (static mode reads the account files out of the layers).
pub fn harden_content<'a>(hardening: &Hardening, content: &'a Content) -> Result<Hardened<'a>> {
    let Hardening {
        settings,
        wanted,
        skip_unsupported,
    } = hardening;
    let ctx = |image: &Image| -> Result<rewrite::RunContext> {
        Ok(rewrite::RunContext {
            version: VERSION.into(),
            created: source_date_epoch()?,
            base_name: image.name.clone(),
        })
    };
    let mut report = Vec::new();
    let mut dropped = Vec::new();
    let mut pairs: Vec<(String, &Image, Image)> = Vec::new();
    let (source_digest, hardened) = match content {
        Content::Image(image) => {
            let p = image_platform(image)?;
            if !wanted.is_empty() && !wanted.iter().any(|w| p.matches(w)) {
                bail!("the image is {p}, not what --platform asks for");
            }
            let h = harden_image(image, &p, settings, &ctx(image)?, &mut report)?;
            pairs.push((p.to_string(), image, h.clone()));
            (image.manifest_digest.clone(), Content::Image(h))
        }
        Content::Index(index) => {
            let all: Vec<_> = index.entries.iter().map(|e| e.platform.clone()).collect();
            check_absent(index, &all, wanted)?;
            let choices = platform::choose(&all, wanted, *skip_unsupported)?;
            dropped = index.skipped.clone();
            dropped.extend(index.absent.iter().map(|a| image::Skipped {
                reason: format!("not selected by --platform, and {}", a.reason),
                ..a.clone()
            }));
            let mut entries = Vec::new();
            for (entry, choice) in index.entries.iter().zip(choices) {
                match choice {
                    platform::Choice::Harden => {
                        let image = harden_image(
                            &entry.image,
                            &entry.platform,
                            settings,
                            &ctx(&entry.image)?,
                            &mut report,
                        )?;
                        pairs.push((entry.platform.to_string(), &entry.image, image.clone()));
                        entries.push(IndexEntry {
                            image,
                            ..entry.clone()
                        });
                    }
                    platform::Choice::Drop(reason) => dropped.push(image::Skipped {
                        digest: entry
                            .image
                            .manifest_digest
                            .as_ref()
                            .map(|d| d.to_string())
                            .unwrap_or_default(),
                        platform: entry.platform.to_string(),
                        reason,
                    }),
                }
            }
            let digest = index.digest.clone();
            (
                digest,
                Content::Index(Index {
                    entries,
                    skipped: Vec::new(),
                    absent: Vec::new(),
                    ..index.clone()
                }),
            )
        }
    };
    Ok(Hardened {
        source_digest,
        content: hardened,
        report,
        dropped,
        pairs,
    })
}

/// `--dry-run`: per platform the config changes, then what the destination
/// would receive (for a registry, found with HEAD requests; nothing is written).
fn print_dry_run(
    pairs: &[(String, &Image, Image)],
    dst: &ImageRef,
    registries: &registry::Registries,
) -> Result<()> {
    for (platform, before, after) in pairs {
        println!("== {platform} ==");
        print!("{}", inspect::diff(before, after)?);
    }
    let images: Vec<&Image> = pairs.iter().map(|(_, _, after)| after).collect();
    println!("== would write {dst} ==");
    match transport::plan(&images, dst, registries)? {
        Some(mut plan) => {
            let tag = dst.to_string();
            let tag = tag.trim_start_matches("docker://");
            let plain = |d: &digest::Digest| {
                let layers = images.iter().flat_map(|i| &i.layers);
                layers
                    .filter(|l| !l.is_compressed())
                    .any(|l| &l.digest == d)
            };
            // The digest and size shown for these are the plain tar's.
            const GZIP_FIRST: &str = "gzip, then upload (as a new digest)";
            for (.., what) in plan.iter_mut().filter(|p| plain(&p.0)) {
                *what = GZIP_FIRST.to_string();
            }
            let bytes =
                |what: &str| -> u64 { plan.iter().filter(|p| p.3 == what).map(|p| p.2).sum() };
            let (upload, gzip) = (bytes("upload"), bytes(GZIP_FIRST));
            for (digest, kind, size, what) in &plan {
                println!("{kind} {digest} {size:>12} bytes: {what}");
            }
            let manifests = if images.len() > 1 {
                images.len() + 1
            } else {
                1
            };
            let gzip = match gzip {
                0 => String::new(),
                n => format!(" and {n} bytes of plain layers to gzip and upload"),
            };
            println!(
                "{upload} bytes to upload{gzip}, then {manifests} manifest(s); the tag {tag} last"
            );
        }
        None => {
            for image in &images {
                let new: Vec<_> = image
                    .layers
                    .iter()
                    .filter(|l| matches!(l.blob, image::Blob::Bytes(_)))
                    .collect();
                for l in new {
                    // A docker-archive stores layers uncompressed: the plain
                    // tar (named by its diff_id) is what it would get.
                    if dst.capabilities().layers == LayerForm::Plain && l.is_compressed() {
                        let mut gzip = l.blob.open()?;
                        let mut tar =
                            decompress::layer_tar(&mut gzip, l.blob.len(), "new layer".into())?;
                        let plain = std::io::copy(&mut tar, &mut std::io::sink())?;
                        println!("new layer {} {plain:>12} bytes (uncompressed)", l.diff_id);
                    } else {
                        println!("new layer {} {:>12} bytes", l.digest, l.blob.len());
                    }
                }
                println!(
                    "config {} and {} base layers from the source",
                    image.config_digest(),
                    image.layers.len() - 1
                );
            }
        }
    }
    Ok(())
}

/// Each image of `content` with the platform its index names (none for a
/// single image).
pub fn platform_images(content: &Content) -> Vec<(Option<platform::Platform>, &Image)> {
    match content {
        Content::Image(i) => vec![(None, i)],
        Content::Index(x) => x
            .entries
            .iter()
            .map(|e| (Some(e.platform.clone()), &e.image))
            .collect(),
    }
}

/// A partial source (an index whose blobs are there for some platforms
/// only) is hardened only for platforms it holds, chosen with --platform.
fn check_absent(
    index: &Index,
    present: &[platform::Platform],
    wanted: &[platform::Platform],
) -> Result<()> {
    if index.absent.is_empty() {
        return Ok(());
    }
    let missing: Vec<&str> = index.absent.iter().map(|a| a.platform.as_str()).collect();
    let held: Vec<String> = present.iter().map(|p| p.to_string()).collect();
    if wanted.is_empty() {
        bail!(
            "the source holds only some platforms of its index ({}), not {} ({}): choose what it holds with --platform",
            held.join(", "),
            missing.join(", "),
            index.absent[0].reason
        );
    }
    for w in wanted {
        if !present.iter().any(|p| p.matches(w)) {
            if let Some(a) = index
                .absent
                .iter()
                .find(|a| platform::Platform::parse(&a.platform).is_ok_and(|p| p.matches(w)))
            {
                bail!(
                    "--platform {w}: the index lists {}, but {} (the source holds {})",
                    a.platform,
                    a.reason,
                    held.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Says what the defaults took from the image (the `inferred` of each
/// platform's report), once: the platforms of an index mostly agree.
fn say_inferred(progress: &progress::Progress, report: &[Value], mode: rewrite::Mode) {
    let when = match mode {
        rewrite::Mode::Runtime => "at start",
        rewrite::Mode::Static => "in the image",
    };
    let mut said: Vec<String> = Vec::new();
    let mut say = |line: String| {
        if !said.contains(&line) {
            progress.say(&line);
            said.push(line);
        }
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    for inferred in report.iter().map(|p| &p["inferred"]) {
        let owners = strings(&inferred["match_owner"]);
        if !owners.is_empty() {
            say(format!(
                "inferred: runs as the owner of {} (the image's VOLUME/WorkingDir) when it is \
                 not root {when}, else as app (1000); --user, --uid or --match-owner choose, \
                 --no-infer turns this off",
                owners.join(", then "),
            ));
        }
        let writable = strings(&inferred["writable"]);
        if !writable.is_empty() {
            let how = match mode {
                rewrite::Mode::Runtime => "at start, gives the user whichever are there of",
                rewrite::Mode::Static => "made the user's in the image:",
            };
            say(format!(
                "inferred: {how} {} (the app's VOLUME, pid and data directories); \
                 --no-infer turns this off",
                writable.join(", ")
            ));
        }
        if let Some(home) = inferred["mounted_home"].as_str() {
            say(format!(
                "inferred: when something is mounted at or below {home} (the image's HOME) at \
                 start, it is the user's HOME and its non-root owner the user; --user, --uid, \
                 --home or --no-infer turn this off",
            ));
        }
        for left in strings(&inferred["writable_left"]) {
            say(format!("warning: {left}"));
        }
    }
    for ports in report.iter().map(|p| strings(&p["privileged_ports"])) {
        if !ports.is_empty() {
            say(format!(
                "note: the image exposes {}: as a user its app binds a port below 1024 only \
                 where net.ipv4.ip_unprivileged_port_start allows it (Docker sets 0; podman \
                 needs --sysctl net.ipv4.ip_unprivileged_port_start=0, Kubernetes the same in \
                 the pod's securityContext.sysctls)",
                ports.join(", ")
            ));
        }
    }
}

/// The platform an image's config names.
fn image_platform(image: &Image) -> Result<platform::Platform> {
    image
        .image_config()?
        .platform()
        .context("the image config names no os/architecture")
}

/// Hardens one platform's image with the step-down binary of its
/// architecture; adds what it did to `report` (for `--json`).
fn harden_image(
    image: &Image,
    platform: &platform::Platform,
    settings: &rewrite::Settings,
    ctx: &rewrite::RunContext,
    report: &mut Vec<Value>,
) -> Result<Image> {
    if !platform::supported(platform) {
        bail!(platform::no_stepdown_for(platform));
    }
    // The defaults come from the image as it was before any harden run.
    let base = rewrite::unharden(image)?;
    let config = base.image_config()?;
    let inferred = rewrite::infer(settings, config.run());
    let ports = rewrite::privileged_ports(config.run());
    let (account, extra, writable, left) = match settings.mode {
        rewrite::Mode::Runtime => (None, Vec::new(), inferred.writable.clone(), Vec::new()),
        rewrite::Mode::Static => {
            let user = config.run().user();
            let (account, extra, baked) = static_account(&base, user, settings, &inferred)?;
            (Some(account), extra, baked.given, baked.left)
        }
    };
    let layer = layer::stepdown_layer(stepdown_for(&platform.architecture)?, &extra)?;
    let hardened = rewrite::harden(image, settings, &inferred, &layer, account.as_ref(), ctx)
        .with_context(|| format!("hardening {platform}"))?;
    report.push(serde_json::json!({
        "platform": platform.to_string(),
        "source_manifest_digest": image.manifest_digest.as_ref().map(|d| d.as_str()),
        "manifest_digest": digest::Digest::of(&hardened.manifest()).as_str(),
        "image_id": hardened.config_digest().as_str(),
        "added_layer": {"digest": layer.digest.as_str(), "size": layer.gzip.len(), "diff_id": layer.diff_id.as_str()},
        "inferred": {
            "match_owner": inferred.match_owner,
            "writable": writable,
            "writable_left": left,
            "mounted_home": inferred.mounted_home,
        },
        "privileged_ports": ports,
    }));
    Ok(hardened)
}

/// The embedded step-down binary for an OCI architecture name.
pub fn stepdown_for(arch: &str) -> Result<&'static [u8]> {
    let Some((_, bytes)) = STEPDOWNS.iter().find(|(name, _)| *name == arch) else {
        bail!(
            "no step-down binary for architecture {arch:?} (available: {})",
            platform::ARCHITECTURES.join(", ")
        );
    };
    if bytes.is_empty() {
        bail!("this harden was built without the {arch} step-down: `make build` installs Debian's cross toolchains and builds it");
    }
    Ok(bytes)
}

/// Static mode: settles the user from the account files of `base` (the
/// image as it was before any harden run, whose User is `user`), and bakes
/// the inferred writable directories (the only step that reads layer
/// content).
fn static_account(
    base: &image::Image,
    user: User,
    settings: &rewrite::Settings,
    inferred: &rewrite::Inferred,
) -> Result<(rewrite::Account, Vec<layer::LayerEntry>, rewrite::Baked)> {
    // The account files, then the directories whose owner a root image
    // prepared for itself (read now: a static image has no run-time choice).
    let home = &inferred.mounted_home;
    let mut paths = vec!["etc/passwd", "etc/group"];
    paths.extend(home.iter().map(|h| h.trim_start_matches('/')));
    paths.extend(
        inferred
            .match_owner
            .iter()
            .map(|d| d.trim_start_matches('/')),
    );
    let writable = &inferred.writable;
    let roots: Vec<&str> = writable.iter().map(|w| w.trim_start_matches('/')).collect();
    let (found, trees) = rootfs::scan(base, &paths, &roots)?;
    let mut found = found.into_iter();
    let passwd = rootfs::file(paths[0], found.next().flatten())?;
    let group = rootfs::file(paths[1], found.next().flatten())?;
    let searchable = home
        .as_deref()
        .and_then(|home| rewrite::searchable_home(home, found.next()?));
    let id = |n: u64| u32::try_from(n).ok().filter(|n| *n <= accounts::MAX_ID);
    let owner = found.find_map(|f| match f {
        Some(rootfs::Found::Dir { uid, gid, .. }) if uid != 0 => Some((id(uid)?, id(gid)?)),
        _ => None,
    });
    let (account, mut entries) =
        rewrite::plan_static(settings, user, passwd.as_ref(), group.as_ref(), owner)?;
    // A HOME that is the account's own already has its entry.
    entries.extend(searchable.filter(|s| !entries.iter().any(|e| e.path == s.path)));
    let trees: Vec<_> = writable.iter().cloned().zip(trees).collect();
    let baked = rewrite::baked_writable(&account, &trees, &entries);
    entries.extend(baked.entries.iter().cloned());
    Ok((account, entries, baked))
}

/// SOURCE_DATE_EPOCH as an RFC 3339 time, for the history entry.
fn source_date_epoch() -> Result<Option<String>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(None),
        Ok(v) => {
            let secs: i64 = v
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH {v:?} is not a number of seconds"))?;
            Ok(Some(rfc3339(secs)))
        }
    }
}

fn rfc3339(secs: i64) -> String {
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_825_600), "2000-02-29T12:00:00Z");
    }

    #[test]
    fn a_step_down_for_every_architecture_platforms_carry() {
        let embedded: Vec<&str> = super::STEPDOWNS.iter().map(|(arch, _)| *arch).collect();
        assert_eq!(embedded, crate::platform::ARCHITECTURES);
    }
}
