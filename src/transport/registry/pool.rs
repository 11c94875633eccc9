//! The registries of one run and the async runtime they share.

use super::client::{Access, Registry};
use super::repo::Repo;
use anyhow::Result;
use oci_spec::distribution::Reference;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// One runtime for the whole process; the file transports stay synchronous
/// and call in with `block_on`.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot start the async runtime")
    })
}

/// The registries of one run: one client (and one token) per host, so that a
/// copy within a registry can mount blobs across repositories.
pub struct Registries {
    source: Access,
    hosts: Mutex<HashMap<String, Arc<Registry>>>,
}

impl Registries {
    /// The hosts of `dests` get the destination's access settings; every
    /// other host the source's. A copy within one registry uses one client,
    /// with the destination's credentials.
    pub fn new(source: Access, dest: Access, dests: &[&Reference]) -> Result<Registries> {
        // ring: pure Rust and C without cmake, builds static everywhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let regs = Registries {
            source,
            hosts: Mutex::new(HashMap::new()),
        };
        for r in dests {
            if !regs.lock().contains_key(r.registry()) {
                let registry = Arc::new(Registry::new(r.registry(), dest.clone())?);
                regs.lock().insert(r.registry().to_string(), registry);
            }
        }
        Ok(regs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Registry>>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn repo(&self, r: &Reference) -> Result<Repo> {
        let mut hosts = self.lock();
        let registry = match hosts.get(r.registry()) {
            Some(reg) => reg.clone(),
            None => {
                let reg = Arc::new(Registry::new(r.registry(), self.source.clone())?);
                hosts.insert(r.registry().to_string(), reg.clone());
                reg
            }
        };
        Ok(Repo {
            registry,
            name: r.repository().to_string(),
        })
    }
}
