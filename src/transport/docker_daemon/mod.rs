//! The `docker-daemon:` transport: an image in a Docker Engine, over its API
//! (dockerd, or podman's Docker-compatible service). Reading streams
//! `GET /images/{name}/get` (the `docker save` format) into a temp file and
//! reads it as a docker-archive, or as the OCI layout inside it that
//! Docker's containerd image store writes; writing streams the archive
//! writer's output into `POST /images/load` through a pipe, so no archive is
//! written to disk.
//!
//! The engine is the one the docker CLI talks to: `DOCKER_HOST` (default
//! `unix:///var/run/docker.sock`; `tcp://HOST:PORT`, with TLS from
//! `DOCKER_CERT_PATH` when `DOCKER_TLS_VERIFY` is set).

use super::docker_archive;
use super::oci_layout;
use super::reference::Select;
use super::store::Store;
use super::written::Written;
use crate::digest::Digest;
use crate::exit::{AuthError, NotFound};
use crate::image::{Content, Image};
use crate::registry::runtime;
use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How long a request may wait for the engine to answer at all; the
/// transfers themselves take as long as they take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An engine API endpoint, as `DOCKER_HOST` names it.
struct Engine {
    http: reqwest::Client,
    /// The URL requests are made against (`http://docker` for a socket).
    base: String,
    /// `DOCKER_HOST` as given, for messages.
    host: String,
}

impl Engine {
    fn from_env() -> Result<Engine> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        Engine::at(host)
    }

    /// The engine `host` names, as DOCKER_HOST does.
    fn at(host: String) -> Result<Engine> {
        // reqwest's TLS needs a provider even for a socket: ring, as for
        // registries (pure Rust and C, builds static everywhere).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        let (builder, base) = if let Some(path) = host.strip_prefix("unix://") {
            (
                builder.unix_socket(PathBuf::from(path)),
                "http://docker".to_string(),
            )
        } else if let Some(addr) = host.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            match std::env::var("DOCKER_TLS_VERIFY") {
                Ok(v) if !v.is_empty() => (tls(builder)?, format!("https://{addr}")),
                _ => (builder, format!("http://{addr}")),
            }
        } else {
            bail!("DOCKER_HOST={host}: harden reaches an engine at unix://PATH or tcp://HOST:PORT");
        };
        let http = builder
            .build()
            .context("cannot set up the engine's HTTP client")?;
        Ok(Engine { http, base, host })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The engine's answer, or an error naming the engine and what it said
    /// (its JSON `message`); `missing` is the error for a 404.
    async fn check(&self, r: reqwest::Result<Response>, missing: &str) -> Result<Response> {
        let r = r.map_err(|e| self.unreachable(&e))?;
        let status = r.status();
        if status.is_success() {
            return Ok(r);
        }
        let body = r.text().await.unwrap_or_default();
        let said = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.trim().to_string());
        match status {
            StatusCode::NOT_FOUND => Err(NotFound(format!("{missing} ({said})")).into()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(AuthError(format!("the engine at {} refused: {said}", self.host)).into())
            }
            _ => bail!("the engine at {} answered {status}: {said}", self.host),
        }
    }

    /// Why the engine could not be reached, from the I/O error under `e`.
    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<io::Error>() {
                let host = &self.host;
                return match io.kind() {
                    io::ErrorKind::PermissionDenied => AuthError(format!(
                        "permission denied on {host}: run as a user the engine's socket \
                         allows (root, or a member of its group)"
                    ))
                    .into(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                        anyhow::anyhow!(
                            "no engine answers at {host} ({io}): is it running? \
                             (DOCKER_HOST names another)"
                        )
                    }
                    _ => anyhow::anyhow!("cannot reach the engine at {host}: {io}"),
                };
            }
            cause = c.source();
        }
        anyhow::anyhow!("cannot reach the engine at {}: {e}", self.host)
    }

    /// Whether the engine keeps images in containerd's store (Docker 29's
    /// default, 24+ with the `containerd-snapshotter` feature): its image ID
    /// is then a manifest's digest, not the config's.
    async fn containerd_store(&self) -> Result<bool> {
        let missing = format!("the engine at {} has no info endpoint", self.host);
        let info = self.get_json("/info", &missing, "info").await?;
        let status = info["DriverStatus"].as_array().into_iter().flatten();
        Ok(status
            .filter_map(|pair| Some((pair.get(0)?.as_str()?, pair.get(1)?.as_str()?)))
            .any(|pair| pair == ("driver-type", "io.containerd.snapshotter.v1")))
    }

    /// The image ID (config or manifest digest) the engine has under `name`.
    async fn image_id(&self, name: &str) -> Result<String> {
        let path = format!("/images/{}/json", path_segment(name));
        let missing = format!("the engine at {} has no image {name}", self.host);
        let info = self.get_json(&path, &missing, "image inspect").await?;
        info["Id"]
            .as_str()
            .map(str::to_string)
            .context("the engine's image inspect has no Id")
    }

    /// The JSON answer to `GET path` (`what` it is, for messages).
    async fn get_json(&self, path: &str, missing: &str, what: &str) -> Result<Value> {
        let r = self
            .check(self.http.get(self.url(path)).send().await, missing)
            .await?;
        let body = r
            .bytes()
            .await
            .with_context(|| format!("reading the engine's {what}"))?;
        serde_json::from_slice(&body).with_context(|| format!("the engine's {what} is not JSON"))
    }
}

/// The client certificate and CA of `DOCKER_CERT_PATH` (default
/// `~/.docker`), as the docker CLI reads them for `DOCKER_TLS_VERIFY`.
fn tls(builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
    let dir = match std::env::var_os("DOCKER_CERT_PATH").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"),
    };
    let read = |f: &str| {
        let path = dir.join(f);
        std::fs::read(&path)
            .with_context(|| format!("DOCKER_TLS_VERIFY: cannot read {}", path.display()))
    };
    let ca = reqwest::Certificate::from_pem(&read("ca.pem")?).context("ca.pem")?;
    let mut identity = read("cert.pem")?;
    identity.extend_from_slice(&read("key.pem")?);
    let identity = reqwest::Identity::from_pem(&identity).context("cert.pem and key.pem")?;
    Ok(builder.tls_certs_only([ca]).identity(identity))
}

/// `name` as one path segment of the API (`/` and `:` stay, as the docker
/// CLI sends them; the engine's router takes the rest of the path).
fn path_segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'/' | b':' | b'@' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Reads the image the engine has as `name`: its `docker save` stream,
/// spooled to a temp file (removed with the image, or on Ctrl-C), and
/// checked to be the image the engine names so. An engine's image ID is the
/// digest of its config, or, in Docker's containerd image store, of its
/// manifest or index: that archive is an OCI layout (with a manifest.json
/// for older readers) whose index.json names it, and is read as one, every
/// platform it holds.
pub fn read(name: &str) -> Result<Content> {
    read_from(&Engine::from_env()?, name)
}

fn read_from(engine: &Engine, name: &str) -> Result<Content> {
    let (id, spooled) = runtime().block_on(async {
        let id = engine.image_id(name).await?;
        // By ID: the image inspected, even if the name moves meanwhile.
        let url = engine.url(&format!("/images/{}/get", path_segment(&id)));
        let missing = format!("the engine at {} has no image {id}", engine.host);
        let mut r = engine
            .check(engine.http.get(url).send().await, &missing)
            .await?;
        // Into a temp file as the chunks come (the archive reader seeks),
        // made once the engine has answered.
        let mut spooled = crate::interrupt::temp_file("harden-input-")?;
        let spool = spooled.as_file_mut();
        while let Some(chunk) = r.chunk().await.context("reading the engine's archive")? {
            spool
                .write_all(&chunk)
                .context("spooling the engine's archive")?;
        }
        anyhow::Ok((id, spooled))
    })?;
    let store = Store::tar_spooled(spooled, Path::new("the engine's archive"))?;
    let digest = Digest::parse(&id).context("the engine's image ID")?;
    // An archive of an image ID names no tag: the name asked for is its name.
    let named = |image: &mut Image| {
        image.name.get_or_insert_with(|| name.to_string());
    };
    if let Some(mut content) = oci_layout::read_digest(&store, &digest)? {
        match &mut content {
            Content::Image(image) => named(image),
            Content::Index(index) => index.entries.iter_mut().for_each(|e| named(&mut e.image)),
        }
        return Ok(content);
    }
    let mut image = docker_archive::read(&store, &Select::Only)?;
    if image.config_digest() != digest {
        bail!(
            "the engine sent image {}, not the {id} it has as {name}",
            image.config_digest()
        );
    }
    named(&mut image);
    Ok(Content::Image(image))
}

/// Loads `image` into the engine as `name` (NAME:TAG): the archive is
/// written into a pipe that is the request's body. The engine tags an image
/// only once it has read the whole archive, whose manifest.json comes last:
/// a write that fails ends the request with an error, and no tag is made.
/// Into containerd's store the archive has an OCI layout inside, whose
/// manifest the engine keeps: the image ID is then that manifest's digest.
pub fn write(image: &Image, name: &str) -> Result<Written> {
    write_to(&Engine::from_env()?, image, name)
}

/// The archive an engine keeps the image of as written: one with an OCI
/// layout inside for containerd's store (which then keeps harden's manifest).
fn archive_layout(containerd_store: bool) -> docker_archive::Layout {
    match containerd_store {
        true => docker_archive::Layout::OciInside,
        false => docker_archive::Layout::Legacy,
    }
}

fn write_to(engine: &Engine, image: &Image, name: &str) -> Result<Written> {
    let layout = archive_layout(runtime().block_on(engine.containerd_store())?);
    let (pipe_out, pipe_in) = io::pipe().context("cannot make a pipe")?;
    // 1 MiB in flight instead of 64 KiB: fewer wake-ups of each side. Only
    // a cost saved; the default works.
    // SAFETY: fcntl on a descriptor this function owns.
    unsafe { libc::fcntl(pipe_in.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    let (done, finished) = tokio::sync::oneshot::channel::<std::result::Result<(), String>>();
    let (written, loaded) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            let result = docker_archive::write_stream(
                image,
                File::from(OwnedFd::from(pipe_in)),
                name,
                layout,
            );
            let _ = done.send(result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
            result
        });
        let loaded = runtime().block_on(async {
            let archive = tokio::fs::File::from_std(File::from(OwnedFd::from(pipe_out)));
            // After the archive's last byte: fail the body when the writer
            // failed, so the engine sees a broken request, not an archive.
            let end = stream::once(async move {
                match finished.await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(Err(io::Error::other(e))),
                    Err(_) => Some(Err(io::Error::other("the archive writer stopped"))),
                }
            })
            .filter_map(|end| async move { end });
            let body = tokio_util::io::ReaderStream::with_capacity(archive, 256 << 10).chain(end);
            let request = engine
                .http
                .post(engine.url("/images/load?quiet=1"))
                .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await;
            let r = engine
                .check(
                    request,
                    &format!("the engine at {} has no load endpoint", engine.host),
                )
                .await?;
            let said = r
                .text()
                .await
                .context("reading the engine's answer to the load")?;
            load_outcome(&said)
        });
        (writer.join(), loaded)
    });
    let Ok(written) = written else {
        bail!("the archive writer panicked")
    };
    // A writer that failed is the cause of what the engine says, unless
    // it failed because the request ended first (the pipe's reader gone).
    let reader_gone = |e: &anyhow::Error| {
        e.chain()
            .filter_map(|c| c.downcast_ref::<io::Error>())
            .any(|io| io.kind() == io::ErrorKind::BrokenPipe)
    };
    let manifest_digest = match (written, loaded) {
        (Err(w), Err(l)) if reader_gone(&w) => return Err(l),
        (Err(w), _) => return Err(w.context("writing the archive for the engine")),
        (Ok(_), Err(l)) => {
            return Err(l.context(format!(
                "the engine at {} did not load the image",
                engine.host
            )))
        }
        (Ok(manifest), Ok(())) => manifest,
    };
    let id = runtime().block_on(engine.image_id(name))?;
    let want = manifest_digest
        .clone()
        .unwrap_or_else(|| image.config_digest());
    if id != want.as_str() {
        bail!("the engine has {id} as {name} after the load, not the {want} harden wrote");
    }
    Ok(Written {
        destination: format!("docker-daemon:{name}"),
        manifest_digest: manifest_digest.map(|d| d.to_string()),
        image_id: Some(image.config_digest().to_string()),
        blobs: None,
    })
}

/// Whether the load's answer (a stream of JSON messages; an error comes
/// with status 200, as `{"error": ...}`) says an image was loaded.
fn load_outcome(said: &str) -> Result<()> {
    let messages: Vec<Value> = serde_json::Deserializer::from_str(said)
        .into_iter::<Value>()
        .filter_map(|m| m.ok())
        .collect();
    if let Some(error) = messages.iter().find_map(|m| {
        m["errorDetail"]["message"]
            .as_str()
            .or(m["error"].as_str())
            .map(str::to_string)
    }) {
        bail!("{error}");
    }
    let loaded = messages
        .iter()
        .filter_map(|m| m["stream"].as_str())
        .any(|s| s.contains("Loaded image"));
    if !loaded {
        bail!("its answer names no loaded image: {}", said.trim());
    }
    Ok(())
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::testing::TestEngine;
    use super::*;
    use crate::image::Family;
    use crate::transport::testing::image;

    /// The archive `docker save` of `image` sends, and the ID the engine has it as.
    fn saved(image: &Image, name: &str, containerd_store: bool) -> (Vec<u8>, String) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let layout = archive_layout(containerd_store);
        let manifest =
            docker_archive::write_stream(image, file.reopen().unwrap(), name, layout).unwrap();
        let id = manifest.unwrap_or_else(|| image.config_digest());
        (std::fs::read(file.path()).unwrap(), id.to_string())
    }

    fn engine(e: &TestEngine) -> Engine {
        Engine::at(e.host.clone()).unwrap()
    }

    #[test]
    fn either_store_is_read_and_written() {
        for containerd_store in [false, true] {
            let fake = TestEngine::start(containerd_store);
            let source = image(Family::Docker, &[("a", b"one"), ("b", b"two")]);
            let (archive, id) = saved(&source, "example/t:1", containerd_store);
            fake.add("example/t:1", &id, archive);

            let Content::Image(read) = read_from(&engine(&fake), "example/t:1").unwrap() else {
                panic!("an index");
            };
            assert_eq!(read.config, source.config);
            assert_eq!(read.name.as_deref(), Some("example/t:1"));
            let manifest = read.manifest_digest.as_ref().map(Digest::to_string);
            assert_eq!(manifest.is_some(), containerd_store, "{manifest:?}");

            let written = write_to(&engine(&fake), &read, "example/t:2").unwrap();
            assert_eq!(written.image_id, Some(source.config_digest().to_string()));
            let loaded = fake.state.lock().unwrap().names["example/t:2"].clone();
            let want = match containerd_store {
                true => written.manifest_digest.clone().unwrap(),
                false => source.config_digest().to_string(),
            };
            assert_eq!(loaded, want);
            let Content::Image(back) = read_from(&engine(&fake), "example/t:2").unwrap() else {
                panic!("an index");
            };
            assert_eq!(back.config, source.config);
        }
    }

    #[test]
    fn an_archive_of_another_image_is_refused() {
        let fake = TestEngine::start(false);
        let (a, b) = (
            image(Family::Docker, &[("a", b"one")]),
            image(Family::Docker, &[("b", b"two")]),
        );
        let (archive, _) = saved(&b, "t:1", false);
        fake.add("t:1", a.config_digest().as_str(), archive);
        let e = read_from(&engine(&fake), "t:1").unwrap_err();
        assert!(format!("{e:#}").contains("the engine sent image"), "{e:#}");
    }

    #[test]
    fn a_load_the_engine_refuses_is_an_error_and_no_tag() {
        let fake = TestEngine::start(true);
        fake.state.lock().unwrap().load_answer = Some("unexpected EOF".into());
        let source = image(Family::Oci, &[("a", b"one")]);
        let e = write_to(&engine(&fake), &source, "t:1").unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("did not load") && e.contains("unexpected EOF"),
            "{e}"
        );
        assert!(fake.state.lock().unwrap().names.is_empty());
    }

    #[test]
    fn a_missing_image_and_a_missing_engine_are_named() {
        let fake = TestEngine::start(false);
        let e = read_from(&engine(&fake), "ghost:1").unwrap_err();
        assert!(e.downcast_ref::<NotFound>().is_some(), "{e:#}");
        assert!(format!("{e:#}").contains("No such image: ghost:1"), "{e:#}");
        let gone = Engine::at("unix:///nonexistent/engine.sock".into()).unwrap();
        let e = read_from(&gone, "t:1").unwrap_err();
        assert!(format!("{e:#}").contains("no engine answers at"), "{e:#}");
    }

    #[test]
    fn load_answers() {
        assert!(load_outcome("{\"stream\":\"Loaded image: aws:v1\\n\"}\n").is_ok());
        // podman's compat API says it in one message, without a newline.
        assert!(load_outcome("{\"stream\":\"Loaded image: localhost/aws:v1\"}").is_ok());
        let e = load_outcome(
            "{\"errorDetail\":{\"message\":\"unexpected EOF\"},\"error\":\"unexpected EOF\"}",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "unexpected EOF");
        assert!(load_outcome("").is_err());
        assert!(load_outcome("{\"stream\":\"Open manifest.json\"}").is_err());
    }

    #[test]
    fn names_are_one_segment() {
        assert_eq!(
            path_segment("localhost:5000/a/b:v1"),
            "localhost:5000/a/b:v1"
        );
        assert_eq!(path_segment("a b?#"), "a%20b%3F%23");
    }
}
