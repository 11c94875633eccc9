//! What a request to `harden serve` asks for, from its method and path:
//! the read side of the distribution API under `/v2/UPSTREAM/REPOSITORY/…`,
//! and `/healthz` and `/metrics`.

use crate::digest::Digest;

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /v2/`: the API version check clients start with.
    Base,
    Manifest {
        name: Name,
        reference: Reference,
    },
    Blob {
        name: Name,
        digest: Digest,
    },
    Tags {
        name: Name,
    },
    Health,
    Metrics,
}

/// `UPSTREAM/REPOSITORY` of a path: which upstream registry (a name the
/// `--upstream` options give) and the repository in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name {
    pub upstream: String,
    pub repository: String,
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.upstream, self.repository)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

/// Why a path is not one serve answers: the distribution error code and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

fn refused(status: u16, code: &'static str, message: String) -> Refused {
    Refused {
        status,
        code,
        message,
    }
}

/// The route of `path` (without the query). Only GET and HEAD exist here:
/// serve is read-only.
pub fn parse(method: &str, path: &str) -> Result<Route, Refused> {
    if method != "GET" && method != "HEAD" {
        return Err(refused(
            405,
            "UNSUPPORTED",
            format!("{method}: harden serve is read-only (GET and HEAD)"),
        ));
    }
    match path {
        "/healthz" => return Ok(Route::Health),
        "/metrics" => return Ok(Route::Metrics),
        "/v2" | "/v2/" => return Ok(Route::Base),
        _ => {}
    }
    let not_found = || refused(404, "NOT_FOUND", format!("{path}: no such API endpoint"));
    let rest = path.strip_prefix("/v2/").ok_or_else(not_found)?;
    let (name, kind, last) = if let Some(name) = rest.strip_suffix("/tags/list") {
        (name, "tags", "")
    } else {
        let (front, last) = rest.rsplit_once('/').ok_or_else(not_found)?;
        let (name, kind) = front.rsplit_once('/').ok_or_else(not_found)?;
        (name, kind, last)
    };
    let name = parse_name(name)?;
    match kind {
        "tags" => Ok(Route::Tags { name }),
        "manifests" => {
            let reference = match Digest::parse(last) {
                Ok(d) => Reference::Digest(d),
                Err(_) if valid_tag(last) => Reference::Tag(last.to_string()),
                Err(_) => {
                    return Err(refused(
                        400,
                        "TAG_INVALID",
                        format!("{last:?} is neither a tag nor a digest"),
                    ))
                }
            };
            Ok(Route::Manifest { name, reference })
        }
        "blobs" => match Digest::parse(last) {
            Ok(digest) => Ok(Route::Blob { name, digest }),
            Err(_) => Err(refused(
                400,
                "DIGEST_INVALID",
                format!("{last:?} is not a digest"),
            )),
        },
        _ => Err(not_found()),
    }
}

/// `UPSTREAM/REPOSITORY`, each component as the distribution spec allows
/// (so nothing odd reaches an upstream URL).
fn parse_name(name: &str) -> Result<Name, Refused> {
    let invalid = |why: &str| {
        refused(
            400,
            "NAME_INVALID",
            format!(
                "{name:?}: {why} (the name is UPSTREAM/REPOSITORY, e.g. docker.io/library/redis)"
            ),
        )
    };
    let (upstream, repository) = name
        .split_once('/')
        .ok_or_else(|| invalid("no repository after the upstream"))?;
    if upstream.is_empty()
        || !upstream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b))
    {
        return Err(invalid("not an upstream name"));
    }
    if name.len() > 255 || !repository.split('/').all(valid_component) {
        return Err(invalid("not a repository name"));
    }
    Ok(Name {
        upstream: upstream.to_string(),
        repository: repository.to_string(),
    })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || b"._-".contains(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(u: &str, r: &str) -> Name {
        Name {
            upstream: u.into(),
            repository: r.into(),
        }
    }

    #[test]
    fn paths_of_the_read_api() {
        assert_eq!(parse("GET", "/v2/"), Ok(Route::Base));
        assert_eq!(parse("GET", "/healthz"), Ok(Route::Health));
        assert_eq!(
            parse("HEAD", "/v2/docker.io/library/redis/manifests/7"),
            Ok(Route::Manifest {
                name: name("docker.io", "library/redis"),
                reference: Reference::Tag("7".into())
            })
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse("GET", &format!("/v2/127.0.0.1:5000/app/blobs/{d}")),
            Ok(Route::Blob {
                name: name("127.0.0.1:5000", "app"),
                digest: Digest::parse(&d).unwrap()
            })
        );
        assert_eq!(
            parse("GET", "/v2/up/a/b/tags/list"),
            Ok(Route::Tags {
                name: name("up", "a/b")
            })
        );
    }

    #[test]
    fn what_is_refused() {
        let status = |m: &str, p: &str| parse(m, p).unwrap_err().status;
        assert_eq!(status("PUT", "/v2/up/a/manifests/1"), 405);
        assert_eq!(status("GET", "/v2/a/manifests/1"), 400);
        assert_eq!(status("GET", "/v2/up/A/manifests/1"), 400);
        assert_eq!(status("GET", "/v2/up/a/../b/manifests/1"), 400);
        assert_eq!(status("GET", "/v2/up/a/manifests/-x"), 400);
        assert_eq!(status("GET", "/v2/up/a/blobs/latest"), 400);
        assert_eq!(status("GET", "/v2/up/a/uploads/x"), 404);
        assert_eq!(status("GET", "/v3/x"), 404);
        assert_eq!(status("GET", "/v2/up%2f/a/manifests/1"), 400);
    }

    #[test]
    fn repository_components() {
        for ok in ["a", "library", "a.b", "a_b", "a__b", "a---b", "0x"] {
            assert!(valid_component(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a___b", "A", "a.-b", ".."] {
            assert!(!valid_component(bad), "{bad}");
        }
    }
}
