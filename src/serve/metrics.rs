//! serve's counters, as Prometheus' text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    /// Requests answered, by route kind and status.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub response_bytes: AtomicU64,
    /// Responses whose client left before the whole body was sent.
    pub cut: AtomicU64,
    pub in_flight: AtomicI64,
    /// Upstream manifests read and hardened (cache misses).
    pub hardened: AtomicU64,
    /// Manifest requests answered from the cache.
    pub cache_hits: AtomicU64,
    /// Requests that failed because of the upstream (its errors, or none reachable).
    pub upstream_errors: AtomicU64,
}

impl Metrics {
    pub fn count(&self, route: &'static str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route, status)).or_default() += 1;
    }

    /// The text exposition; `cache` is (results, bytes) held.
    pub fn render(&self, cache: (usize, usize)) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for line in lines {
                let _ = writeln!(out, "{name}{line}");
            }
        };
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        metric(
            "harden_serve_requests_total",
            "counter",
            "Requests answered, by route and HTTP status.",
            requests
                .iter()
                .map(|((route, status), n)| {
                    format!("{{route=\"{route}\",status=\"{status}\"}} {n}")
                })
                .collect(),
        );
        let get = |a: &AtomicU64| vec![format!(" {}", a.load(Ordering::Relaxed))];
        metric(
            "harden_serve_response_bytes_total",
            "counter",
            "Bytes of response bodies sent.",
            get(&self.response_bytes),
        );
        metric(
            "harden_serve_responses_cut_total",
            "counter",
            "Responses whose client went away before the end of the body.",
            get(&self.cut),
        );
        metric(
            "harden_serve_in_flight_requests",
            "gauge",
            "Requests being answered.",
            vec![format!(" {}", self.in_flight.load(Ordering::Relaxed))],
        );
        metric(
            "harden_serve_hardened_total",
            "counter",
            "Upstream manifests read and hardened (cache misses).",
            get(&self.hardened),
        );
        metric(
            "harden_serve_cache_hits_total",
            "counter",
            "Manifest requests answered from the cache.",
            get(&self.cache_hits),
        );
        metric(
            "harden_serve_upstream_errors_total",
            "counter",
            "Requests that failed at the upstream registry.",
            get(&self.upstream_errors),
        );
        metric(
            "harden_serve_cache_entries",
            "gauge",
            "Hardened results held.",
            vec![format!(" {}", cache.0)],
        );
        metric(
            "harden_serve_cache_bytes",
            "gauge",
            "Bytes of hardened manifests, configs and layers held.",
            vec![format!(" {}", cache.1)],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_format() {
        let m = super::Metrics::default();
        m.count("manifest", 200);
        m.count("manifest", 200);
        m.count("blob", 404);
        let text = m.render((1, 42));
        assert!(text.contains("harden_serve_requests_total{route=\"manifest\",status=\"200\"} 2\n"));
        assert!(text.contains("harden_serve_requests_total{route=\"blob\",status=\"404\"} 1\n"));
        assert!(
            text.contains("# TYPE harden_serve_cache_bytes gauge\nharden_serve_cache_bytes 42\n")
        );
    }
}
