//! A token server for the distribution registry's `token` auth: the bearer
//! flow of Docker Hub, GHCR, Quay and Harbor. It checks basic credentials
//! (tester / s3cret), grants what was asked to them and nothing to anonymous
//! callers, and signs ES256 JWTs with a self-signed certificate that the
//! registry trusts (x5c header). Every scope asked for is recorded.

use super::{cmd, scratch, sh};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub const SERVICE: &str = "harden-test";
pub const ISSUER: &str = "harden-test-issuer";

pub type TokenRequest = (String, Vec<String>);

pub struct TokenServer {
    pub addr: String,
    /// The signing certificate, for the registry's rootcertbundle.
    pub cert: PathBuf,
    /// `(account, scopes)` per token request.
    pub requests: Arc<Mutex<Vec<TokenRequest>>>,
}

impl TokenServer {
    pub fn start(name: &str) -> TokenServer {
        let dir = scratch(&format!("tokens-{name}"));
        let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
        let mut c = cmd(
            "openssl",
            &["req", "-x509", "-days", "2", "-nodes", "-subj", "/CN=token"],
        );
        c.args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
        c.args([
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        sh(c);
        let der_path = dir.join("cert.der");
        sh(cmd(
            "openssl",
            &[
                "x509",
                "-in",
                cert.to_str().unwrap(),
                "-outform",
                "DER",
                "-out",
                der_path.to_str().unwrap(),
            ],
        ));
        let x5c = STANDARD.encode(std::fs::read(&der_path).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (key, x5c, log) = (key.clone(), x5c.clone(), log.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut out = stream;
                    let mut first = String::new();
                    let mut authorization = None;
                    reader.read_line(&mut first).unwrap();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("authorization") {
                                authorization = Some(v.trim().to_string());
                            }
                        }
                    }
                    let path = first.split(' ').nth(1).unwrap_or("");
                    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
                    let scopes: Vec<String> = query
                        .split('&')
                        .filter_map(|kv| kv.strip_prefix("scope="))
                        .map(percent_decode)
                        .collect();
                    let account = authorization
                        .as_deref()
                        .and_then(|a| a.strip_prefix("Basic "))
                        .and_then(|b| STANDARD.decode(b).ok())
                        .map(|b| String::from_utf8_lossy(&b).into_owned());
                    log.lock()
                        .unwrap()
                        .push((account.clone().unwrap_or_default(), scopes.clone()));
                    let response = match account.as_deref() {
                        Some("tester:s3cret") => {
                            let body = format!(r#"{{"token":"{}"}}"#, sign(&key, &x5c, &scopes));
                            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                        }
                        Some(_) => "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                        // Anonymous callers get a token that grants nothing.
                        None => {
                            let body = format!(r#"{{"token":"{}"}}"#, sign(&key, &x5c, &[]));
                            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                        }
                    };
                    let _ = out.write_all(response.as_bytes());
                });
            }
        });
        TokenServer {
            addr,
            cert,
            requests,
        }
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn scopes_asked(&self) -> Vec<Vec<String>> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An ES256 JWT granting `scopes` (`repository:NAME:ACTIONS`).
fn sign(key: &std::path::Path, x5c: &str, scopes: &[String]) -> String {
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "tester", "aud": SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let der = {
        let mut c = std::process::Command::new("openssl");
        c.args(["dgst", "-sha256", "-sign", key.to_str().unwrap()]);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().stdout
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(der_to_raw(&der)))
}

/// A DER ECDSA signature (SEQUENCE of two INTEGERs) as JOSE's 64-byte r||s.
fn der_to_raw(der: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 2; // SEQUENCE tag and (short) length
    for _ in 0..2 {
        assert_eq!(der[i], 0x02, "INTEGER");
        let len = der[i + 1] as usize;
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        out.extend(std::iter::repeat_n(0, 32 - int.len()));
        out.extend_from_slice(int);
        i += 2 + len;
    }
    out
}
