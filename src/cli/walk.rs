//! One pass over a store's entries: each key, its size and its envelope header (read from the
//! bytes the store lends, never decoded), for `stats`, `ls` and `evict`.

use cacher::formats::Header;
use cacher::key::namespace_of;
use serde_json::{json, Value};

use super::failure::Failure;
use super::keyarg;
use super::open::Opened;
use super::progress;
use super::units;

/// What the walk learnt about one entry.
pub struct Entry {
    pub key: Vec<u8>,
    pub size: u64,
    pub state: State,
    /// What the entry is in the revisions' reserved key space, if it lies there.
    pub revision: Option<Reserved>,
}

/// A key of the revisions' reserved key space, as [`cacher::RevisionKeyKind`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// An old revision of some user key, by number.
    Record(u64),
    /// The list of a user key's revisions (the whole user key is inside it).
    Manifest,
    /// A key of the reserved space of neither shape (a newer cacher's).
    Other,
}

impl Reserved {
    /// What `key` is, when it lies in the reserved key space (the layout is the cache's:
    /// [`cacher::revision_key_kind`]).
    pub fn of(key: &[u8]) -> Option<Reserved> {
        Some(match cacher::revision_key_kind(key)? {
            cacher::RevisionKeyKind::Record(n) => Reserved::Record(n),
            cacher::RevisionKeyKind::Manifest => Reserved::Manifest,
            cacher::RevisionKeyKind::Other => Reserved::Other,
        })
    }

    /// `revision N`, `manifest`, `reserved`: the `ls --revisions` column.
    pub fn text(self) -> String {
        match self {
            Reserved::Record(n) => format!("revision {n}"),
            Reserved::Manifest => "manifest".to_owned(),
            Reserved::Other => "reserved".to_owned(),
        }
    }

    /// `{"kind": "revision", "number": N}`, `{"kind": "manifest"}`, `{"kind": "reserved"}`.
    pub fn json(self) -> Value {
        match self {
            Reserved::Record(n) => json!({"kind": "revision", "number": n}),
            Reserved::Manifest => json!({"kind": "manifest"}),
            Reserved::Other => json!({"kind": "reserved"}),
        }
    }
}

/// An entry's header, or why there is none.
pub enum State {
    /// A cacher envelope whose header checks (the payload checksum is `verify`'s job).
    Envelope(Header),
    /// The store kind holds arrays, not envelopes.
    Array,
    /// The store refused the value as damaged, or its envelope header does not check.
    Damaged(String),
    /// A revision manifest: the cache's own record, not an envelope (the cache checks it on
    /// every read).
    Manifest,
    /// A reserved key of no shape this cacher knows (a newer cacher's record): left as it is.
    Reserved,
}

impl Entry {
    /// The namespace of a `namespace@version:hash` (or slot) key.
    pub fn namespace(&self) -> Option<&str> {
        namespace_of(&self.key)
    }

    /// Whether the envelope's expiry has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        match &self.state {
            State::Envelope(h) => h.meta().is_expired_at(now_ms),
            _ => false,
        }
    }

    /// Created time, for envelopes.
    pub fn created_ms(&self) -> Option<u64> {
        match &self.state {
            State::Envelope(h) => Some(h.created_ms()),
            _ => None,
        }
    }

    /// `(status, error)` as `ls --json` gives them.
    pub fn status(&self) -> (&'static str, Option<&str>) {
        match &self.state {
            State::Envelope(_) => ("ok", None),
            State::Array => ("array", None),
            State::Manifest => ("manifest", None),
            State::Reserved => ("reserved", None),
            State::Damaged(why) => ("damaged", Some(why)),
        }
    }

    /// The entry as one element of `ls --json`'s `entries`.
    pub fn json(&self, now_ms: u64) -> Value {
        let (status, error) = self.status();
        let mut v = json!({
            "key": keyarg::json(&self.key),
            "namespace": self.namespace(),
            "size": self.size,
            "status": status,
            "error": error,
            "revision_record": self.revision.map(Reserved::json),
        });
        if let State::Envelope(h) = &self.state {
            v["format"] = h.pipeline().into();
            v["created_ms"] = h.created_ms().into();
            v["expires_ms"] = h.expires_ms().into();
            v["expired"] = h.meta().is_expired_at(now_ms).into();
            v["revision"] = h.revision().into();
        }
        v
    }

    /// The entry as a row of `ls`'s table: key, size, format, created, expires.
    pub fn row(&self, now_ms: u64) -> Vec<String> {
        let (format, created, expires) = match &self.state {
            State::Envelope(h) => (
                h.pipeline().to_owned(),
                units::time_relative(h.created_ms(), now_ms),
                h.expires_ms()
                    .map_or("never".to_owned(), |e| units::time_relative(e, now_ms)),
            ),
            State::Array => ("array".to_owned(), "-".to_owned(), "-".to_owned()),
            State::Manifest => ("manifest".to_owned(), "-".to_owned(), "-".to_owned()),
            State::Reserved => ("reserved".to_owned(), "-".to_owned(), "-".to_owned()),
            State::Damaged(why) => (format!("DAMAGED: {why}"), "-".to_owned(), "-".to_owned()),
        };
        vec![
            keyarg::human(&self.key),
            units::bytes(self.size),
            format,
            created,
            expires,
        ]
    }
}

/// Every key of the store, with a spinner while they are listed.
pub fn keys(opened: &Opened) -> Result<Vec<Vec<u8>>, Failure> {
    let spinner = progress::spinner("listing");
    let mut keys = Vec::new();
    let listed = opened
        .store()
        .keys()
        .map_err(|e| Failure::store(&opened.path, "cannot list the keys of", &e))?;
    for key in listed {
        match key {
            Ok(key) => keys.push(key),
            // A store whose listing checks each entry (LmdbStore's checksum covers the key)
            // reports a damaged one as an item: keep listing, under the key the error names,
            // so the read below reports the damage instead of the walk stopping at it.
            Err(cacher::store::Error::Corrupt { key: Some(key), .. }) => {
                keys.push(key.bytes().to_vec())
            }
            Err(e) => return Err(Failure::store(&opened.path, "cannot list the keys of", &e)),
        }
        spinner.inc(1);
    }
    spinner.finish_and_clear();
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Reads the size and header of each key that `keep` accepts. A damaged entry is an entry in
/// the result; an error that is not about one entry (I/O on the store) ends the walk.
pub fn walk(opened: &Opened, keep: impl Fn(&[u8]) -> bool) -> Result<Vec<Entry>, Failure> {
    let registry = &opened.registry;
    let keys: Vec<Vec<u8>> = keys(opened)?.into_iter().filter(|k| keep(k)).collect();
    let bar = progress::bar(keys.len() as u64, "reading");
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        bar.inc(1);
        let mut seen = None;
        let revision = Reserved::of(&key);
        let read = opened.store().with_value(&key, &mut |bytes| {
            let state = match revision {
                _ if !opened.kind.holds_envelopes() => State::Array,
                None => match registry.peek_value(&key, bytes) {
                    Ok(h) => State::Envelope(h),
                    Err(e) => State::Damaged(super::failure::chain(&e)),
                },
                // A record is the envelope its user key was written with, bound to that key,
                // not to this one: its header is checked here, the binding by the cache.
                Some(Reserved::Record(_)) => match cacher::formats::Header::peek(bytes) {
                    Ok(h) => State::Envelope(h),
                    Err(e) => State::Damaged(super::failure::chain(&e)),
                },
                Some(Reserved::Manifest) => State::Manifest,
                Some(Reserved::Other) => State::Reserved,
            };
            seen = Some((bytes.len() as u64, state));
        });
        let (size, state) = match read {
            Ok(true) => seen.unwrap_or((0, State::Array)),
            // Deleted since it was listed.
            Ok(false) => continue,
            Err(e) if e.is_corrupt() => (0, State::Damaged(super::failure::chain(&e))),
            Err(e) => {
                return Err(Failure::store(
                    &opened.path,
                    &format!("cannot read key {} of", keyarg::human(&key)),
                    &e,
                ))
            }
        };
        entries.push(Entry {
            key,
            size,
            state,
            revision,
        });
    }
    bar.finish_and_clear();
    Ok(entries)
}
