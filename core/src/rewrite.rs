//! The rewrite itself: pure functions from the source image to the hardened
//! one. No I/O: blobs stay references, the new layer is bytes in memory.

use crate::accounts;
use crate::config::{Entrypoint, ImageConfig, RunConfig, User};
use crate::digest::Digest;
use crate::image::{self, Image, Layer};
use crate::layer::{LayerEntry, StepdownLayer, STEPDOWN_PATH};
use crate::rootfs::{self, FileEntry};
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
    /// Run as the non-root owner of the first of these that has one.
    pub match_owner: Vec<String>,
    /// Take no default from the image itself (see `infer`).
    pub no_infer: bool,
    /// Paths the step-down gives to the user at start.
    pub chown: Vec<String>,
    /// Paths the step-down gives to the user at start when they are there
    /// (`inferred_writable`; not an option).
    pub writable: Vec<String>,
    /// The HOME a root image ran with: when something is mounted at or below
    /// it at start, it is the user's HOME and the mount's owner the user
    /// (`inferred_mounted_home`; not an option).
    pub mounted_home: Option<String>,
    /// Whether the step-down stays as PID 1 (signals, zombies).
    pub init: bool,
    pub allow_new_privs: bool,
    pub mode: Mode,
}

/// `runtime`: start as root, step down at run time (bind-mount UID matching).
/// `static`: the image's User is the numeric non-root user (Kubernetes runAsNonRoot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Runtime,
    Static,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Runtime => "runtime",
            Mode::Static => "static",
        }
    }
}

/// The user a static-mode image runs as, settled at rewrite time.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub home: String,
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

/// What harden reads out of a root image for the step-down's defaults
/// (`infer`): computed once per image, for the rewrite and the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inferred {
    /// `--match-owner` paths: see `inferred_owners`.
    pub match_owner: Vec<String>,
    /// `--writable` paths: see `inferred_writable`.
    pub writable: Vec<String>,
    /// `--mounted-home`: see `inferred_mounted_home`.
    pub mounted_home: Option<String>,
}

/// The defaults harden takes from the image itself (its config as it was
/// before any harden run), under the user's settings.
pub fn infer(settings: &Settings, run: RunConfig) -> Inferred {
    Inferred {
        match_owner: inferred_owners(settings, run),
        writable: inferred_writable(settings, run),
        mounted_home: inferred_mounted_home(settings, run),
    }
}

/// Where the hardened image looks for the account to run as when nothing
/// else says whom: the image's VOLUMEs, then its WorkingDir. An image that
/// runs as root but prepared a service account gives it these (redis's
/// `/data`, PostgreSQL's data directory); the step-down runs as the first
/// non-root owner it finds at start, so a bind mount over one of them is
/// matched as well. Empty when the user chose (`--user`, `--uid`,
/// `--match-owner`), when the image already runs as a non-root User, and
/// with `--no-infer`.
fn inferred_owners(settings: &Settings, run: RunConfig) -> Vec<String> {
    let chosen =
        settings.user.is_some() || settings.uid.is_some() || !settings.match_owner.is_empty();
    if settings.no_infer || chosen || !run.runs_as_root() {
        return Vec::new();
    }
    let mut paths: Vec<String> = Vec::new();
    for path in run.volumes().chain(run.working_dir()) {
        let path = path.trim_end_matches('/');
        // The step-down's own rules for a --match-owner path; `/` is root's.
        let usable = accounts::valid_home(path.as_bytes()) && accounts::normalised(path.as_bytes());
        if usable && !paths.iter().any(|p| p == path) && paths.len() < 8 {
            paths.push(path.to_string());
        }
    }
    paths
}

/// Directories a root image's app writes, where it may find them owned by
/// root once it runs as a user: the image's VOLUMEs (not system
/// directories), `/run` (pid files: nginx's /run/nginx.pid), and the app's
/// own directories under /run, /var/lib, /var/log and /var/cache, named for
/// its program (`app_names`). In runtime mode the step-down gives those that
/// are there to the user at start (`--writable`); static mode bakes their
/// owner into harden's layer. Empty with `--no-infer` and for an image that
/// already runs as a non-root User (it works as it is).
fn inferred_writable(settings: &Settings, run: RunConfig) -> Vec<String> {
    if settings.no_infer || !run.runs_as_root() {
        return Vec::new();
    }
    let volumes = run
        .volumes()
        .map(|v| v.trim_end_matches('/').to_string())
        .filter(|v| accounts::valid_home(v.as_bytes()) && !accounts::home_refused(v.as_bytes()));
    let names = app_names(run);
    let own = names.iter().flat_map(|n| {
        ["/run", "/var/lib", "/var/log", "/var/cache"].map(|root| format!("{root}/{n}"))
    });
    let mut paths: Vec<String> = Vec::new();
    let run = (!names.is_empty()).then(|| "/run".to_string());
    for path in volumes.chain(run).chain(own) {
        let asked = settings.chown.contains(&path);
        if !asked && !paths.contains(&path) && paths.len() < MAX_WRITABLE {
            paths.push(path);
        }
    }
    paths
}

/// The HOME a root image ran with (its Env's HOME, else `/root`), where its
/// users mount their files (`-v ~/.aws:/root/.aws`): in runtime mode, when
/// something is mounted at or below it at start, the step-down makes it the
/// user's HOME, runs as the mount's non-root owner (after --match-owner's
/// paths) and lets the user search it. None when the user chose the account
/// or HOME (`--user`, `--uid`, `--home`), for an image that already runs as
/// a non-root User, and with `--no-infer`.
fn inferred_mounted_home(settings: &Settings, run: RunConfig) -> Option<String> {
    let chosen = settings.user.is_some() || settings.uid.is_some() || settings.home.is_some();
    if settings.no_infer || chosen || !run.runs_as_root() {
        return None;
    }
    let home = run.env_var("HOME").unwrap_or("/root");
    // The step-down's rules for a HOME: `/` and system directories are not one.
    let usable = accounts::valid_home(home.as_bytes()) && !accounts::home_refused(home.as_bytes());
    usable.then(|| home.to_string())
}

/// Static mode's part of `inferred_mounted_home`: the user cannot make the
/// HOME searchable at start, so harden's layer holds the directory (as the
/// image has it: `found`) with the x bits for group and others added; never
/// r or w. None when it is searchable already, not a directory or not
/// root's.
pub fn searchable_home(home: &str, found: Option<rootfs::Found>) -> Option<LayerEntry> {
    match found? {
        rootfs::Found::Dir { uid: 0, gid, mode } if mode & 0o011 != 0o011 => Some(LayerEntry {
            path: home.trim_start_matches('/').to_string(),
            content: None,
            mode: (mode & 0o7777) | 0o011,
            uid: 0,
            gid,
        }),
        _ => None,
    }
}

/// The ExposedPorts below 1024 of a root image ("80/tcp"): as a user, its
/// app binds them only where net.ipv4.ip_unprivileged_port_start allows it
/// (Docker sets 0 for every container; podman and Kubernetes leave 1024).
pub fn privileged_ports(run: RunConfig) -> Vec<String> {
    if !run.runs_as_root() {
        return Vec::new();
    }
    run.exposed_ports()
        .filter(|p| {
            let number = p.split('/').next().unwrap_or("");
            number.parse::<u16>().is_ok_and(|n| n < 1024)
        })
        .map(str::to_string)
        .collect()
}

/// Most `--writable` paths one entrypoint takes (the step-down's bound).
pub const MAX_WRITABLE: usize = 16;

/// The names an app's own directories go by, from the program the image
/// runs: the first word of Entrypoint, else of Cmd, without its directory
/// and a script's extension; a wrapper (a shell, an init, an
/// `*entrypoint*` script) passes to Cmd. `redis-server` also gives `redis`,
/// `mysqld` `mysql` (daemons' directories drop the suffix).
fn app_names(run: RunConfig) -> Vec<String> {
    const WRAPPERS: [&str; 10] = [
        "sh",
        "bash",
        "dash",
        "ash",
        "busybox",
        "env",
        "tini",
        "dumb-init",
        "gosu",
        "su-exec",
    ];
    let first = |key: &str| {
        let base = run.program(key)?.rsplit('/').next()?;
        let base = [".sh", ".py", ".pl", ".rb", ".js"]
            .iter()
            .find_map(|ext| base.strip_suffix(ext))
            .unwrap_or(base);
        let usable = !base.is_empty()
            && base.len() <= 64
            && base
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !base.starts_with('.')
            && !base.contains("entrypoint")
            && !WRAPPERS.contains(&base);
        usable.then(|| base.to_string())
    };
    let Some(name) = first("Entrypoint").or_else(|| first("Cmd")) else {
        return Vec::new();
    };
    let short = name
        .strip_suffix("-server")
        .or_else(|| name.strip_suffix('d').filter(|s| s.len() >= 3));
    let mut names = vec![name.clone()];
    names.extend(short.map(str::to_string));
    names
}

/// The entrypoint options that carry the settings into the image. An image
/// that already ran as a non-root user keeps that user as the default target.
pub fn stepdown_options(settings: &Settings, original_user: User) -> Vec<String> {
    let mut s = settings.clone();
    if s.user.is_none() && s.uid.is_none() && s.gid.is_none() && !original_user.is_root() {
        match original_user.uid() {
            Some(uid) => s.uid = Some(uid),
            None => s.user = Some(original_user.user.to_string()),
        }
        s.gid = original_user.non_root_gid();
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
    push("--mounted-home", s.mounted_home);
    for path in s.match_owner {
        push("--match-owner", Some(path));
    }
    for path in s.chown {
        push("--chown", Some(path));
    }
    for path in s.writable {
        push("--writable", Some(path));
    }
    if s.init {
        args.push("--init".into());
    }
    if s.allow_new_privs {
        args.push("--allow-new-privs".into());
    }
    args
}

/// The hardened image: the source with harden's layer appended (replacing the
/// layer of an earlier harden run) and the config rewritten.
///
/// `inferred` is `infer` of the image as it was before any harden run;
/// `account` the static-mode user (see `plan_static`), None in runtime mode.
pub fn harden(
    src: &Image,
    settings: &Settings,
    inferred: &Inferred,
    layer: &StepdownLayer,
    account: Option<&Account>,
    ctx: &RunContext,
) -> Result<Image> {
    let base = unharden(src)?;
    let mut config = base.image_config()?;
    let mut layers = base.layers;
    rewrite_config(
        &mut config,
        settings,
        inferred,
        account,
        &layer.diff_id,
        ctx,
    )?;

    let media_type = image::gzip_layer_media_type(src.family);
    layers.push(Layer::new(
        media_type,
        layer.digest.clone(),
        layer.diff_id.clone(),
        image::Blob::Bytes(Arc::new(layer.gzip.clone())),
    ));

    let mut annotations = base.manifest_annotations;
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
        config: config.to_vec(),
        layers,
        manifest_annotations: annotations,
        manifest_digest: None,
        name: src.name.clone(),
    })
}

/// The image as it was before harden touched it (the same image when it never
/// did): original Entrypoint, User and Env back, harden's top layer gone.
pub fn unharden(src: &Image) -> Result<Image> {
    let mut config = src.image_config()?;
    let ids = config.diff_ids()?;
    if ids.len() != src.layers.len() {
        bail!(
            "the image config lists {} diff_ids but the manifest has {} layers",
            ids.len(),
            src.layers.len()
        );
    }
    let mut image = src.clone();
    if config.run().label(LABEL_ORIGINAL).is_some() {
        if undo_previous(&mut config)? {
            image.layers.pop();
        }
        image.config = config.to_vec();
    }
    Ok(image)
}

/// If harden already hardened this image, puts back the original Entrypoint and
/// User and drops harden's layer and history entry. Returns whether the top
/// layer must be dropped.
fn undo_previous(config: &mut ImageConfig) -> Result<bool> {
    let Some(original) = config.run().label(LABEL_ORIGINAL) else {
        return Ok(false);
    };
    let original: Value =
        serde_json::from_str(original).context("label dev.harden.original is not JSON")?;
    let layer = config.run().label(LABEL_LAYER).map(str::to_string);
    let mut run = config.run_mut();
    for key in ["Entrypoint", "User", "Env", "Healthcheck"] {
        match original.get(key) {
            // Absent: the image had no health check (or was hardened before they were wrapped).
            None if key == "Healthcheck" => {}
            v => run.restore(key, v.filter(|v| !v.is_null()).cloned()),
        }
    }
    if let Some(l) = run.existing_labels_mut() {
        for k in [LABEL_VERSION, LABEL_MODE, LABEL_LAYER, LABEL_ORIGINAL] {
            l.remove(k);
        }
    }
    if let (Some(h), Some(legacy)) = (
        original.get("LegacyHealthcheck"),
        config.legacy_healthcheck_mut(),
    ) {
        *legacy = h.clone();
    }
    // Only the top layer can be taken off: anything built on top stays as it is.
    let top_is_ours = layer.is_some_and(|layer| config.pop_diff_id(&layer));
    if top_is_ours {
        if let Some(history) = config.history_mut() {
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

fn rewrite_config(
    config: &mut ImageConfig,
    settings: &Settings,
    inferred: &Inferred,
    account: Option<&Account>,
    diff_id: &Digest,
    ctx: &RunContext,
) -> Result<()> {
    // Docker's classic builder also writes the legacy container_config, and
    // podman takes the health check from there first: set aside, made to
    // agree with config's, and put back at the end.
    let mut legacy_check = config.legacy_healthcheck_mut().map(Value::take);
    let run = config.run();
    let entrypoint = run.entrypoint()?;
    let user = run.user();
    let mut original = json!({
        "Entrypoint": run.get("Entrypoint").cloned().unwrap_or(Value::Null),
        "User": run.user_str(),
        "Env": run.get("Env").cloned().unwrap_or(Value::Null),
    });
    if let Some(h) = run.healthcheck() {
        original["Healthcheck"] = h.clone();
    }
    if let Some(h) = &legacy_check {
        original["LegacyHealthcheck"] = h.clone();
    }

    // Static mode settles the user now; the step-down gets the same defaults
    // for when someone starts the container as root anyway.
    let settings = match account {
        None => Settings {
            match_owner: match &inferred.match_owner {
                inferred if !inferred.is_empty() => inferred.clone(),
                _ => settings.match_owner.clone(),
            },
            writable: inferred.writable.clone(),
            mounted_home: inferred.mounted_home.clone(),
            ..settings.clone()
        },
        Some(a) => Settings {
            user: Some(a.name.clone()),
            uid: Some(a.uid),
            gid: Some(a.gid),
            home: Some(a.home.clone()),
            mounted_home: inferred.mounted_home.clone(),
            ..settings.clone()
        },
    };
    let options = stepdown_options(&settings, user);
    let mut new_entrypoint: Vec<Value> = vec![STEPDOWN_PATH.into()];
    new_entrypoint.extend(options.iter().map(|o| Value::from(o.as_str())));
    new_entrypoint.push("--".into());
    match entrypoint {
        Entrypoint::None => {}
        Entrypoint::Args(a) => new_entrypoint.extend(a.iter().cloned()),
        Entrypoint::One(s) => new_entrypoint.push(s.into()),
    }
    // A health check is exec'd as the config's User, root in runtime mode:
    // it goes through the step-down too (without --chown and --init, which
    // are for the container's start, not for every check).
    let check_settings = Settings {
        chown: Vec::new(),
        writable: Vec::new(),
        init: false,
        ..settings.clone()
    };
    let check_options = stepdown_options(&check_settings, user);
    let shell = run.shell().map(<[Value]>::to_vec);
    // Static mode's User (numeric, so that kubelet can verify runAsNonRoot)
    // and Env (the account's HOME and USER instead of the image's).
    let static_user = account.map(|a| {
        let kept = run
            .get("Env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let kept = kept.filter(|v| {
            !v.as_str()
                .is_some_and(|s| s.starts_with("HOME=") || s.starts_with("USER="))
        });
        let mut env: Vec<Value> = kept.cloned().collect();
        env.push(format!("HOME={}", a.home).into());
        env.push(format!("USER={}", a.name).into());
        (format!("{}:{}", a.uid, a.gid), env)
    });

    let mut run = config.run_mut();
    run.set_entrypoint(new_entrypoint);
    match static_user {
        Some((user, env)) => {
            run.set_user(&user);
            run.set_env(env);
        }
        // The step-down must start as root; it picks the user at run time.
        None => {
            run.set_user("0:0");
            let wrap = |check: Option<&mut Value>| {
                if let Some(test) = check.and_then(|h| h.get_mut("Test")) {
                    if let Some(wrapped) = healthcheck_test(test, &check_options, shell.as_deref())
                    {
                        *test = wrapped;
                    }
                }
            };
            wrap(run.healthcheck_mut());
            // The legacy check gets the same wrapped check as config (or its
            // own wrapped, when config has none).
            match (legacy_check.as_mut(), run.read().healthcheck()) {
                (Some(legacy), Some(wrapped)) => *legacy = wrapped.clone(),
                (legacy, _) => wrap(legacy),
            }
        }
    }

    let labels = run.labels_mut();
    labels.insert(LABEL_VERSION.into(), ctx.version.as_str().into());
    labels.insert(LABEL_MODE.into(), settings.mode.as_str().into());
    labels.insert(LABEL_LAYER.into(), diff_id.as_str().into());
    labels.insert(
        LABEL_ORIGINAL.into(),
        serde_json::to_string(&original)?.into(),
    );

    if let (Some(check), Some(legacy)) = (legacy_check, config.legacy_healthcheck_mut()) {
        *legacy = check;
    }
    config.push_diff_id(diff_id)?;
    let created = ctx
        .created
        .clone()
        .or_else(|| root_created(config.history()?).map(str::to_string));
    if let Some(history) = config.history_mut() {
        let mut entry = Map::new();
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

/// A Healthcheck `Test` that runs its command through the step-down: `CMD`
/// keeps its arguments, `CMD-SHELL` runs the image's `Shell` (as docker does;
/// default `/bin/sh -c`). None for `NONE`, an empty test (inherit) or anything
/// unknown, which stay as they are.
fn healthcheck_test(test: &Value, options: &[String], shell: Option<&[Value]>) -> Option<Value> {
    let test = test.as_array()?;
    let command: Vec<Value> = match test.first()?.as_str()? {
        "CMD" => test[1..].to_vec(),
        "CMD-SHELL" => {
            let script = test.get(1)?.clone();
            let shell = match shell {
                Some(s) => s.to_vec(),
                None => vec!["/bin/sh".into(), "-c".into()],
            };
            shell.into_iter().chain([script]).collect()
        }
        _ => return None,
    };
    let mut wrapped: Vec<Value> = vec!["CMD".into(), STEPDOWN_PATH.into()];
    wrapped.extend(options.iter().map(|o| Value::from(o.as_str())));
    wrapped.push("--".into());
    wrapped.extend(command);
    Some(Value::Array(wrapped))
}

/// Settles the static-mode user from the image's own account files (pure):
/// the account, and the layer entries that make it exist — the files with a
/// line added (kept as they are when the user and group exist), and HOME.
///
/// `owner` is the first non-root owner of the `inferred_owners` paths in the
/// image, the account a root image prepared for itself.
pub fn plan_static(
    settings: &Settings,
    original_user: User,
    passwd: Option<&FileEntry>,
    group: Option<&FileEntry>,
    owner: Option<(u32, u32)>,
) -> Result<(Account, Vec<LayerEntry>)> {
    fn content(f: Option<&FileEntry>) -> Option<&[u8]> {
        f.map(|f| f.content.as_slice())
    }
    let users: Vec<accounts::User> = content(passwd)
        .map(|p| accounts::users(p).collect())
        .unwrap_or_default();
    let by_name = |n: &str| users.iter().find(|u| u.name == n.as_bytes());

    let orig_uid = original_user.user;
    let orig_gid = original_user.non_root_gid();
    let (uid, entry_gid) = if let Some(uid) = settings.uid {
        (uid, users.iter().find(|u| u.uid == uid).map(|u| u.gid))
    } else if !original_user.is_root() && settings.user.is_none() {
        match original_user.uid() {
            Some(uid) => (uid, users.iter().find(|u| u.uid == uid).map(|u| u.gid)),
            None => {
                let u = by_name(orig_uid).with_context(|| {
                    format!("the image's User {orig_uid:?} is not in its /etc/passwd")
                })?;
                (u.uid, Some(u.gid))
            }
        }
    } else if let Some(u) = settings
        .user
        .as_deref()
        .and_then(by_name)
        .filter(|u| u.uid != 0)
    {
        (u.uid, Some(u.gid))
    } else if let Some((uid, gid)) = owner.filter(|(uid, _)| *uid != 0) {
        (uid, Some(gid))
    } else {
        (1000, None)
    };
    let gid = settings
        .gid
        .or(orig_gid)
        .or(entry_gid.filter(|g| *g != 0))
        .unwrap_or(uid);
    let wanted = settings.user.as_deref().unwrap_or("app");
    let mut plan = accounts::AccountPlan::new();
    plan.fill(
        content(passwd),
        content(group),
        uid,
        gid,
        wanted.as_bytes(),
        settings.home.as_deref().map(str::as_bytes),
    );
    let home = String::from_utf8_lossy(plan.home.as_bytes()).into_owned();

    let mut entries = Vec::new();
    for (path, line, old, default) in [
        (
            "etc/passwd",
            plan.passwd_line(),
            passwd,
            accounts::DEFAULT_PASSWD,
        ),
        (
            "etc/group",
            plan.group_line(),
            group,
            accounts::DEFAULT_GROUP,
        ),
    ] {
        if let Some(line) = line {
            let new = accounts::appended(content(old), default, line).concat();
            // Same owner and mode as before, plus read bits: every user must read them.
            let (mode, uid, gid) = old
                .map(|f| (f.mode | 0o444, f.uid, f.gid))
                .unwrap_or((0o644, 0, 0));
            entries.push(LayerEntry {
                path: path.into(),
                content: Some(new),
                mode,
                uid,
                gid,
            });
        }
    }
    // HOME only where the step-down would make it (accounts::HOME_ROOTS).
    if plan.passwd_line().is_some() && accounts::home_preparable(home.as_bytes()) {
        entries.push(LayerEntry {
            path: home.trim_start_matches('/').to_string(),
            content: None,
            mode: 0o750,
            uid: uid.into(),
            gid: gid.into(),
        });
    }
    Ok((
        Account {
            uid,
            gid,
            name: String::from_utf8_lossy(plan.name.as_bytes()).into_owned(),
            home,
        },
        entries,
    ))
}

/// What static mode makes of the `inferred_writable` paths of an image.
#[derive(Debug, Default, PartialEq)]
pub struct Baked {
    /// Directory entries for harden's layer: the same mode, the account's owner.
    pub entries: Vec<LayerEntry>,
    /// The paths whose directories now belong to the account.
    pub given: Vec<String>,
    /// What could not be done, one line per path.
    pub left: Vec<String>,
}

/// Static mode's `--writable` (pure): each tree the image has (`rootfs::scan`
/// of an `inferred_writable` path) becomes the account's by entries in
/// harden's layer with the same mode: its directories, and its small files
/// (copied into the layer, at most MAX_BAKED_FILES bytes in all). A tree
/// with other entries of another owner (a bigger file, a device) is said to
/// be left in part, as is one too big to list. Paths in `taken` already have
/// an entry (HOME).
pub fn baked_writable(
    account: &Account,
    trees: &[(String, Option<Vec<crate::rootfs::TreeEntry>>)],
    taken: &[LayerEntry],
) -> Baked {
    let mut baked = Baked::default();
    let (uid, gid) = (u64::from(account.uid), u64::from(account.gid));
    let mut copied = 0;
    for (root, tree) in trees {
        let Some(tree) = tree else {
            baked.left.push(format!(
                "{root} holds more than {} entries: it stays as it is",
                crate::rootfs::MAX_TREE
            ));
            continue;
        };
        let top = root.trim_start_matches('/');
        match tree.iter().find(|e| e.path == top) {
            Some(e) if e.dir => {}
            // Not in the image, or not a directory (a symbolic link): nothing to give.
            _ => continue,
        }
        let mut left = 0;
        for e in tree.iter().filter(|e| (e.uid, e.gid) != (uid, gid)) {
            let known = |l: &LayerEntry| l.path.trim_end_matches('/') == e.path;
            if taken.iter().any(known) || baked.entries.iter().any(known) {
                continue;
            }
            let content = match &e.content {
                _ if e.dir => None,
                Some(c) if copied + c.len() <= MAX_BAKED_FILES => {
                    copied += c.len();
                    Some(c.clone())
                }
                _ => {
                    left += 1;
                    continue;
                }
            };
            baked.entries.push(LayerEntry {
                path: e.path.clone(),
                content,
                mode: e.mode,
                uid,
                gid,
            });
        }
        if left > 0 {
            baked.left.push(format!(
                "{root} holds {left} entries of another owner that harden cannot copy (links, \
                 devices, big files): they stay as they are"
            ));
        }
        baked.given.push(root.clone());
    }
    baked
}

/// Most bytes of files `baked_writable` copies into harden's layer.
pub const MAX_BAKED_FILES: usize = 256 << 10;

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
                Layer::new(
                    image::OCI_LAYER,
                    d.clone(),
                    d,
                    Blob::Bytes(Arc::new(vec![i as u8])),
                )
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
        crate::layer::stepdown_layer(b"stepdown", &[]).unwrap()
    }

    fn cfg(img: &Image) -> Value {
        serde_json::from_slice(&img.config).unwrap()
    }

    /// `harden` with the defaults `infer` takes from the image, as run.rs calls it.
    fn hardened(src: &Image, settings: &Settings, account: Option<&Account>) -> Result<Image> {
        let base = unharden(src)?;
        let inferred = infer(settings, base.image_config()?.run());
        harden(src, settings, &inferred, &layer(), account, &ctx())
    }

    #[test]
    fn wraps_entrypoint_and_keeps_cmd_and_the_rest() {
        let src = image(source_config(), 1);
        let settings = Settings {
            user: Some("aws".into()),
            uid_env: Some("AWS_UID".into()),
            match_owner: vec!["/home/aws/.aws".into()],
            ..Settings::default()
        };
        let out = hardened(&src, &settings, None).unwrap();
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
                "--writable",
                "/data",
                "--writable",
                "/run",
                "--writable",
                "/run/echo",
                "--writable",
                "/var/lib/echo",
                "--writable",
                "/var/log/echo",
                "--writable",
                "/var/cache/echo",
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
        assert_eq!(out.layers[1].media_type, image::OCI_LAYER_GZIP);
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
    fn no_entrypoint_lets_cmd_follow_the_separator() {
        // null and [""] both mean "no entrypoint" to docker and podman.
        for none in [Value::Null, json!([""])] {
            let mut config = source_config();
            config["config"]["Entrypoint"] = none;
            // Without the inferred --match-owner options of its VOLUME.
            let out = hardened(
                &image(config, 1),
                &Settings {
                    no_infer: true,
                    ..Settings::default()
                },
                None,
            )
            .unwrap();
            assert_eq!(
                cfg(&out)["config"]["Entrypoint"],
                json!([STEPDOWN_PATH, "--"])
            );
            assert_eq!(cfg(&out)["config"]["Cmd"], json!(["default"]));
        }
    }

    #[test]
    fn init_and_chown_reach_the_entrypoint() {
        let s = Settings {
            chown: vec!["/data".into(), "/cache".into()],
            init: true,
            ..Settings::default()
        };
        assert_eq!(
            stepdown_options(&s, User::parse("")),
            ["--chown", "/data", "--chown", "/cache", "--init"]
        );
    }

    #[test]
    fn a_root_image_runs_as_the_owner_of_its_volumes_then_working_dir() {
        let section = |user: &str| {
            json!({"User": user, "WorkingDir": "/srv/app/",
                   "Volumes": {"/data": {}, "/": {}, "relative": {}, "/a/../etc": {}, "/srv/app": {}}})
            .as_object()
            .unwrap()
            .clone()
        };
        let d = Settings::default();
        assert_eq!(
            inferred_owners(&d, RunConfig::of(&section(""))),
            ["/data", "/srv/app"]
        );
        assert_eq!(
            inferred_owners(&d, RunConfig::of(&section("0:0"))),
            ["/data", "/srv/app"]
        );
        // The image's own non-root User, or the user's choice, comes first.
        assert!(inferred_owners(&d, RunConfig::of(&section("redis"))).is_empty());
        for chosen in [
            Settings {
                user: Some("x".into()),
                ..d.clone()
            },
            Settings {
                uid: Some(5),
                ..d.clone()
            },
            Settings {
                match_owner: vec!["/m".into()],
                ..d.clone()
            },
            Settings {
                no_infer: true,
                ..d.clone()
            },
        ] {
            assert!(
                inferred_owners(&chosen, RunConfig::of(&section("root"))).is_empty(),
                "{chosen:?}"
            );
        }
        assert!(inferred_owners(&d, RunConfig::of(&Map::new())).is_empty());
    }

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn app_names_come_from_the_program_past_wrappers() {
        let names = |v: Value| app_names(RunConfig::of(&object(v)));
        assert_eq!(
            names(json!({"Cmd": ["nginx", "-g", "daemon off;"]})),
            ["nginx"]
        );
        assert_eq!(
            names(json!({"Entrypoint": ["/usr/bin/redis-server"], "Cmd": ["x"]})),
            ["redis-server", "redis"]
        );
        assert_eq!(names(json!({"Cmd": ["mysqld"]})), ["mysqld", "mysql"]);
        assert_eq!(
            names(json!({"Entrypoint": ["docker-entrypoint.sh"], "Cmd": ["postgres"]})),
            ["postgres"]
        );
        for nothing in [
            json!({"Cmd": ["/bin/sh", "-c", "nginx"]}),
            json!({"Entrypoint": ["tini", "--"]}),
            json!({"Cmd": [".."]}),
            json!({"Cmd": ["/usr/bin/"]}),
            json!({"Cmd": [".hidden"]}),
            json!({"Cmd": "nginx"}),
            json!({}),
        ] {
            assert!(names(nothing.clone()).is_empty(), "{nothing}");
        }
    }

    #[test]
    fn a_root_image_gets_its_volumes_run_and_app_directories_writable() {
        let section = |user: &str| {
            object(json!({"User": user, "Cmd": ["nginx"],
                "Volumes": {"/data/": {}, "/etc": {}, "/usr/share/x": {}, "rel": {}}}))
        };
        let d = Settings::default();
        assert_eq!(
            inferred_writable(&d, RunConfig::of(&section(""))),
            [
                "/data",
                "/run",
                "/run/nginx",
                "/var/lib/nginx",
                "/var/log/nginx",
                "/var/cache/nginx"
            ]
        );
        // A path the user gives with --chown is theirs: not given twice.
        let asked = Settings {
            chown: vec!["/run".into()],
            ..d.clone()
        };
        assert!(
            !inferred_writable(&asked, RunConfig::of(&section("0"))).contains(&"/run".to_string())
        );
        assert!(inferred_writable(&d, RunConfig::of(&section("www-data"))).is_empty());
        let off = Settings {
            no_infer: true,
            ..d.clone()
        };
        assert!(inferred_writable(&off, RunConfig::of(&section("root"))).is_empty());
        let ports = |user: &str| {
            privileged_ports(RunConfig::of(&object(json!({"User": user,
                "ExposedPorts": {"80/tcp": {}, "8080/tcp": {}, "53/udp": {}, "x": {}}}))))
        };
        assert_eq!(ports(""), ["53/udp", "80/tcp"]);
        assert!(ports("nginx").is_empty());
        // Runtime mode hands them to the step-down, health checks excepted.
        let mut config = source_config();
        config["config"] = json!({"Cmd": ["nginx"], "Healthcheck": {"Test": ["CMD", "true"]}});
        let img = image(config, 1);
        let out = hardened(&img, &d, None).unwrap();
        let config = cfg(&out);
        let entrypoint = config["config"]["Entrypoint"].to_string();
        assert!(entrypoint.contains(r#""--writable","/run","--writable","/run/nginx""#));
        let check = config["config"]["Healthcheck"]["Test"].to_string();
        assert!(!check.contains("--writable"), "{check}");
    }

    #[test]
    fn a_root_image_looks_for_mounts_below_the_home_it_ran_with() {
        let section = |user: &str, env: Value| object(json!({"User": user, "Env": env}));
        let d = Settings::default();
        let home = |s: &Settings, user: &str, env: Value| {
            inferred_mounted_home(s, RunConfig::of(&section(user, env)))
        };
        assert_eq!(home(&d, "", Value::Null).as_deref(), Some("/root"));
        let env = json!(["PATH=/bin", "HOME=/home/x", "HOME=/srv/aws"]);
        assert_eq!(
            home(&d, "0:0", env).as_deref(),
            Some("/srv/aws"),
            "the last HOME wins"
        );
        for unusable in ["HOME=/", "HOME=/etc", "HOME=rel", "HOME=/root/../etc"] {
            assert_eq!(home(&d, "", json!([unusable])), None, "{unusable}");
        }
        assert_eq!(home(&d, "node", Value::Null), None, "already a user");
        for chosen in [
            Settings {
                user: Some("aws".into()),
                ..d.clone()
            },
            Settings {
                uid: Some(5),
                ..d.clone()
            },
            Settings {
                home: Some("/root".into()),
                ..d.clone()
            },
            Settings {
                no_infer: true,
                ..d.clone()
            },
        ] {
            assert_eq!(home(&chosen, "", Value::Null), None, "{chosen:?}");
        }
        // Static mode: the layer holds a root-owned HOME with search bits.
        let dir = |uid, mode| Some(rootfs::Found::Dir { uid, gid: 0, mode });
        let entry = searchable_home("/root", dir(0, 0o40700)).unwrap();
        assert_eq!(
            (entry.path.as_str(), entry.mode, entry.content),
            ("root", 0o711, None)
        );
        assert_eq!(
            searchable_home("/root", dir(0, 0o755)),
            None,
            "searchable already"
        );
        assert_eq!(searchable_home("/root", dir(5, 0o700)), None, "not root's");
        assert_eq!(searchable_home("/root", Some(rootfs::Found::Other)), None);
        assert_eq!(searchable_home("/root", None), None);
        // Runtime mode gives it to the step-down, health checks included
        // (they must pick the same user).
        let mut config = source_config();
        config["config"] = json!({"Cmd": ["aws"], "Healthcheck": {"Test": ["CMD", "true"]}});
        let out = hardened(&image(config, 1), &d, None).unwrap();
        let config = cfg(&out);
        for part in [
            &config["config"]["Entrypoint"],
            &config["config"]["Healthcheck"]["Test"],
        ] {
            assert!(
                part.to_string().contains(r#""--mounted-home","/root""#),
                "{part}"
            );
        }
    }

    #[test]
    fn static_mode_bakes_directories_and_says_what_it_left() {
        use crate::rootfs::TreeEntry;
        let entry = |path: &str, dir: bool, uid: u64| TreeEntry {
            path: path.into(),
            dir,
            content: (!dir).then(|| b"log".to_vec()),
            mode: if dir { 0o1777 } else { 0o644 },
            uid,
            gid: uid,
        };
        let account = Account {
            uid: 1000,
            gid: 1000,
            name: "app".into(),
            home: "/var/lib/nginx".into(),
        };
        let trees = vec![
            (
                "/run".to_string(),
                Some(vec![entry("run", true, 0), entry("run/lock", true, 0)]),
            ),
            (
                "/var/lib/nginx".to_string(),
                Some(vec![
                    entry("var/lib/nginx", true, 0),
                    entry("var/lib/nginx/f", false, 0),
                    TreeEntry {
                        content: None,
                        ..entry("var/lib/nginx/big", false, 0)
                    },
                ]),
            ),
            (
                "/var/log/nginx".to_string(),
                Some(vec![entry("var/log/nginx", false, 0)]),
            ),
            ("/var/cache/nginx".to_string(), Some(Vec::new())),
            ("/data".to_string(), None),
        ];
        let home = LayerEntry {
            path: "var/lib/nginx".into(),
            content: None,
            mode: 0o750,
            uid: 1000,
            gid: 1000,
        };
        let baked = baked_writable(&account, &trees, &[home]);
        let paths: Vec<(&str, u32, u64, Option<&[u8]>)> = baked
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.mode, e.uid, e.content.as_deref()))
            .collect();
        assert_eq!(
            paths,
            [
                ("run", 0o1777, 1000, None),
                ("run/lock", 0o1777, 1000, None),
                ("var/lib/nginx/f", 0o644, 1000, Some(&b"log"[..]))
            ]
        );
        assert_eq!(baked.given, ["/run", "/var/lib/nginx"]);
        assert_eq!(baked.left.len(), 2, "{:?}", baked.left);
        assert!(baked.left[0].starts_with("/var/lib/nginx holds 1 entries of another owner"));
        assert!(baked.left[1].starts_with("/data holds more than 64 entries"));
    }

    #[test]
    fn non_root_image_user_becomes_the_default_target() {
        assert_eq!(
            stepdown_options(&Settings::default(), User::parse("1001:1002")),
            ["--uid", "1001", "--gid", "1002"]
        );
        assert_eq!(
            stepdown_options(&Settings::default(), User::parse("node")),
            ["--user", "node"]
        );
        assert!(stepdown_options(&Settings::default(), User::parse("root")).is_empty());
        assert!(stepdown_options(&Settings::default(), User::parse("0:0")).is_empty());
        let explicit = Settings {
            uid: Some(5),
            ..Settings::default()
        };
        assert_eq!(
            stepdown_options(&explicit, User::parse("node")),
            ["--uid", "5"]
        );
        let mut config = source_config();
        config["config"]["User"] = "1001".into();
        let out = hardened(&image(config, 1), &Settings::default(), None).unwrap();
        assert_eq!(
            cfg(&out)["config"]["Entrypoint"].as_array().unwrap()[1..4],
            json!(["--uid", "1001", "--"]).as_array().unwrap()[..]
        );
        assert_eq!(cfg(&out)["config"]["User"], "0:0");
    }

    #[test]
    fn hardening_twice_replaces_instead_of_stacking() {
        let src = image(source_config(), 1);
        let once = hardened(&src, &Settings::default(), None).unwrap();
        let settings = Settings {
            uid: Some(42),
            ..Settings::default()
        };
        let twice = hardened(&once, &settings, None).unwrap();
        let direct = hardened(&src, &settings, None).unwrap();
        assert_eq!(twice.layers.len(), 2);
        assert_eq!(cfg(&twice), cfg(&direct));
        assert_eq!(twice.config, direct.config, "byte-identical config");
    }

    #[test]
    fn rejects_inconsistent_configs() {
        assert!(hardened(&image(source_config(), 2), &Settings::default(), None).is_err());
        let mut bad = source_config();
        bad["config"]["Entrypoint"] = json!(5);
        assert!(hardened(&image(bad, 1), &Settings::default(), None).is_err());
    }

    #[test]
    fn root_detection() {
        for root in ["", "0", "root", "0:0", "root:wheel"] {
            assert!(User::parse(root).is_root(), "{root}");
        }
        for user in ["1000", "node", "1000:0"] {
            assert!(!User::parse(user).is_root(), "{user}");
        }
    }

    fn file(content: &str, mode: u32) -> FileEntry {
        FileEntry {
            content: content.as_bytes().to_vec(),
            mode,
            uid: 0,
            gid: 42,
        }
    }

    const DEB_PASSWD: &str =
        "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n";
    const DEB_GROUP: &str = "root:x:0:\nwww-data:x:33:\n";

    #[test]
    fn static_plan_appends_user_group_and_home() {
        let static_settings = Settings {
            mode: Mode::Static,
            ..Settings::default()
        };
        let (account, entries) = plan_static(
            &static_settings,
            User::parse(""),
            Some(&file(DEB_PASSWD, 0o600)),
            Some(&file(DEB_GROUP, 0o644)),
            None,
        )
        .unwrap();
        assert_eq!(
            account,
            Account {
                uid: 1000,
                gid: 1000,
                name: "app".into(),
                home: "/home/app".into()
            }
        );
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].path, "etc/passwd");
        assert_eq!(
            String::from_utf8(entries[0].content.clone().unwrap()).unwrap(),
            format!("{DEB_PASSWD}app:x:1000:1000::/home/app:/sbin/nologin\n")
        );
        assert_eq!(
            (entries[0].mode, entries[0].uid, entries[0].gid),
            (0o644, 0, 42),
            "owner kept, readable"
        );
        assert_eq!(entries[1].path, "etc/group");
        assert!(String::from_utf8(entries[1].content.clone().unwrap())
            .unwrap()
            .ends_with("www-data:x:33:\napp:x:1000:\n"));
        assert_eq!(
            (entries[2].path.as_str(), entries[2].content.is_none()),
            ("home/app", true)
        );
        assert_eq!(
            (entries[2].mode, entries[2].uid, entries[2].gid),
            (0o750, 1000, 1000)
        );
    }

    #[test]
    fn static_plan_keeps_existing_users_and_handles_scratch() {
        let s = Settings {
            mode: Mode::Static,
            user: Some("www-data".into()),
            ..Settings::default()
        };
        let (account, entries) = plan_static(
            &s,
            User::parse(""),
            Some(&file(DEB_PASSWD, 0o644)),
            Some(&file(DEB_GROUP, 0o644)),
            None,
        )
        .unwrap();
        assert_eq!(
            (account.uid, account.gid, account.home.as_str()),
            (33, 33, "/var/www")
        );
        assert!(entries.is_empty(), "files unchanged when the user exists");
        // The image's own non-root User, by name.
        let (account, _) = plan_static(
            &Settings::default(),
            User::parse("www-data"),
            Some(&file(DEB_PASSWD, 0o644)),
            None,
            None,
        )
        .unwrap();
        assert_eq!(account.uid, 33);
        // A root image: the owner of its data directory, with its passwd entry.
        let (account, entries) = plan_static(
            &Settings::default(),
            User::parse(""),
            Some(&file(DEB_PASSWD, 0o644)),
            Some(&file(DEB_GROUP, 0o644)),
            Some((33, 33)),
        )
        .unwrap();
        assert_eq!((account.uid, account.name.as_str()), (33, "www-data"));
        assert!(entries.is_empty());
        assert!(plan_static(
            &Settings::default(),
            User::parse("nobody-here"),
            Some(&file(DEB_PASSWD, 0o644)),
            None,
            None
        )
        .is_err());
        // Scratch: no files at all.
        let (account, entries) = plan_static(
            &Settings {
                uid: Some(2000),
                ..Settings::default()
            },
            User::parse(""),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!((account.uid, account.gid), (2000, 2000));
        let passwd = String::from_utf8(entries[0].content.clone().unwrap()).unwrap();
        assert_eq!(
            passwd,
            "root:x:0:0:root:/root:/sbin/nologin\napp:x:2000:2000::/home/app:/sbin/nologin\n"
        );
    }

    #[test]
    fn the_legacy_container_config_check_agrees_with_config() {
        let settings = Settings {
            uid: Some(2000),
            ..Settings::default()
        };
        let check = json!({"Test": ["CMD", "true"], "Interval": 1});
        let wrapped = json!(["CMD", STEPDOWN_PATH, "--uid", "2000", "--", "true"]);
        // Docker's classic builder: both; Docker-built and then edited: only the legacy one.
        for in_config in [true, false] {
            let mut config = source_config();
            config["container_config"] = json!({"Cmd": ["/bin/sh"], "Healthcheck": check});
            if in_config {
                config["config"]["Healthcheck"] = check.clone();
            }
            let out = hardened(&image(config, 1), &settings, None).unwrap();
            let c = cfg(&out);
            assert_eq!(c["container_config"]["Healthcheck"]["Test"], wrapped);
            assert_eq!(c["container_config"]["Healthcheck"]["Interval"], 1);
            assert_eq!(c["container_config"]["Cmd"], json!(["/bin/sh"]));
            if in_config {
                assert_eq!(c["config"]["Healthcheck"]["Test"], wrapped);
            }
            let again = hardened(&out, &settings, None).unwrap();
            assert_eq!(
                cfg(&again)["container_config"]["Healthcheck"]["Test"],
                wrapped
            );
        }
    }

    #[test]
    fn health_checks_run_through_the_step_down_in_runtime_mode() {
        let mut config = source_config();
        let settings = Settings {
            uid: Some(2000),
            chown: vec!["/data".into()],
            init: true,
            ..Settings::default()
        };
        let through = |cmd: &[&str]| {
            let mut t = vec!["CMD", STEPDOWN_PATH, "--uid", "2000", "--"];
            t.extend_from_slice(cmd);
            json!(t)
        };
        for (test, shell, expected) in [
            (
                json!(["CMD", "curl", "-f", "http://localhost/"]),
                None,
                through(&["curl", "-f", "http://localhost/"]),
            ),
            (
                json!(["CMD-SHELL", "pg_isready || exit 1"]),
                None,
                through(&["/bin/sh", "-c", "pg_isready || exit 1"]),
            ),
            (
                json!(["CMD-SHELL", "ok"]),
                Some(json!(["/bin/bash", "-eo", "pipefail", "-c"])),
                through(&["/bin/bash", "-eo", "pipefail", "-c", "ok"]),
            ),
            (json!(["NONE"]), None, json!(["NONE"])),
            (json!([]), None, json!([])),
        ] {
            config["config"]["Healthcheck"] = json!({"Test": test, "Interval": 30_000_000_000u64});
            match shell {
                Some(s) => config["config"]["Shell"] = s,
                None => drop(config["config"].as_object_mut().unwrap().remove("Shell")),
            }
            let out = hardened(&image(config.clone(), 1), &settings, None).unwrap();
            let c = cfg(&out);
            assert_eq!(c["config"]["Healthcheck"]["Test"], expected, "{test}");
            assert_eq!(c["config"]["Healthcheck"]["Interval"], 30_000_000_000u64);
            // Hardening again starts from the original check, not the wrapped one.
            let again = hardened(&out, &settings, None).unwrap();
            assert_eq!(cfg(&again)["config"]["Healthcheck"]["Test"], expected);
            let account = Account {
                uid: 1000,
                gid: 1000,
                name: "app".into(),
                home: "/home/app".into(),
            };
            let stat = hardened(&out, &settings, Some(&account)).unwrap();
            assert_eq!(
                cfg(&stat)["config"]["Healthcheck"]["Test"],
                test,
                "static mode: the check runs as the image's User already"
            );
        }
        let no_check = hardened(&image(source_config(), 1), &settings, None);
        assert!(cfg(&no_check.unwrap())["config"]
            .get("Healthcheck")
            .is_none());
    }

    #[test]
    fn static_config_is_numeric_and_sets_home() {
        let account = Account {
            uid: 1000,
            gid: 1000,
            name: "app".into(),
            home: "/home/app".into(),
        };
        let mut config = source_config();
        config["config"]["Env"] = json!(["PATH=/bin", "HOME=/root"]);
        let s = Settings {
            mode: Mode::Static,
            ..Settings::default()
        };
        let out = hardened(&image(config.clone(), 1), &s, Some(&account)).unwrap();
        let c = cfg(&out);
        assert_eq!(c["config"]["User"], "1000:1000");
        assert_eq!(
            c["config"]["Env"],
            json!(["PATH=/bin", "HOME=/home/app", "USER=app"])
        );
        assert_eq!(c["config"]["Labels"][LABEL_MODE], "static");
        assert_eq!(
            c["config"]["Entrypoint"],
            json!([
                STEPDOWN_PATH,
                "--user",
                "app",
                "--uid",
                "1000",
                "--gid",
                "1000",
                "--home",
                "/home/app",
                "--mounted-home",
                "/root",
                "--",
                "/bin/echo",
                "entry"
            ])
        );
        // Back to runtime mode: Env and User return to what they were.
        let back = hardened(&out, &Settings::default(), None).unwrap();
        assert_eq!(cfg(&back)["config"]["Env"], config["config"]["Env"]);
        assert_eq!(cfg(&back)["config"]["User"], "0:0");
        assert_eq!(back.layers.len(), 2);
    }
}
