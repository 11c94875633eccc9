//! A Docker Engine API in the same process, on a unix socket, for the unit
//! tests of the engine client: image inspect, export, load and info, as
//! dockerd answers them with its classic store (an image ID is the config's
//! digest) or its containerd image store (the manifest's). The integration
//! tests use real engines (tests/daemon.rs).

use crate::digest::Digest;
use crate::registry::runtime;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct State {
    pub containerd_store: bool,
    /// Name (or ID) → image ID.
    pub names: HashMap<String, String>,
    /// Image ID → the archive its export sends.
    pub archives: HashMap<String, Vec<u8>>,
    /// What the next load answers instead of loading (an error message).
    pub load_answer: Option<String>,
}

pub struct TestEngine {
    /// `unix://PATH`, as DOCKER_HOST names it.
    pub host: String,
    pub state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
}

impl TestEngine {
    pub fn start(containerd_store: bool) -> TestEngine {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("engine.sock");
        let state = Arc::new(Mutex::new(State {
            containerd_store,
            ..State::default()
        }));
        let listener = {
            let _guard = runtime().enter();
            tokio::net::UnixListener::bind(&socket).expect("bind the engine's socket")
        };
        let shared = state.clone();
        runtime().spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(state.clone(), req));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        TestEngine {
            host: format!("unix://{}", socket.display()),
            state,
            _dir: dir,
        }
    }

    /// Makes `archive` the engine's image `id`, named `name`.
    pub fn add(&self, name: &str, id: &str, archive: Vec<u8>) {
        let mut state = self.state.lock().unwrap();
        state.names.insert(name.to_string(), id.to_string());
        state.archives.insert(id.to_string(), archive);
    }
}

fn reply(status: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn message(status: u16, text: &str) -> Response<Full<Bytes>> {
    reply(status, json!({ "message": text }).to_string().into_bytes())
}

async fn answer(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut state = state.lock().unwrap();
    let image = |suffix: &str| {
        path.strip_prefix("/images/")
            .and_then(|p| p.strip_suffix(suffix))
            .map(str::to_string)
    };
    Ok(match (method, image("/json"), image("/get")) {
        (Method::GET, _, _) if path == "/info" => {
            let driver = match state.containerd_store {
                true => json!([["driver-type", "io.containerd.snapshotter.v1"]]),
                false => json!([["Backing Filesystem", "extfs"]]),
            };
            reply(
                200,
                json!({ "DriverStatus": driver }).to_string().into_bytes(),
            )
        }
        (Method::GET, Some(name), _) => match state.names.get(&name) {
            Some(id) => reply(200, json!({ "Id": id }).to_string().into_bytes()),
            None => message(404, &format!("No such image: {name}")),
        },
        (Method::GET, _, Some(id)) => match state.archives.get(&id) {
            Some(archive) => reply(200, archive.clone()),
            None => message(404, &format!("No such image: {id}")),
        },
        (Method::POST, _, _) if path == "/images/load" => match state.load_answer.take() {
            Some(error) => reply(200, json!({ "error": error }).to_string().into_bytes()),
            None => {
                let (name, id) = load(&body, state.containerd_store);
                state.names.insert(name.clone(), id.clone());
                state.archives.insert(id, body.to_vec());
                let said = json!({ "stream": format!("Loaded image: {name}\n") });
                reply(200, said.to_string().into_bytes())
            }
        },
        _ => message(404, "page not found"),
    })
}

/// The name and the ID an engine gives the image of `archive`: the
/// config's digest, or in the containerd store the manifest index.json names.
fn load(archive: &[u8], containerd_store: bool) -> (String, String) {
    let mut members = HashMap::new();
    for entry in tar::Archive::new(archive).entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        members.insert(name, bytes);
    }
    let json = |name: &str| -> Value { serde_json::from_slice(&members[name]).unwrap() };
    let manifest = json("manifest.json");
    let name = manifest[0]["RepoTags"][0].as_str().unwrap().to_string();
    let id = match containerd_store {
        true => json("index.json")["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string(),
        false => Digest::of(&members[manifest[0]["Config"].as_str().unwrap()]).to_string(),
    };
    (name, id)
}
