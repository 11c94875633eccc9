//! An in-memory distribution registry on 127.0.0.1, for the unit tests of
//! the registry client (as go-containerregistry tests `remote.Write`
//! against `registry.New()`): manifests, blobs, monolithic and chunked
//! uploads, cross-repository mounts, and a log of every request. The
//! integration tests use the real CNCF registry (tests/registry.rs).

use super::client::Access;
use super::pool::{runtime, Registries};
use crate::digest::Digest;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Store {
    /// (repository, digest) → bytes
    pub blobs: HashMap<(String, String), Vec<u8>>,
    /// (repository, tag or digest) → (media type, bytes)
    pub manifests: HashMap<(String, String), (String, Vec<u8>)>,
    uploads: HashMap<String, Vec<u8>>,
    /// `METHOD PATH` of every request, in order.
    pub log: Vec<String>,
}

pub struct TestRegistry {
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub store: Arc<Mutex<Store>>,
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        let store = Arc::new(Mutex::new(Store::default()));
        let listener = runtime().block_on(tokio::net::TcpListener::bind("127.0.0.1:0"));
        let listener = listener.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = store.clone();
        runtime().spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(store.clone(), req));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        TestRegistry { addr, store }
    }

    /// The registries of a run whose only destination is this registry.
    pub fn registries(&self) -> Registries {
        let access = Access {
            plain_http: true,
            ..Access::default()
        };
        Registries::new(access.clone(), access, &[]).unwrap()
    }

    pub fn log(&self) -> Vec<String> {
        self.store.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.store.lock().unwrap().log.clear();
    }
}

fn reply(status: u16, headers: &[(&str, String)], body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.header("Content-Length", body.len())
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn answer(
    store: Arc<Mutex<Store>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec());
    let body = body.unwrap_or_default();
    let mut s = store.lock().unwrap();
    s.log.push(format!("{method} {path}"));
    let head = method == "HEAD";
    let content = |bytes: &[u8], media_type: &str, digest: &str| {
        let headers = [
            ("Content-Type", media_type.to_string()),
            ("Docker-Content-Digest", digest.to_string()),
        ];
        match head {
            true => {
                let mut r = reply(200, &headers, Vec::new());
                r.headers_mut().insert("Content-Length", bytes.len().into());
                r
            }
            false => reply(200, &headers, bytes.to_vec()),
        }
    };
    let not_found = || reply(404, &[], br#"{"errors":[{"code":"NOT_FOUND"}]}"#.to_vec());
    if path == "/v2/" {
        return Ok(reply(200, &[], b"{}".to_vec()));
    }
    let rest = path.strip_prefix("/v2/").unwrap_or("");
    let response = if let Some((name, reference)) = rest.split_once("/manifests/") {
        let key = (name.to_string(), reference.to_string());
        match method.as_str() {
            "PUT" => {
                let digest = Digest::of(&body).to_string();
                let media_type = String::from("application/json");
                s.manifests.insert(key, (media_type.clone(), body.clone()));
                s.manifests
                    .insert((name.to_string(), digest.clone()), (media_type, body));
                reply(201, &[("Docker-Content-Digest", digest)], Vec::new())
            }
            _ => match s.manifests.get(&key) {
                Some((mt, bytes)) => {
                    let mt = serde_json::from_slice::<serde_json::Value>(bytes)
                        .ok()
                        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
                        .unwrap_or_else(|| mt.clone());
                    content(bytes, &mt, Digest::of(bytes).as_str())
                }
                None => not_found(),
            },
        }
    } else if let Some((name, upload)) = rest.split_once("/blobs/uploads/") {
        let location = |id: &str| format!("/v2/{name}/blobs/uploads/{id}");
        match method.as_str() {
            "POST" => {
                let mounted = match (query.get("mount"), query.get("from")) {
                    (Some(d), Some(from)) => s.blobs.get(&(from.clone(), d.clone())).cloned(),
                    _ => None,
                };
                match mounted {
                    Some(bytes) => {
                        let d = query["mount"].clone();
                        s.blobs.insert((name.to_string(), d), bytes);
                        reply(201, &[], Vec::new())
                    }
                    None => {
                        let id = format!("u{}", s.log.len());
                        s.uploads.insert(id.clone(), Vec::new());
                        reply(202, &[("Location", location(&id))], Vec::new())
                    }
                }
            }
            "PATCH" => match s.uploads.get_mut(upload) {
                Some(data) => {
                    data.extend_from_slice(&body);
                    let range = format!("0-{}", data.len().saturating_sub(1));
                    reply(
                        202,
                        &[("Location", location(upload)), ("Range", range)],
                        Vec::new(),
                    )
                }
                None => not_found(),
            },
            "PUT" => match s.uploads.remove(upload) {
                Some(mut data) => {
                    data.extend_from_slice(&body);
                    let wanted = query.get("digest").cloned().unwrap_or_default();
                    if Digest::of(&data).as_str() != wanted {
                        reply(
                            400,
                            &[],
                            br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#.to_vec(),
                        )
                    } else {
                        s.blobs.insert((name.to_string(), wanted), data);
                        reply(201, &[], Vec::new())
                    }
                }
                None => not_found(),
            },
            "DELETE" => {
                s.uploads.remove(upload);
                reply(204, &[], Vec::new())
            }
            _ => reply(405, &[], Vec::new()),
        }
    } else if let Some((name, digest)) = rest.split_once("/blobs/") {
        match s.blobs.get(&(name.to_string(), digest.to_string())) {
            Some(bytes) => content(bytes, "application/octet-stream", digest),
            None => not_found(),
        }
    } else {
        not_found()
    };
    Ok(response)
}
