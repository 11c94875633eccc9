//! harden: make an existing container image run as a non-root user.

mod digest;
mod image;
mod inspect;
mod layer;
mod rewrite;
mod rootfs;
mod sink;
mod source;
mod store;
mod transport;

/// The step-down's own ID and name checks, shared so that harden refuses at
/// rewrite time exactly what the step-down would refuse at run time.
#[path = "../stepdown/src/accounts.rs"]
#[allow(dead_code)]
mod accounts;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use transport::ImageRef;

/// The step-down binaries harden puts into images, built by build.rs.
const STEPDOWN_AMD64: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/harden-stepdown-amd64"));
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Parser)]
#[command(
    name = "harden",
    version,
    about = "Make existing container images run as a non-root user, without a Dockerfile or a Docker daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Harden SOURCE and write the result to DEST
    #[command(after_help = "\
Transports (skopeo's syntax):
  docker-archive:PATH[:NAME:TAG|:@INDEX]   docker save / podman save format
  oci:DIR[:TAG]                            OCI image layout directory
  oci-archive:PATH[:TAG]                   OCI image layout in a tar file

Examples:
  harden rewrite docker-archive:app.tar docker-archive:app-h.tar
  harden rewrite docker-archive:aws.tar docker-archive:aws-h.tar \\
      --user aws --uid-env AWS_UID --gid-env AWS_GID --match-owner /home/aws/.aws
  harden rewrite oci:layout:v1 oci:layout:v1-hardened")]
    Rewrite {
        /// Image to read (never modified)
        source: String,
        /// Where to write the hardened image
        dest: String,
        #[command(flatten)]
        settings: SettingsArgs,
        /// Print the result as one JSON object on stdout
        #[arg(long)]
        json: bool,
        /// Print nothing but errors
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show what an image runs, as whom, and whether harden hardened it
    #[command(after_help = "Example:\n  harden inspect docker-archive:app-h.tar")]
    Inspect {
        image: String,
        #[arg(long)]
        json: bool,
    },
    /// Write the embedded step-down binary (for your own Dockerfiles)
    #[command(after_help = "Example:\n  harden stepdown-binary --arch amd64 -o harden-stepdown")]
    StepdownBinary {
        #[arg(long, default_value = "amd64")]
        arch: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Args)]
struct SettingsArgs {
    /// Name of the user (default: app; the image's own non-root User when it has one)
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Default UID (default: the user's UID in the image, else 1000)
    #[arg(long, value_name = "N")]
    uid: Option<String>,
    /// Default GID (default: the UID)
    #[arg(long, value_name = "N")]
    gid: Option<String>,
    /// Home directory (default: /home/NAME)
    #[arg(long, value_name = "DIR")]
    home: Option<String>,
    /// Variable that sets the UID at run time (default: HARDEN_UID)
    #[arg(long, value_name = "NAME")]
    uid_env: Option<String>,
    /// Variable that sets the GID at run time (default: HARDEN_GID)
    #[arg(long, value_name = "NAME")]
    gid_env: Option<String>,
    /// Run as the owner of this path when it exists and is not root (e.g. a bind mount)
    #[arg(long, value_name = "PATH")]
    match_owner: Option<String>,
    /// Do not set no_new_privs (lets setuid programs such as sudo work)
    #[arg(long)]
    allow_new_privs: bool,
    /// runtime: start as root and step down at run time; static: the image runs as the
    /// numeric non-root user (Kubernetes runAsNonRoot, restricted profile)
    #[arg(long, value_enum, default_value_t = ModeArg::Runtime)]
    mode: ModeArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Runtime,
    Static,
}

impl SettingsArgs {
    /// Checks every value here, so that a bad one fails the rewrite rather than the container.
    fn validate(self) -> Result<rewrite::Settings> {
        let id = |flag: &str, v: Option<String>| -> Result<Option<u32>> {
            v.map(|v| match accounts::parse_id(&v) {
                Ok(0) => bail!("{flag} 0 is root: harden exists to not run as root"),
                Ok(n) => Ok(n),
                Err(e) => bail!("{flag}: {e}"),
            })
            .transpose()
        };
        let env_name = |flag: &str, v: Option<String>| -> Result<Option<String>> {
            if let Some(n) = &v {
                let ok = !n.is_empty()
                    && !n.starts_with(|c: char| c.is_ascii_digit())
                    && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    bail!("{flag} {n:?} is not a valid environment variable name");
                }
            }
            Ok(v)
        };
        if let Some(u) = &self.user {
            if !accounts::valid_name(u) {
                bail!("--user {u:?} is not a valid user name (letters, digits, . _ -; at most 32)");
            }
        }
        for (flag, path) in [("--home", &self.home), ("--match-owner", &self.match_owner)] {
            if let Some(p) = path {
                if !accounts::valid_home(p) {
                    bail!("{flag} {p:?} must be an absolute path without ':'");
                }
            }
        }
        Ok(rewrite::Settings {
            uid: id("--uid", self.uid)?,
            gid: id("--gid", self.gid)?,
            uid_env: env_name("--uid-env", self.uid_env)?,
            gid_env: env_name("--gid-env", self.gid_env)?,
            user: self.user,
            home: self.home,
            match_owner: self.match_owner,
            allow_new_privs: self.allow_new_privs,
            mode: match self.mode {
                ModeArg::Runtime => rewrite::Mode::Runtime,
                ModeArg::Static => rewrite::Mode::Static,
            },
        })
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("harden: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Rewrite {
            source,
            dest,
            settings,
            json,
            quiet,
        } => {
            let settings = settings.validate()?;
            let (src, dst) = (ImageRef::parse(&source)?, ImageRef::parse(&dest)?);
            sink::check_not_source(&src, &dst)?;
            let image = source::read_image(&src)?;
            let (account, extra) = match settings.mode {
                rewrite::Mode::Runtime => (None, Vec::new()),
                rewrite::Mode::Static => {
                    let (account, extra) = static_account(&image, &settings)?;
                    (Some(account), extra)
                }
            };
            let layer = layer::stepdown_layer(STEPDOWN_AMD64, &extra)?;
            let ctx = rewrite::RunContext {
                version: VERSION.into(),
                created: source_date_epoch()?,
                base_name: image.name.clone(),
            };
            let hardened = rewrite::harden(&image, &settings, &layer, account.as_ref(), &ctx)?;
            let written = sink::write_image(&hardened, &dst)?;
            if json {
                let out = serde_json::json!({
                    "source": src.to_string(),
                    "source_manifest_digest": image.manifest_digest.as_ref().map(|d| d.as_str()),
                    "destination": written.destination,
                    "manifest_digest": written.manifest_digest,
                    "image_id": written.image_id,
                    "added_layer": {"digest": layer.digest.as_str(), "size": layer.gzip.len(), "diff_id": layer.diff_id.as_str()},
                });
                println!("{out}");
            }
            if !quiet {
                eprintln!(
                    "harden: wrote {} (image ID {})",
                    written.destination, written.image_id
                );
            }
            Ok(())
        }
        Command::Inspect { image, json } => {
            let image = source::read_image(&ImageRef::parse(&image)?)?;
            let d = inspect::describe(&image)?;
            if json {
                println!("{d}");
            } else {
                print!("{}", inspect::human(&d));
            }
            Ok(())
        }
        Command::StepdownBinary { arch, output } => {
            let bytes = match arch.as_str() {
                "amd64" | "x86_64" => STEPDOWN_AMD64,
                other => bail!("no step-down binary for architecture {other:?} (available: amd64)"),
            };
            write_executable(&output, bytes)
        }
    }
}

/// Static mode: settles the user from the account files of the image as it
/// was before any harden run (the only step that reads layer content).
fn static_account(
    image: &image::Image,
    settings: &rewrite::Settings,
) -> Result<(rewrite::Account, Vec<layer::LayerEntry>)> {
    let base = rewrite::unharden(image)?;
    let files = rootfs::read_files(&base, &["etc/passwd", "etc/group"])?;
    let config = base.config_json()?;
    let user = config
        .pointer("/config/User")
        .and_then(|u| u.as_str())
        .unwrap_or("");
    rewrite::plan_static(settings, user, files[0].as_ref(), files[1].as_ref())
}

fn write_executable(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o755))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
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
}
