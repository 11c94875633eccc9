//! The image config, typed where harden reads or writes it.
//!
//! `ImageConfig` holds the document as one JSON object and gives typed
//! access to the fields harden uses (`User`, `Entrypoint`, `Cmd`, `Env`,
//! `Volumes`, `WorkingDir`, `ExposedPorts`, `Labels`, `Healthcheck`,
//! `Shell`, `rootfs.diff_ids`, `history`); every other field stays as it was
//! read. A struct with serde's `flatten` would write its own fields first and
//! the rest after them, which changes the bytes (and so the image ID) of every
//! config harden writes; over the map, a config comes out as it always has.
//! Values harden only passes on (the original command's arguments, a health
//! check's other fields) stay JSON values: harden does not reinterpret them.

use crate::digest::Digest;
use crate::platform::Platform;
use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A config `User`: `user[:group]`, each a name or a number; empty is root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User<'a> {
    /// The user part: a name or a UID.
    pub user: &'a str,
    /// The group part, empty when there is none.
    pub group: &'a str,
}

impl<'a> User<'a> {
    pub fn parse(s: &'a str) -> Self {
        let (user, group) = s.split_once(':').unwrap_or((s, ""));
        User { user, group }
    }

    /// Root, or empty (which means root).
    pub fn is_root(&self) -> bool {
        matches!(self.user, "" | "0" | "root")
    }

    /// The UID when the user part is numeric.
    pub fn uid(&self) -> Option<u32> {
        self.user.parse().ok()
    }

    /// The GID when the group part is numeric and not root's.
    pub fn non_root_gid(&self) -> Option<u32> {
        self.group.parse().ok().filter(|g| *g != 0)
    }

    /// kubelet's runAsNonRoot accepts only a numeric, non-zero User.
    pub fn kubelet_verifies_non_root(&self) -> bool {
        self.uid().is_some_and(|u| u != 0)
    }
}

/// What a config's `Entrypoint` asks for.
#[derive(Debug, PartialEq)]
pub enum Entrypoint<'a> {
    /// Absent, null, `""` or `[""]` (which docker and podman read as none).
    None,
    /// The program and its arguments, as written.
    Args(&'a [Value]),
    /// A string: not in the spec, but some tools write one; one argument.
    One(&'a str),
}

/// A whole image config.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct ImageConfig {
    doc: Map<String, Value>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let doc: Value =
            serde_json::from_slice(bytes).context("the image config is not valid JSON")?;
        match doc {
            Value::Object(doc) => Ok(ImageConfig { doc }),
            _ => anyhow::bail!("the image config is not a JSON object"),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(&self.doc).expect("a JSON object serializes")
    }

    /// The `config` section: what the container runs, as whom, with what.
    pub fn run(&self) -> RunConfig<'_> {
        RunConfig(self.doc.get("config").and_then(Value::as_object))
    }

    /// The `config` section for writing, made an object when it is not one.
    pub fn run_mut(&mut self) -> RunConfigMut<'_> {
        RunConfigMut(object_entry(&mut self.doc, "config"))
    }

    /// The platform the config names (`os`, `architecture`, `variant`).
    pub fn platform(&self) -> Option<Platform> {
        Platform::of_map(&self.doc)
    }

    /// `rootfs.diff_ids`, checked.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        let ids = self
            .diff_id_list()
            .context("the image config has no rootfs.diff_ids")?;
        ids.iter()
            .map(|v| Digest::parse(v.as_str().unwrap_or_default()).context("in rootfs.diff_ids"))
            .collect()
    }

    fn diff_id_list(&self) -> Option<&Vec<Value>> {
        self.doc.get("rootfs")?.get("diff_ids")?.as_array()
    }

    /// Appends a layer's diff ID, making `rootfs` when there is none.
    pub fn push_diff_id(&mut self, id: &Digest) -> Result<()> {
        let rootfs = self
            .doc
            .entry("rootfs")
            .or_insert_with(|| serde_json::json!({"type": "layers", "diff_ids": []}));
        rootfs
            .get_mut("diff_ids")
            .and_then(Value::as_array_mut)
            .context("rootfs.diff_ids is not a list")?
            .push(id.as_str().into());
        Ok(())
    }

    /// Takes the top diff ID off when it is `id`; says whether it was.
    pub fn pop_diff_id(&mut self, id: &str) -> bool {
        let ids = self
            .doc
            .get_mut("rootfs")
            .and_then(|r| r.get_mut("diff_ids"))
            .and_then(Value::as_array_mut);
        match ids {
            Some(ids) if ids.last().and_then(Value::as_str) == Some(id) => {
                ids.pop();
                true
            }
            _ => false,
        }
    }

    /// The `history` entries, when the config keeps a history.
    pub fn history(&self) -> Option<&Vec<Value>> {
        self.doc.get("history")?.as_array()
    }

    pub fn history_mut(&mut self) -> Option<&mut Vec<Value>> {
        self.doc.get_mut("history")?.as_array_mut()
    }

    /// The health check of the legacy `container_config` Docker's classic
    /// builder writes (podman reads it before config's).
    pub fn legacy_healthcheck_mut(&mut self) -> Option<&mut Value> {
        self.doc.get_mut("container_config")?.get_mut("Healthcheck")
    }
}

/// An object member of `map`, made an (empty) object when absent or not one.
fn object_entry<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let v = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("made an object")
}

/// The `config` section of an image config, read (absent: empty).
#[derive(Debug, Clone, Copy)]
pub struct RunConfig<'a>(Option<&'a Map<String, Value>>);

impl<'a> RunConfig<'a> {
    /// The view of a `config` section.
    pub fn of(section: &'a Map<String, Value>) -> Self {
        RunConfig(Some(section))
    }

    /// A field as written, for what harden shows or keeps whole.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0?.get(key)
    }

    /// `User` (absent or not a string: empty, which is root).
    pub fn user_str(&self) -> &'a str {
        self.get("User").and_then(Value::as_str).unwrap_or("")
    }

    pub fn user(&self) -> User<'a> {
        User::parse(self.user_str())
    }

    /// Does the command run as root (`User` root, empty or absent)?
    pub fn runs_as_root(&self) -> bool {
        self.user().is_root()
    }

    pub fn entrypoint(&self) -> Result<Entrypoint<'a>> {
        Ok(match self.get("Entrypoint") {
            None | Some(Value::Null) => Entrypoint::None,
            Some(Value::Array(a)) if a.len() == 1 && a[0] == "" => Entrypoint::None,
            Some(Value::Array(a)) => Entrypoint::Args(a),
            Some(Value::String(s)) if s.is_empty() => Entrypoint::None,
            Some(Value::String(s)) => Entrypoint::One(s),
            Some(other) => {
                anyhow::bail!("the image config's Entrypoint is neither a list nor null: {other}")
            }
        })
    }

    /// The first word of `Entrypoint` (`key` "Entrypoint") or `Cmd`, when a string.
    pub fn program(&self, key: &str) -> Option<&'a str> {
        self.get(key)?.as_array()?.first()?.as_str()
    }

    /// `Env`'s entries that are strings (`NAME=value`).
    pub fn env(&self) -> impl Iterator<Item = &'a str> {
        let env = self.get("Env").and_then(Value::as_array);
        env.into_iter().flatten().filter_map(Value::as_str)
    }

    /// The value of an `Env` variable (the last one set, as a runtime reads it).
    pub fn env_var(&self, name: &str) -> Option<&'a str> {
        let prefix = format!("{name}=");
        self.env().filter_map(|e| e.strip_prefix(&prefix)).last()
    }

    /// The paths of `Volumes`.
    pub fn volumes(&self) -> impl Iterator<Item = &'a str> {
        self.keys("Volumes")
    }

    /// The ports of `ExposedPorts` (`80/tcp`).
    pub fn exposed_ports(&self) -> impl Iterator<Item = &'a str> {
        self.keys("ExposedPorts")
    }

    fn keys(&self, key: &str) -> impl Iterator<Item = &'a str> {
        let map = self.get(key).and_then(Value::as_object);
        map.into_iter().flat_map(|m| m.keys()).map(String::as_str)
    }

    pub fn working_dir(&self) -> Option<&'a str> {
        self.get("WorkingDir").and_then(Value::as_str)
    }

    pub fn labels(&self) -> Option<&'a Map<String, Value>> {
        self.get("Labels").and_then(Value::as_object)
    }

    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.labels()?.get(key)?.as_str()
    }

    pub fn healthcheck(&self) -> Option<&'a Value> {
        self.get("Healthcheck")
    }

    /// `Shell` (what `CMD-SHELL` runs) when it is a list that is not empty.
    pub fn shell(&self) -> Option<&'a [Value]> {
        let shell = self.get("Shell")?.as_array()?;
        (!shell.is_empty()).then_some(shell.as_slice())
    }
}

/// The `config` section of an image config, for writing.
pub struct RunConfigMut<'a>(&'a mut Map<String, Value>);

impl RunConfigMut<'_> {
    pub fn read(&self) -> RunConfig<'_> {
        RunConfig(Some(self.0))
    }

    pub fn set_user(&mut self, user: &str) {
        self.0.insert("User".into(), user.into());
    }

    pub fn set_entrypoint(&mut self, args: Vec<Value>) {
        self.0.insert("Entrypoint".into(), Value::Array(args));
    }

    pub fn set_env(&mut self, env: Vec<Value>) {
        self.0.insert("Env".into(), Value::Array(env));
    }

    /// Sets a field to a value as written (`None`: removes it), for putting
    /// back what harden kept whole.
    pub fn restore(&mut self, key: &str, value: Option<Value>) {
        match value {
            Some(v) => self.0.insert(key.into(), v),
            None => self.0.remove(key),
        };
    }

    pub fn healthcheck_mut(&mut self) -> Option<&mut Value> {
        self.0.get_mut("Healthcheck")
    }

    /// `Labels`, made an object when absent or not one.
    pub fn labels_mut(&mut self) -> &mut Map<String, Value> {
        object_entry(self.0, "Labels")
    }

    /// `Labels` when it is an object (nothing made).
    pub fn existing_labels_mut(&mut self) -> Option<&mut Map<String, Value>> {
        self.0.get_mut("Labels")?.as_object_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> ImageConfig {
        ImageConfig::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn users_parse_as_the_runtimes_read_them() {
        for (s, root, uid, gid, kubelet) in [
            ("", true, None, None, false),
            ("0", true, Some(0), None, false),
            ("root:staff", true, None, None, false),
            ("0:0", true, Some(0), None, false),
            ("1000:1000", false, Some(1000), Some(1000), true),
            ("1000:0", false, Some(1000), None, true),
            ("app", false, None, None, false),
            ("app:42", false, None, Some(42), false),
        ] {
            let u = User::parse(s);
            assert_eq!(u.is_root(), root, "{s:?}");
            assert_eq!(u.uid(), uid, "{s:?}");
            assert_eq!(u.non_root_gid(), gid, "{s:?}");
            assert_eq!(u.kubelet_verifies_non_root(), kubelet, "{s:?}");
        }
    }

    #[test]
    fn entrypoints_as_docker_reads_them() {
        for (v, want) in [
            (json!(null), Some(0)),
            (json!([""]), Some(0)),
            (json!(""), Some(0)),
            (json!(["/bin/app", "-x"]), Some(2)),
            (json!("/bin/app -x"), Some(1)),
            (json!(7), None),
        ] {
            let c = config(json!({"config": {"Entrypoint": v}}));
            let got = c.run().entrypoint().ok().map(|e| match e {
                Entrypoint::None => 0,
                Entrypoint::Args(a) => a.len(),
                Entrypoint::One(_) => 1,
            });
            assert_eq!(got, want, "{v}");
        }
        assert_eq!(
            config(json!({})).run().entrypoint().unwrap(),
            Entrypoint::None
        );
    }

    #[test]
    fn odd_types_read_as_absent_and_non_strings_are_skipped() {
        let c = config(json!({"config": {
            "User": 0, "Env": ["HOME=/a", 1, "HOME=/b", "X"], "Volumes": [], "WorkingDir": {},
            "Labels": "x", "Shell": [],
        }}));
        let r = c.run();
        assert_eq!(r.user_str(), "");
        assert!(r.runs_as_root());
        assert_eq!(r.env().collect::<Vec<_>>(), ["HOME=/a", "HOME=/b", "X"]);
        assert_eq!(r.env_var("HOME"), Some("/b"));
        assert_eq!(r.volumes().count(), 0);
        assert_eq!(r.working_dir(), None);
        assert_eq!(r.labels(), None);
        assert_eq!(r.shell(), None);
        let mut c = config(json!({"config": "no"}));
        assert!(c.run().get("User").is_none());
        c.run_mut().labels_mut().insert("a".into(), "b".into());
        assert_eq!(c.run().label("a"), Some("b"));
        assert!(ImageConfig::parse(b"[]").is_err());
        assert!(ImageConfig::parse(b"{").is_err());
    }

    #[test]
    fn a_config_comes_out_with_its_keys_in_serde_json_order() {
        // The bytes harden has always written: what keeps image IDs stable.
        let bytes = br#"{"z":1,"config":{"User":"a","Cmd":["x"]},"architecture":"amd64"}"#;
        let c = ImageConfig::parse(bytes).unwrap();
        assert_eq!(
            c.to_vec(),
            serde_json::to_vec(&serde_json::from_slice::<Value>(bytes).unwrap()).unwrap()
        );
    }

    #[test]
    fn diff_ids_are_checked_and_popped_only_when_on_top() {
        let a = Digest::of(b"a");
        let mut c = config(json!({"rootfs": {"type": "layers", "diff_ids": [a.as_str()]}}));
        assert_eq!(c.diff_ids().unwrap(), std::slice::from_ref(&a));
        assert!(!c.pop_diff_id("sha256:other"));
        assert!(c.pop_diff_id(a.as_str()));
        assert!(c.diff_ids().unwrap().is_empty());
        assert!(config(json!({})).diff_ids().is_err());
        assert!(config(json!({"rootfs": {"diff_ids": ["nope"]}}))
            .diff_ids()
            .is_err());
        let mut empty = config(json!({}));
        empty.push_diff_id(&a).unwrap();
        assert_eq!(empty.diff_ids().unwrap(), [a]);
    }
}
