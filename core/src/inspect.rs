//! `harden inspect`: what an image runs, as whom, and whether harden touched it.

use crate::config::{ImageConfig, User};
use crate::image::Image;
use crate::layer::STEPDOWN_PATH;
use crate::rewrite::{LABEL_MODE, LABEL_ORIGINAL, LABEL_VERSION};
use anyhow::Result;
use serde_json::{json, Value};

pub fn describe(image: &Image) -> Result<Value> {
    let config = image.image_config()?;
    let c = config.run();
    let field = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    let label = |k: &str| c.label(k).map(str::to_string);
    let user = c.user_str();
    let starts_as_root = c.user().is_root();
    let entrypoint = field("Entrypoint");
    let wrapped = entrypoint.get(0).and_then(Value::as_str) == Some(STEPDOWN_PATH);
    let hardened = match (label(LABEL_VERSION), wrapped) {
        (Some(version), true) => {
            let args: Vec<&str> = entrypoint
                .as_array()
                .map(|a| {
                    a.iter()
                        .skip(1)
                        .filter_map(Value::as_str)
                        .take_while(|s| *s != "--")
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "version": version,
                "mode": label(LABEL_MODE),
                "stepdown_options": args,
                "original": label(LABEL_ORIGINAL).and_then(|o| serde_json::from_str::<Value>(&o).ok()),
            })
        }
        _ => Value::Null,
    };
    // The command runs as root when the image starts as root and nothing steps down.
    let command_runs_as_root = starts_as_root && hardened.is_null();
    Ok(json!({
        "user": user,
        "entrypoint": entrypoint,
        "cmd": field("Cmd"),
        "env": field("Env"),
        "working_dir": field("WorkingDir"),
        "healthcheck": c.healthcheck().and_then(|h| h.get("Test")).cloned().unwrap_or(Value::Null),
        "image_id": image.config_digest().as_str(),
        "manifest_digest": image.manifest_digest.as_ref().map(|d| d.as_str()),
        "layers": image.layers.len(),
        "starts_as_root": starts_as_root,
        "command_runs_as_root": command_runs_as_root,
        "kubelet_run_as_non_root": c.user().kubelet_verifies_non_root(),
        "hardened": hardened,
    }))
}

pub fn human(d: &Value) -> String {
    let show = |v: &Value| match v {
        Value::Null => "(none)".to_string(),
        Value::String(s) if s.is_empty() => "(empty: root)".to_string(),
        other => other.to_string(),
    };
    let mut out = String::new();
    for (label, key) in [
        ("User", "user"),
        ("Entrypoint", "entrypoint"),
        ("Cmd", "cmd"),
        ("Env", "env"),
        ("WorkingDir", "working_dir"),
        ("Healthcheck", "healthcheck"),
        ("Image ID", "image_id"),
        ("Manifest", "manifest_digest"),
        ("Layers", "layers"),
    ] {
        out.push_str(&format!("{label:<12} {}\n", show(&d[key])));
    }
    let verdict = match (d["starts_as_root"].as_bool(), d["hardened"].is_null()) {
        (Some(true), true) => "starts as root and runs its command as root",
        (Some(true), false) => {
            "starts as root, then the step-down runs the command as a non-root user"
        }
        _ => "starts as a non-root user",
    };
    out.push_str(&format!("{:<12} {verdict}\n", "Runs as"));
    let kubelet = if d["kubelet_run_as_non_root"] == true {
        "yes (numeric non-root User)"
    } else {
        "no: kubelet needs a numeric non-root User (harden --mode static)"
    };
    out.push_str(&format!("{:<12} {kubelet}\n", "runAsNonRoot"));
    match &d["hardened"] {
        Value::Null => out.push_str(&format!("{:<12} no\n", "Hardened")),
        h => out.push_str(&format!(
            "{:<12} yes, by harden {} ({} mode), step-down options {}; original Entrypoint {} User {}\n",
            "Hardened",
            h["version"].as_str().unwrap_or("?"),
            h["mode"].as_str().unwrap_or("?"),
            h["stepdown_options"],
            show(&h["original"]["Entrypoint"]),
            show(&h["original"]["User"]),
        )),
    }
    out
}

/// Before → after, field by field, for `--dry-run` and `inspect A B`:
/// `=` unchanged, `-`/`+` the old and new value; Env and Labels per entry.
pub fn diff(before: &Image, after: &Image) -> Result<String> {
    let (a, b) = (before.image_config()?, after.image_config()?);
    let field = |c: &ImageConfig, k: &str| c.run().get(k).cloned().unwrap_or(Value::Null);
    let show = |v: &Value| match v {
        Value::Null => "(none)".to_string(),
        Value::String(s) if s.is_empty() => "\"\" (root)".to_string(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let mut line = |label: &str, mark: char, text: String| {
        out.push_str(&format!("{label:<11} {mark} {text}\n"));
    };
    for k in ["User", "Entrypoint", "Cmd", "WorkingDir", "Healthcheck"] {
        let (x, y) = (field(&a, k), field(&b, k));
        if k == "Healthcheck" && x.is_null() && y.is_null() {
            continue; // most images have none
        }
        if x == y {
            line(k, '=', show(&x));
        } else {
            line(k, '-', show(&x));
            line("", '+', show(&y));
        }
    }
    // Env as a list of entries, Labels as a map: report what was added or removed.
    let entries = |v: Value| -> Vec<String> {
        match v {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap_or_default().to_string())
                .collect(),
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect(),
            _ => Vec::new(),
        }
    };
    for k in ["Env", "Labels"] {
        let (x, y) = (entries(field(&a, k)), entries(field(&b, k)));
        let (gone, new): (Vec<_>, Vec<_>) = (
            x.iter().filter(|e| !y.contains(e)).collect(),
            y.iter().filter(|e| !x.contains(e)).collect(),
        );
        if gone.is_empty() && new.is_empty() {
            line(k, '=', format!("{} unchanged", x.len()));
        }
        for (i, e) in gone.iter().enumerate() {
            line(if i == 0 { k } else { "" }, '-', e.to_string());
        }
        for (i, e) in new.iter().enumerate() {
            line(
                if i == 0 && gone.is_empty() { k } else { "" },
                '+',
                e.to_string(),
            );
        }
    }
    let kept = before
        .layers
        .iter()
        .filter(|l| after.layers.iter().any(|m| m.digest == l.digest))
        .count();
    line(
        "Layers",
        '=',
        format!("{kept} of {} kept", before.layers.len()),
    );
    for l in before
        .layers
        .iter()
        .filter(|l| !after.layers.iter().any(|m| m.digest == l.digest))
    {
        line("", '-', format!("{} ({} bytes)", l.digest, l.blob.len()));
    }
    for l in after
        .layers
        .iter()
        .filter(|l| !before.layers.iter().any(|m| m.digest == l.digest))
    {
        line("", '+', format!("{} ({} bytes)", l.digest, l.blob.len()));
    }
    Ok(out)
}

/// What `harden check --require` demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Require {
    /// The command must not run as root: hardened by harden (either mode),
    /// or a non-root User (numeric, or a name that /etc/passwd maps to a non-zero UID).
    Any,
    /// kubelet's runAsNonRoot rule: the image's User is numeric and not 0.
    Static,
}

/// A gate verdict with its one-line reason.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub pass: bool,
    pub reason: String,
}

/// Judges a `describe` result. `uid_of_name` resolves a named User through
/// the image's /etc/passwd (read only when needed: it reads layers).
pub fn check(
    d: &Value,
    require: Require,
    uid_of_name: impl FnOnce(&str) -> Result<Option<u32>>,
) -> Result<Verdict> {
    let user = d["user"].as_str().unwrap_or("");
    let parsed = User::parse(user);
    let uid_part = parsed.user;
    let verdict = |pass: bool, reason: String| Ok(Verdict { pass, reason });
    // kubelet: "image has non-numeric user (x), cannot verify user is non-root".
    if d["kubelet_run_as_non_root"] == true {
        return verdict(
            true,
            format!("User {user:?} is numeric and not root (kubelet's runAsNonRoot accepts it)"),
        );
    }
    if require == Require::Static {
        let why = if !d["hardened"].is_null() {
            "hardened in runtime mode: the image starts as root for the step-down; harden --mode static makes a numeric non-root User".to_string()
        } else if parsed.uid().is_some() || parsed.is_root() {
            format!("User {user:?} is root: kubelet's runAsNonRoot refuses the image")
        } else {
            format!("User {user:?} is not numeric: kubelet's runAsNonRoot cannot verify it and refuses the image")
        };
        return verdict(false, why);
    }
    if !d["hardened"].is_null() {
        let h = &d["hardened"];
        return verdict(
            true,
            format!(
                "hardened by harden {} ({} mode): the step-down runs the command as a non-root user",
                h["version"].as_str().unwrap_or("?"),
                h["mode"].as_str().unwrap_or("?")
            ),
        );
    }
    if parsed.is_root() || parsed.uid().is_some() {
        return verdict(false, format!("User {user:?}: the command runs as root"));
    }
    match uid_of_name(uid_part)? {
        Some(0) => verdict(false, format!("User {uid_part:?} is UID 0 in the image's /etc/passwd: the command runs as root")),
        Some(uid) => verdict(true, format!("User {uid_part:?} is UID {uid} in the image's /etc/passwd")),
        None => verdict(false, format!("User {uid_part:?} is not in the image's /etc/passwd: the runtime refuses to start it")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(user: &str, hardened: Value, require: Require, passwd: Option<u32>) -> Verdict {
        let d = json!({
            "user": user,
            "hardened": hardened,
            "kubelet_run_as_non_root": User::parse(user).kubelet_verifies_non_root(),
        });
        check(&d, require, |_| Ok(passwd)).unwrap()
    }

    #[test]
    fn gate_follows_kubelet_for_static_and_the_step_down_for_any() {
        let runtime = json!({"version": "0.1.0", "mode": "runtime"});
        for (user, hardened, require, passwd, pass) in [
            ("1000:1000", Value::Null, Require::Static, None, true),
            ("1000", Value::Null, Require::Any, None, true),
            ("", Value::Null, Require::Any, None, false),
            ("0", Value::Null, Require::Any, None, false),
            ("root", Value::Null, Require::Static, None, false),
            ("0:0", runtime.clone(), Require::Any, None, true),
            ("0:0", runtime.clone(), Require::Static, None, false),
            ("app", Value::Null, Require::Static, Some(101), false),
            ("app", Value::Null, Require::Any, Some(101), true),
            ("app:app", Value::Null, Require::Any, Some(0), false),
            ("ghost", Value::Null, Require::Any, None, false),
        ] {
            let v = judge(user, hardened, require, passwd);
            assert_eq!(v.pass, pass, "{user:?} {require:?}: {}", v.reason);
            assert!(!v.reason.contains('\n'));
        }
    }
}
