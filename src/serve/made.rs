//! What serve made for one upstream manifest under one set of options: the
//! hardened manifest (or index and its images), the new configs and
//! harden's layers; and the bounded cache of such results. Base layers are
//! never held: they stay in the upstream registry.

use super::route::Name;
use crate::digest::Digest;
use crate::image::{Blob, Content, Image};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A manifest or index to answer, exactly as digested.
#[derive(Debug, Clone)]
pub struct Document {
    pub media_type: String,
    pub bytes: Bytes,
}

#[derive(Debug)]
pub struct Made {
    /// The digest answered for the tag: the hardened manifest or index.
    pub top: Digest,
    pub manifests: HashMap<Digest, Document>,
    /// Blobs serve holds: the configs and harden's layers.
    pub blobs: HashMap<Digest, Bytes>,
    /// Blobs the upstream holds (base layers, kept artifacts' blobs): each
    /// must be there before the manifest is served.
    pub upstream_blobs: Vec<Digest>,
}

impl Made {
    /// The documents and blobs of a hardened image or index.
    pub fn of(content: &Content) -> Made {
        let mut made = Made {
            top: Digest::of(b""), // set below, once the top document is known
            manifests: HashMap::new(),
            blobs: HashMap::new(),
            upstream_blobs: Vec::new(),
        };
        made.top = match content {
            Content::Image(image) => {
                made.add_blobs(image);
                made.add_document(image.manifest_media_type(), image.manifest())
            }
            Content::Index(index) => {
                for image in index.entries.iter().map(|e| &e.image) {
                    made.add_blobs(image);
                    made.add_document(image.manifest_media_type(), image.manifest());
                }
                for other in &index.others {
                    made.add_document(other.media_type(), other.manifest.clone());
                    for (digest, blob) in &other.blobs {
                        made.add_blob(digest, blob);
                    }
                }
                made.add_document(index.media_type(), index.manifest())
            }
        };
        made
    }

    /// Holds a manifest or index; returns its digest.
    fn add_document(&mut self, media_type: &str, bytes: Vec<u8>) -> Digest {
        let digest = Digest::of(&bytes);
        let doc = Document {
            media_type: media_type.to_string(),
            bytes: Bytes::from(bytes),
        };
        self.manifests.insert(digest.clone(), doc);
        digest
    }

    fn add_blobs(&mut self, image: &Image) {
        self.blobs
            .insert(image.config_digest(), Bytes::from(image.config.clone()));
        for layer in &image.layers {
            self.add_blob(&layer.digest, &layer.blob);
        }
    }

    fn add_blob(&mut self, digest: &Digest, blob: &Blob) {
        match blob {
            Blob::Bytes(b) => {
                self.blobs.insert(digest.clone(), Bytes::from(b.to_vec()));
            }
            _ if !self.upstream_blobs.contains(digest) => self.upstream_blobs.push(digest.clone()),
            _ => {}
        }
    }

    /// What this result holds in memory.
    pub fn size(&self) -> usize {
        let docs = self.manifests.values().map(|d| d.bytes.len());
        docs.chain(self.blobs.values().map(Bytes::len)).sum()
    }
}

/// A result's key: the repository, the upstream manifest's digest, and
/// which options (the config file's rule) hardened it.
pub type Key = (Name, Digest, usize);

/// Results by key, and each document and blob by the repository and digest
/// clients ask for; the least recently used go first past `bound` bytes.
pub struct Cache {
    bound: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    made: HashMap<Key, (u64, Arc<Made>)>,
    /// (use, key), oldest first; an entry whose use is no longer the
    /// result's is stale and skipped.
    uses: VecDeque<(u64, Key)>,
    by_digest: HashMap<(Name, Digest), Vec<Key>>,
    bytes: usize,
    next_use: u64,
}

impl Cache {
    pub fn new(bound: usize) -> Cache {
        Cache {
            bound,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Made>> {
        let mut inner = self.lock();
        let made = inner.made.get(key)?.1.clone();
        inner.touch(key);
        Some(made)
    }

    pub fn insert(&self, key: Key, made: Arc<Made>) {
        let mut inner = self.lock();
        if inner.made.contains_key(&key) {
            inner.touch(&key);
            return;
        }
        let digests = made.manifests.keys().chain(made.blobs.keys());
        for d in digests {
            let keys = inner
                .by_digest
                .entry((key.0.clone(), d.clone()))
                .or_default();
            keys.push(key.clone());
        }
        inner.bytes += made.size();
        inner.made.insert(key.clone(), (0, made));
        inner.touch(&key);
        // The newest result stays even when it alone is over the bound.
        while inner.bytes > self.bound && inner.made.len() > 1 {
            inner.evict_oldest();
        }
    }

    /// A manifest (by digest) of a result for `name`.
    pub fn manifest(&self, name: &Name, digest: &Digest) -> Option<Document> {
        self.find(name, digest, |m| m.manifests.get(digest).cloned())
    }

    /// A blob serve made (config, harden's layer) for `name`.
    pub fn blob(&self, name: &Name, digest: &Digest) -> Option<Bytes> {
        self.find(name, digest, |m| m.blobs.get(digest).cloned())
    }

    fn find<T>(&self, name: &Name, digest: &Digest, get: impl Fn(&Made) -> Option<T>) -> Option<T> {
        let mut inner = self.lock();
        let key = inner
            .by_digest
            .get(&(name.clone(), digest.clone()))?
            .last()?
            .clone();
        let found = get(&inner.made.get(&key)?.1);
        inner.touch(&key);
        found
    }

    /// (results, bytes) held.
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.made.len(), inner.bytes)
    }
}

impl Inner {
    fn touch(&mut self, key: &Key) {
        self.next_use += 1;
        let now = self.next_use;
        if let Some(entry) = self.made.get_mut(key) {
            entry.0 = now;
            self.uses.push_back((now, key.clone()));
        }
        // Stale uses pile up on a hot key: drop them from the front.
        while let Some((used, k)) = self.uses.front() {
            match self.made.get(k) {
                Some((last, _)) if last == used => break,
                _ => {
                    self.uses.pop_front();
                }
            }
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((used, key)) = self.uses.pop_front() {
            let current = matches!(self.made.get(&key), Some((last, _)) if *last == used);
            if !current {
                continue;
            }
            let (_, made) = self.made.remove(&key).expect("present");
            self.bytes -= made.size();
            for d in made.manifests.keys().chain(made.blobs.keys()) {
                let slot = (key.0.clone(), d.clone());
                if let Some(keys) = self.by_digest.get_mut(&slot) {
                    keys.retain(|k| k != &key);
                    if keys.is_empty() {
                        self.by_digest.remove(&slot);
                    }
                }
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(r: &str) -> Name {
        Name {
            upstream: "up".into(),
            repository: r.into(),
        }
    }

    fn made(tag: &[u8], shared: &[u8]) -> Arc<Made> {
        let top = Digest::of(tag);
        let doc = Document {
            media_type: "m".into(),
            bytes: Bytes::copy_from_slice(tag),
        };
        Arc::new(Made {
            top: top.clone(),
            manifests: HashMap::from([(top, doc)]),
            blobs: HashMap::from([(Digest::of(shared), Bytes::copy_from_slice(shared))]),
            upstream_blobs: Vec::new(),
        })
    }

    #[test]
    fn least_recently_used_go_past_the_bound() {
        let cache = Cache::new(250);
        let key = |n: &str| (name("a"), Digest::of(n.as_bytes()), 0);
        let big = vec![b'x'; 100];
        cache.insert(key("1"), made(b"one", &big));
        cache.insert(key("2"), made(b"two", &big));
        // The first is used, so the second is the oldest when a third comes.
        assert!(cache.get(&key("1")).is_some());
        cache.insert(key("3"), made(b"three", &big));
        assert!(cache.get(&key("2")).is_none());
        assert!(cache.get(&key("1")).is_some());
        assert_eq!(cache.usage(), (2, 103 + 105));
        // A blob two results share is found while either is held.
        assert!(cache.blob(&name("a"), &Digest::of(&big)).is_some());
        assert!(cache.blob(&name("b"), &Digest::of(&big)).is_none());
        assert!(cache.manifest(&name("a"), &Digest::of(b"three")).is_some());
        assert!(cache.manifest(&name("a"), &Digest::of(b"two")).is_none());
    }

    #[test]
    fn the_newest_stays_over_the_bound() {
        let cache = Cache::new(10);
        let key = (name("a"), Digest::of(b"k"), 0);
        cache.insert(key.clone(), made(b"manifest", &[7; 64]));
        assert!(cache.get(&key).is_some());
    }
}
