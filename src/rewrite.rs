//! The rewrite itself: pure functions from the source image to the hardened
//! one. No I/O: blobs stay references, the new layer is bytes in memory.

use crate::digest::Digest;
use crate::image::{self, Image, Layer};
use crate::layer::{StepdownLayer, STEPDOWN_PATH};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub const LABEL_VERSION: &str = "dev.harden.version";
pub const LABEL_MODE: &str = "dev.harden.mode";
pub const LABEL_LAYER: &str = "dev.harden.layer";
pub const LABEL_ORIGINAL: &str = "dev.harden.original";

/// What the user asked for; every field is optional, defaults live in the step-down.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub user: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub home: Option<String>,
    pub uid_env: Option<String>,
    pub gid_env: Option<String>,
    pub match_owner: Option<String>,
    pub allow_new_privs: bool,
}

/// Things that are not options but must be the same on every run for the
/// output to be reproducible.
pub struct RunContext {
    pub version: String,
    /// `created` of the new history entry (SOURCE_DATE_EPOCH, else the image's own).
    pub created: Option<String>,
    /// Docker-style name of the source, for the base.name annotation.
    pub base_name: Option<String>,
}

/// Is a config `User` root (or empty, which means root)?
pub fn user_is_root(user: &str) -> bool {
    let uid = user.split(':').next().unwrap_or("");
    matches!(uid, "" | "0" | "root")
}

/// The entrypoint options that carry the settings into the image. An image
/// that already ran as a non-root user keeps that user as the default target.
pub fn stepdown_options(settings: &Settings, original_user: &str) -> Vec<String> {
    let mut s = settings.clone();
    if s.user.is_none() && s.uid.is_none() && s.gid.is_none() && !user_is_root(original_user) {
        let (u, g) = original_user.split_once(':').unwrap_or((original_user, ""));
        match u.parse::<u32>() {
            Ok(uid) => s.uid = Some(uid),
            Err(_) => s.user = Some(u.to_string()),
        }
        s.gid = g.parse().ok().filter(|g| *g != 0);
    }
    let mut args = Vec::new();
    let mut push = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            args.push(flag.to_string());
            args.push(v);
        }
    };
    push("--user", s.user);
    push("--uid", s.uid.map(|v| v.to_string()));
    push("--gid", s.gid.map(|v| v.to_string()));
    push("--home", s.home);
    push("--uid-env", s.uid_env);
    push("--gid-env", s.gid_env);
    push("--match-owner", s.match_owner);
    if s.allow_new_privs {
        args.push("--allow-new-privs".into());
    }
    args
}

/// The hardened image: the source with harden's layer appended (replacing the
/// layer of an earlier harden run) and the config rewritten.
pub fn harden(
    src: &Image,
    settings: &Settings,
    layer: &StepdownLayer,
    ctx: &RunContext,
) -> Result<Image> {
    let mut config = src.config_json()?;
    let mut layers = src.layers.clone();
    if image::diff_ids(&config)?.len() != layers.len() {
        bail!(
            "the image config lists {} diff_ids but the manifest has {} layers",
            image::diff_ids(&config)?.len(),
            layers.len()
        );
    }
    if undo_previous(&mut config)? {
        layers.pop();
    }
    rewrite_config(&mut config, settings, &layer.diff_id, ctx)?;

    let media_type = image::layer_media_type(src.family, true);
    let descriptor = match image::descriptor(media_type, &layer.digest, layer.gzip.len() as u64) {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    layers.push(Layer {
        descriptor,
        digest: layer.digest.clone(),
        diff_id: layer.diff_id.clone(),
        blob: image::Blob::Bytes(Arc::new(layer.gzip.clone())),
    });

    let mut annotations = src.manifest_annotations.clone();
    annotations.remove(image::ANNOTATION_BASE_DIGEST);
    annotations.remove(image::ANNOTATION_BASE_NAME);
    if let Some(d) = &src.manifest_digest {
        annotations.insert(image::ANNOTATION_BASE_DIGEST.into(), d.as_str().into());
    }
    if let Some(n) = &ctx.base_name {
        annotations.insert(image::ANNOTATION_BASE_NAME.into(), n.as_str().into());
    }
    Ok(Image {
        family: src.family,
        config: serde_json::to_vec(&config)?,
        layers,
        manifest_annotations: annotations,
        manifest_digest: None,
        name: src.name.clone(),
    })
}

fn labels(config: &Value) -> Option<&Map<String, Value>> {
    config.pointer("/config/Labels").and_then(Value::as_object)
}

/// If harden already hardened this image, puts back the original Entrypoint and
/// User and drops harden's layer and history entry. Returns whether the top
/// layer must be dropped.
fn undo_previous(config: &mut Value) -> Result<bool> {
    let Some(labels) = labels(config) else {
        return Ok(false);
    };
    let Some(original) = labels.get(LABEL_ORIGINAL).and_then(Value::as_str) else {
        return Ok(false);
    };
    let original: Value =
        serde_json::from_str(original).context("label dev.harden.original is not JSON")?;
    let layer = labels
        .get(LABEL_LAYER)
        .and_then(Value::as_str)
        .map(str::to_string);
    let c = config_section(config);
    for key in ["Entrypoint", "User"] {
        match original.get(key) {
            Some(v) if !v.is_null() => c.insert(key.into(), v.clone()),
            _ => c.remove(key),
        };
    }
    if let Some(l) = c.get_mut("Labels").and_then(Value::as_object_mut) {
        for k in [LABEL_VERSION, LABEL_MODE, LABEL_LAYER, LABEL_ORIGINAL] {
            l.remove(k);
        }
    }
    // Only the top layer can be taken off: anything built on top stays as it is.
    let ids = config
        .pointer_mut("/rootfs/diff_ids")
        .and_then(Value::as_array_mut);
    let top_is_ours = match (ids, layer) {
        (Some(ids), Some(layer)) if ids.last().and_then(Value::as_str) == Some(&layer) => {
            ids.pop();
            true
        }
        _ => false,
    };
    if top_is_ours {
        if let Some(history) = config.get_mut("history").and_then(Value::as_array_mut) {
            let ours = history
                .iter()
                .rposition(|h| h.get("empty_layer") != Some(&Value::Bool(true)));
            if let Some(i) = ours.filter(|i| {
                history[*i]
                    .get("created_by")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.starts_with("harden "))
            }) {
                history.remove(i);
            }
        }
    }
    Ok(top_is_ours)
}

fn config_section(config: &mut Value) -> &mut Map<String, Value> {
    let root = config.as_object_mut().expect("config is an object");
    let c = root.entry("config").or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    c.as_object_mut().unwrap()
}

fn rewrite_config(
    config: &mut Value,
    settings: &Settings,
    diff_id: &Digest,
    ctx: &RunContext,
) -> Result<()> {
    if !config.is_object() {
        bail!("the image config is not a JSON object");
    }
    let c = config_section(config);
    let entrypoint = c.get("Entrypoint").cloned().unwrap_or(Value::Null);
    let user = c
        .get("User")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let original = json!({"Entrypoint": entrypoint, "User": user});

    let options = stepdown_options(settings, &user);
    let mut new_entrypoint: Vec<Value> = vec![STEPDOWN_PATH.into()];
    new_entrypoint.extend(options.iter().map(|o| Value::from(o.as_str())));
    new_entrypoint.push("--".into());
    match &entrypoint {
        // [""] means "no entrypoint" to docker and podman.
        Value::Array(a) if a.len() == 1 && a[0] == "" => {}
        Value::Array(a) => new_entrypoint.extend(a.iter().cloned()),
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        // A string Entrypoint is not in the spec, but some tools write one: treat it as one argument.
        Value::String(s) => new_entrypoint.push(s.as_str().into()),
        other => bail!("the image config's Entrypoint is neither a list nor null: {other}"),
    }
    c.insert("Entrypoint".into(), Value::Array(new_entrypoint));
    // The step-down must start as root; it picks the user at run time.
    c.insert("User".into(), "0:0".into());

    let labels = c.entry("Labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    let labels = labels.as_object_mut().unwrap();
    labels.insert(LABEL_VERSION.into(), ctx.version.as_str().into());
    labels.insert(LABEL_MODE.into(), "runtime".into());
    labels.insert(LABEL_LAYER.into(), diff_id.as_str().into());
    labels.insert(
        LABEL_ORIGINAL.into(),
        serde_json::to_string(&original)?.into(),
    );

    let root = config.as_object_mut().unwrap();
    let rootfs = root
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    rootfs
        .get_mut("diff_ids")
        .and_then(Value::as_array_mut)
        .context("rootfs.diff_ids is not a list")?
        .push(diff_id.as_str().into());

    if let Some(history) = root.get_mut("history").and_then(Value::as_array_mut) {
        let mut entry = Map::new();
        let created = ctx
            .created
            .clone()
            .or_else(|| root_created(history).map(str::to_string));
        if let Some(created) = created {
            entry.insert("created".into(), created.into());
        }
        entry.insert(
            "created_by".into(),
            format!(
                "harden {}: step-down entrypoint {} {}",
                ctx.version,
                STEPDOWN_PATH,
                options.join(" ")
            )
            .trim_end()
            .into(),
        );
        entry.insert(
            "comment".into(),
            "added by harden: runs the command as a non-root user".into(),
        );
        history.push(Value::Object(entry));
    }
    Ok(())
}

/// The newest `created` among history entries: a stable stand-in for "now".
fn root_created(history: &[Value]) -> Option<&str> {
    history
        .iter()
        .rev()
        .find_map(|h| h.get("created").and_then(Value::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Blob, Family};

    fn ctx() -> RunContext {
        RunContext {
            version: "0.1.0".into(),
            created: None,
            base_name: Some("example/app:1".into()),
        }
    }

    fn image(config: Value, layers: usize) -> Image {
        let layers = (0..layers)
            .map(|i| {
                let d = Digest::of(&[i as u8]);
                Layer {
                    descriptor: image::descriptor(image::OCI_LAYER, &d, 1)
                        .as_object()
                        .unwrap()
                        .clone(),
                    digest: d.clone(),
                    diff_id: d,
                    blob: Blob::Bytes(Arc::new(vec![i as u8])),
                }
            })
            .collect();
        Image {
            family: Family::Oci,
            config: serde_json::to_vec(&config).unwrap(),
            layers,
            manifest_annotations: Map::new(),
            manifest_digest: Some(Digest::of(b"manifest")),
            name: None,
        }
    }

    fn source_config() -> Value {
        json!({
            "architecture": "amd64", "os": "linux",
            "config": {
                "Entrypoint": ["/bin/echo", "entry"], "Cmd": ["default"],
                "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv",
                "Labels": {"keep": "me"}, "ExposedPorts": {"80/tcp": {}},
                "StopSignal": "SIGINT", "Volumes": {"/data": {}}
            },
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&[0]).as_str()]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "base"}]
        })
    }

    fn layer() -> StepdownLayer {
        crate::layer::stepdown_layer(b"stepdown").unwrap()
    }

    fn cfg(img: &Image) -> Value {
        img.config_json().unwrap()
    }

    #[test]
    fn wraps_entrypoint_and_keeps_cmd_and_the_rest() {
        let src = image(source_config(), 1);
        let settings = Settings {
            user: Some("aws".into()),
            uid_env: Some("AWS_UID".into()),
            match_owner: Some("/home/aws/.aws".into()),
            ..Settings::default()
        };
        let out = harden(&src, &settings, &layer(), &ctx()).unwrap();
        let c = cfg(&out);
        assert_eq!(
            c["config"]["Entrypoint"],
            json!([
                STEPDOWN_PATH,
                "--user",
                "aws",
                "--uid-env",
                "AWS_UID",
                "--match-owner",
                "/home/aws/.aws",
                "--",
                "/bin/echo",
                "entry"
            ])
        );
        assert_eq!(c["config"]["Cmd"], json!(["default"]));
        assert_eq!(c["config"]["User"], "0:0");
        assert_eq!(
            c["config"]["Env"],
            json!(["PATH=/bin", "A=1"]),
            "no UID default baked into Env"
        );
        for key in ["WorkingDir", "ExposedPorts", "StopSignal", "Volumes"] {
            assert_eq!(c["config"][key], source_config()["config"][key], "{key}");
        }
        assert_eq!(c["config"]["Labels"]["keep"], "me");
        assert_eq!(c["config"]["Labels"][LABEL_LAYER], layer().diff_id.as_str());
        let ids = c["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1], layer().diff_id.as_str());
        let history = c["history"].as_array().unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1]["created"], "2024-01-01T00:00:00Z");
        assert!(history[1]["created_by"]
            .as_str()
            .unwrap()
            .starts_with("harden 0.1.0"));
        assert_eq!(out.layers.len(), 2);
        assert_eq!(out.layers[1].digest, layer().digest);
        assert_eq!(out.layers[1].media_type(), image::OCI_LAYER_GZIP);
        assert_eq!(
            out.manifest_annotations[image::ANNOTATION_BASE_DIGEST],
            Digest::of(b"manifest").as_str()
        );
        assert_eq!(
            out.manifest_annotations[image::ANNOTATION_BASE_NAME],
            "example/app:1"
        );
    }

    #[test]
    fn null_entrypoint_lets_cmd_follow_the_separator() {
        let mut config = source_config();
        config["config"]["Entrypoint"] = Value::Null;
        let out = harden(&image(config, 1), &Settings::default(), &layer(), &ctx()).unwrap();
        assert_eq!(
            cfg(&out)["config"]["Entrypoint"],
            json!([STEPDOWN_PATH, "--"])
        );
        assert_eq!(cfg(&out)["config"]["Cmd"], json!(["default"]));
    }

    #[test]
    fn empty_string_entrypoint_means_none() {
        let mut config = source_config();
        config["config"]["Entrypoint"] = json!([""]);
        let out = harden(&image(config, 1), &Settings::default(), &layer(), &ctx()).unwrap();
        assert_eq!(
            cfg(&out)["config"]["Entrypoint"],
            json!([STEPDOWN_PATH, "--"])
        );
    }

    #[test]
    fn non_root_image_user_becomes_the_default_target() {
        assert_eq!(
            stepdown_options(&Settings::default(), "1001:1002"),
            ["--uid", "1001", "--gid", "1002"]
        );
        assert_eq!(
            stepdown_options(&Settings::default(), "node"),
            ["--user", "node"]
        );
        assert!(stepdown_options(&Settings::default(), "root").is_empty());
        assert!(stepdown_options(&Settings::default(), "0:0").is_empty());
        let explicit = Settings {
            uid: Some(5),
            ..Settings::default()
        };
        assert_eq!(stepdown_options(&explicit, "node"), ["--uid", "5"]);
        let mut config = source_config();
        config["config"]["User"] = "1001".into();
        let out = harden(&image(config, 1), &Settings::default(), &layer(), &ctx()).unwrap();
        assert_eq!(
            cfg(&out)["config"]["Entrypoint"].as_array().unwrap()[1..4],
            json!(["--uid", "1001", "--"]).as_array().unwrap()[..]
        );
        assert_eq!(cfg(&out)["config"]["User"], "0:0");
    }

    #[test]
    fn hardening_twice_replaces_instead_of_stacking() {
        let src = image(source_config(), 1);
        let once = harden(&src, &Settings::default(), &layer(), &ctx()).unwrap();
        let settings = Settings {
            uid: Some(42),
            ..Settings::default()
        };
        let twice = harden(&once, &settings, &layer(), &ctx()).unwrap();
        let direct = harden(&src, &settings, &layer(), &ctx()).unwrap();
        assert_eq!(twice.layers.len(), 2);
        assert_eq!(cfg(&twice), cfg(&direct));
        assert_eq!(twice.config, direct.config, "byte-identical config");
    }

    #[test]
    fn rejects_inconsistent_configs() {
        assert!(harden(
            &image(source_config(), 2),
            &Settings::default(),
            &layer(),
            &ctx()
        )
        .is_err());
        let mut bad = source_config();
        bad["config"]["Entrypoint"] = json!(5);
        assert!(harden(&image(bad, 1), &Settings::default(), &layer(), &ctx()).is_err());
    }

    #[test]
    fn root_detection() {
        for root in ["", "0", "root", "0:0", "root:wheel"] {
            assert!(user_is_root(root), "{root}");
        }
        for user in ["1000", "node", "1000:0"] {
            assert!(!user_is_root(user), "{user}");
        }
    }
}
