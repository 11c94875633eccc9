//! The upstream registries serve reads from, by the name that is the first
//! component of a repository path (`/v2/NAME/REPOSITORY/…`).

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The first path component clients use (`docker.io`, `ghcr.io`, `local`).
    pub name: String,
    /// The registry host references name (`docker.io` for Docker Hub, whose
    /// API the registry client finds at registry-1.docker.io).
    pub host: String,
    /// `http://` given: plain HTTP to this upstream.
    pub plain_http: bool,
}

/// `--upstream NAME[=URL]`: NAME alone is the registry of that host name
/// over HTTPS; URL is `https://HOST[:PORT]` or `http://HOST[:PORT]`.
pub fn parse(arg: &str) -> Result<Upstream> {
    let (name, url) = match arg.split_once('=') {
        Some((name, url)) => (name, url.trim_end_matches('/')),
        None => (arg, arg),
    };
    let plain_http = url.starts_with("http://");
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host_like = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    if !host_like(name) || name.contains(['[', ']']) {
        bail!("--upstream {arg:?}: {name:?} is not a name for a path component (letters, digits, . - :)");
    }
    if !host_like(host) {
        bail!("--upstream {arg:?}: {url:?} is not https://HOST[:PORT] or http://HOST[:PORT]");
    }
    let host = match host {
        // Docker Hub's API host; credentials and references call it docker.io.
        "registry-1.docker.io" | "index.docker.io" => "docker.io",
        h => h,
    };
    Ok(Upstream {
        name: name.to_string(),
        host: host.to_string(),
        plain_http,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        let u = parse("docker.io=https://registry-1.docker.io").unwrap();
        assert_eq!(
            (u.name.as_str(), u.host.as_str()),
            ("docker.io", "docker.io")
        );
        assert!(!u.plain_http);
        let u = parse("local=http://127.0.0.1:5000/").unwrap();
        assert_eq!(
            (u.name.as_str(), u.host.as_str()),
            ("local", "127.0.0.1:5000")
        );
        assert!(u.plain_http);
        let u = parse("ghcr.io").unwrap();
        assert_eq!(u.host, "ghcr.io");
        assert!(parse("a/b=https://x").is_err());
        assert!(parse("x=https://h/path").is_err());
        assert!(parse("=https://h").is_err());
    }
}
