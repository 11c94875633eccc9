//! Who may pull from serve: `--htpasswd FILE` (bcrypt entries, as the
//! distribution registry's htpasswd auth takes them) checked against HTTP
//! Basic credentials.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Digests of `user\0password` pairs verified before: bcrypt is slow on
    /// purpose, and a pull is a dozen requests with the same credentials.
    verified: Mutex<HashSet<[u8; 32]>>,
}

/// Verified pairs remembered at most (a bound against a client that
/// cycles through many valid passwords).
const REMEMBERED: usize = 4096;

impl Htpasswd {
    pub fn read(path: &Path) -> Result<Htpasswd> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--htpasswd {}: cannot read it", path.display()))?;
        Htpasswd::parse(&text).with_context(|| format!("--htpasswd {}", path.display()))
    }

    fn parse(text: &str) -> Result<Htpasswd> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                bail!("line {}: not USER:HASH", n + 1);
            };
            if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                bail!(
                    "line {} ({user}): not a bcrypt hash (make it with htpasswd -B)",
                    n + 1
                );
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            bail!("no users");
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether an `Authorization` header value names a user with the right
    /// password. Blocking: bcrypt takes milliseconds (more at a high cost).
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization
            .and_then(|a| a.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            })
        else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            return false;
        };
        let pair: [u8; 32] = Sha256::digest(format!("{user}\0{password}").as_bytes()).into();
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.contains(&pair) {
            return true;
        }
        drop(verified);
        if !bcrypt::verify(&password, hash).unwrap_or(false) {
            return false;
        }
        verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= REMEMBERED {
            verified.clear();
        }
        verified.insert(pair);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    #[test]
    fn basic_credentials_against_bcrypt() {
        let hash = bcrypt::hash_with_salt("s3cret", 4, [7; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let file = Htpasswd::parse(&format!("# users\ntester:{hash}\n")).unwrap();
        assert!(file.allows(Some(&basic("tester:s3cret"))));
        // Remembered: the second time is a set lookup.
        assert!(file.allows(Some(&basic("tester:s3cret"))));
        assert!(!file.allows(Some(&basic("tester:wrong"))));
        assert!(!file.allows(Some(&basic("nobody:s3cret"))));
        assert!(!file.allows(Some("Bearer x")));
        assert!(!file.allows(None));
    }

    #[test]
    fn only_bcrypt_entries() {
        assert!(Htpasswd::parse("u:$apr1$abc$def").is_err());
        assert!(Htpasswd::parse("u:plain").is_err());
        assert!(Htpasswd::parse("\n# nothing\n").is_err());
    }
}
