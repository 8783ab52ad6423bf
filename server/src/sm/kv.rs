//! The key/value store: live keys, their expiry index and a bounded change history.

use serde::{Deserialize, Serialize};

use super::{due, Conditions, DeleteOp, Map, Reply, Seq, Set, SetOp};

/// Changes older than this many revisions are dropped from the history.
pub const HISTORY_RETENTION_REVISIONS: u64 = 10_000;
/// Bytes of keys and values the retained history may hold: each change keeps a copy
/// of the key as it was, so 10,000 changes of 1 MiB values would hold 10 GB on every
/// member. Past this the oldest changes are dropped, and reads before them are
/// COMPACTED, as for the revision window.
pub const MAX_HISTORY_BYTES: u64 = 256 << 20;
/// Entries one scan page may look at, live or expired but not yet swept: the work a
/// page does under the state's read lock.
pub const MAX_SCAN_EXAMINED: usize = 10_000;
/// What a key/value costs in a response besides its key and value bytes (revisions,
/// version, expiry, field tags and lengths), rounded up.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;

/// A key as clients see it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: u64,
    pub create_revision: u64,
    pub version: u64,
    /// Unix ms in the leader's clock; 0 = never.
    pub expires_at_ms: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
    Expire,
}

/// One change of a key. For removals `kv` is the key as it was when removed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub revision: u64,
    pub kv: KeyValue,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Stored {
    value: Vec<u8>,
    mod_revision: u64,
    create_revision: u64,
    version: u64,
    expires_at_ms: u64,
}

impl Stored {
    fn live(&self, now_ms: u64) -> bool {
        self.expires_at_ms == 0 || self.expires_at_ms > now_ms
    }

    fn to_kv(&self, key: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            value: self.value.clone(),
            mod_revision: self.mod_revision,
            create_revision: self.create_revision,
            version: self.version,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// Why a read at a past revision cannot be answered.
#[derive(Debug, PartialEq, Eq)]
pub enum HistoryError {
    /// The revision is older than the retention window; the oldest retained is given.
    Compacted { retained_from: u64 },
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvStore {
    keys: Map<Vec<u8>, Stored>,
    /// (expires_at_ms, key) for every key with an expiry.
    expiry: Set<(u64, Vec<u8>)>,
    /// Per key, its retained changes, oldest first.
    history: Map<Vec<u8>, Seq<Event>>,
    /// Every retained change in revision order, to prune the oldest first.
    history_order: Seq<(u64, Vec<u8>)>,
    /// Bytes of keys and values in `history` (bounded by [`MAX_HISTORY_BYTES`]).
    history_bytes: u64,
    /// The first revision whose changes are all retained after pruning by bytes.
    history_floor: u64,
}

fn event_bytes(e: &Event) -> u64 {
    (e.kv.key.len() + e.kv.value.len()) as u64
}

fn expiry_at(now_ms: u64, ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        0
    } else {
        now_ms.saturating_add(ttl_ms)
    }
}

/// Which keys a watch or a scan looks at: one key, every key under a prefix, or a
/// range `[start, end)` (an empty `end` = to the last key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keys {
    Key(Vec<u8>),
    Prefix(Vec<u8>),
    Range { start: Vec<u8>, end: Vec<u8> },
}

impl Keys {
    pub fn covers(&self, key: &[u8]) -> bool {
        match self {
            Keys::Key(k) => k.as_slice() == key,
            Keys::Prefix(p) => key.starts_with(p),
            Keys::Range { start, end } => key >= start.as_slice() && (end.is_empty() || key < end.as_slice()),
        }
    }
}

/// The first index in `0..len` for which `at_or_after` holds, given that it holds for
/// every index after the first one it holds for (a sorted sequence's lower bound).
fn first_index(len: usize, at_or_after: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at_or_after(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// The first revision still covered by the history once `revision` is applied.
pub fn retained_from(revision: u64) -> u64 {
    revision.saturating_sub(HISTORY_RETENTION_REVISIONS).max(1)
}

impl KvStore {
    /// The live key, if any.
    pub fn get(&self, now_ms: u64, key: &[u8]) -> Option<KeyValue> {
        self.live(now_ms, key).map(|s| s.to_kv(key))
    }

    fn live(&self, now_ms: u64, key: &[u8]) -> Option<&Stored> {
        self.keys.get(key).filter(|s| s.live(now_ms))
    }

    /// Keys stored, expired or not yet swept.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether `key` is stored (live, or expired and not yet swept).
    pub fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The earliest expiry of any stored key, to know when a sweep is due.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiry.get_min().map(|(at, _)| *at)
    }

    fn check(&self, now_ms: u64, key: &[u8], c: &Conditions) -> bool {
        let current = self.live(now_ms, key);
        if c.if_not_exists && current.is_some() {
            return false;
        }
        if c.if_exists && current.is_none() {
            return false;
        }
        if let Some(expected) = &c.compare_value {
            if current.map(|s| &s.value) != Some(expected) {
                return false;
            }
        }
        if let Some(expected) = c.compare_revision {
            if current.map_or(0, |s| s.mod_revision) != expected {
                return false;
            }
        }
        true
    }

    pub fn set(&mut self, revision: u64, now_ms: u64, op: &SetOp) -> Reply {
        if !self.check(now_ms, &op.key, &op.conditions) {
            return Reply::Write {
                succeeded: false,
                kv: self.get(now_ms, &op.key),
            };
        }
        let previous = self.live(now_ms, &op.key).cloned();
        let stored = Stored {
            value: op.value.clone(),
            mod_revision: revision,
            create_revision: previous.as_ref().map_or(revision, |p| p.create_revision),
            version: previous.as_ref().map_or(1, |p| p.version + 1),
            expires_at_ms: expiry_at(now_ms, op.ttl_ms),
        };
        let kv = stored.to_kv(&op.key);
        self.replace(&op.key, Some(stored));
        self.record(EventKind::Put, revision, kv.clone());
        Reply::Write {
            succeeded: true,
            kv: Some(kv),
        }
    }

    pub fn delete(&mut self, revision: u64, now_ms: u64, op: &DeleteOp) -> Reply {
        let current = self.get(now_ms, &op.key);
        if !self.check(now_ms, &op.key, &op.conditions) {
            return Reply::Delete {
                succeeded: false,
                deleted: false,
                kv: current,
            };
        }
        if let Some(kv) = &current {
            self.replace(&op.key, None);
            self.record(EventKind::Delete, revision, kv.clone());
        }
        Reply::Delete {
            succeeded: true,
            deleted: current.is_some(),
            kv: current,
        }
    }

    /// Gives a live key a new time to live from now (0 = none). Not a write of the
    /// value: revision and version stay as they are.
    pub fn extend(&mut self, now_ms: u64, key: &[u8], ttl_ms: u64) -> Reply {
        let Some(mut stored) = self.live(now_ms, key).cloned() else {
            return Reply::Write {
                succeeded: false,
                kv: None,
            };
        };
        stored.expires_at_ms = expiry_at(now_ms, ttl_ms);
        let kv = stored.to_kv(key);
        self.replace(key, Some(stored));
        Reply::Write {
            succeeded: true,
            kv: Some(kv),
        }
    }

    /// Removes up to `limit` keys whose expiry is at or before `now_ms`.
    pub fn sweep(&mut self, revision: u64, now_ms: u64, limit: u32) -> u32 {
        let due = due(&self.expiry, now_ms, limit);
        for (_, key) in &due {
            if let Some(stored) = self.keys.get(key) {
                let kv = stored.to_kv(key);
                self.replace(key, None);
                self.record(EventKind::Expire, revision, kv);
            }
        }
        due.len() as u32
    }

    /// Puts `stored` under `key` (or removes it), keeping the expiry index in step.
    fn replace(&mut self, key: &[u8], stored: Option<Stored>) {
        let old = match stored {
            Some(s) => self.keys.insert(key.to_vec(), s),
            None => self.keys.remove(key),
        };
        if let Some(old) = old.filter(|o| o.expires_at_ms != 0) {
            self.expiry.remove(&(old.expires_at_ms, key.to_vec()));
        }
        if let Some(new) = self.keys.get(key).filter(|n| n.expires_at_ms != 0) {
            self.expiry.insert((new.expires_at_ms, key.to_vec()));
        }
    }

    fn record(&mut self, kind: EventKind, revision: u64, kv: KeyValue) {
        self.history_order.push_back((revision, kv.key.clone()));
        let event = Event { kind, revision, kv };
        self.history_bytes += event_bytes(&event);
        self.history.entry(event.kv.key.clone()).or_default().push_back(event);
    }

    /// Drops changes that fell out of the retention window once `revision` is applied,
    /// and the oldest ones while the history holds more than [`MAX_HISTORY_BYTES`].
    pub fn prune_history(&mut self, revision: u64) {
        let keep_from = retained_from(revision);
        while let Some((rev, _)) = self.history_order.front() {
            let rev = *rev;
            let over = self.history_bytes > MAX_HISTORY_BYTES;
            if rev >= keep_from && !over {
                break;
            }
            let Some((_, key)) = self.history_order.pop_front() else {
                break;
            };
            if let Some(events) = self.history.get_mut(&key) {
                if let Some(e) = events.pop_front() {
                    self.history_bytes = self.history_bytes.saturating_sub(event_bytes(&e));
                }
                if events.is_empty() {
                    self.history.remove(&key);
                }
            }
            if over {
                self.history_floor = self.history_floor.max(rev + 1);
            }
        }
    }

    /// The first revision a read at a past revision can be answered for, once
    /// `applied` is the latest: the revision window, or later where changes were
    /// dropped for their size.
    pub fn retained_from(&self, applied: u64) -> u64 {
        retained_from(applied).max(self.history_floor)
    }

    /// Bytes of keys and values in the retained history.
    pub fn history_bytes(&self) -> u64 {
        self.history_bytes
    }

    /// The retained changes of `key`, oldest first: the newest `limit` of them, fewer
    /// once their encoded size (key, value and framing of each) would pass `max_bytes`.
    pub fn history(&self, key: &[u8], limit: usize, max_bytes: usize) -> Vec<Event> {
        let Some(events) = self.history.get(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in events.iter().rev().take(limit) {
            bytes += e.kv.key.len() + e.kv.value.len() + ENTRY_OVERHEAD_BYTES;
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(e.clone());
        }
        out.reverse();
        out
    }

    /// The retained changes at revisions `from..=applied` to the keys `watched` names,
    /// oldest first, for a watch; removals come without the value the key had. Once `max_events` changes or `max_bytes` of them (as
    /// encoded) are gathered it stops at the end of a revision: the changes of one
    /// revision (a transaction) are never split. Returns them with the revision they
    /// are complete up to: `applied`, or the last revision gathered when it stopped
    /// early. COMPACTED when `from` is older than the retained history, whose changes
    /// would be missing.
    pub fn changes(
        &self,
        from: u64,
        applied: u64,
        watched: &Keys,
        max_events: usize,
        max_bytes: usize,
    ) -> Result<(Vec<Event>, u64), HistoryError> {
        let retained = self.retained_from(applied);
        if from < retained {
            return Err(HistoryError::Compacted {
                retained_from: retained,
            });
        }
        let start = first_index(self.history_order.len(), |i| {
            self.history_order.get(i).is_none_or(|(rev, _)| *rev >= from)
        });
        let mut out: Vec<Event> = Vec::new();
        let mut bytes = 0;
        // Keys already gathered at `current`: a transaction that wrote a key twice has
        // two entries in `history_order` for that (revision, key).
        let mut current = 0;
        let mut seen: Vec<&[u8]> = Vec::new();
        for (rev, key) in self.history_order.skip(start).iter() {
            if *rev > applied {
                break;
            }
            if *rev != current {
                if out.len() >= max_events || bytes >= max_bytes {
                    return Ok((out, current));
                }
                current = *rev;
                seen.clear();
            }
            if !watched.covers(key) || seen.contains(&key.as_slice()) {
                continue;
            }
            seen.push(key);
            let Some(events) = self.history.get(key) else {
                continue;
            };
            let first = first_index(events.len(), |i| events.get(i).is_none_or(|e| e.revision >= *rev));
            for e in events.iter().skip(first).take_while(|e| e.revision == *rev) {
                let mut e = e.clone();
                if e.kind != EventKind::Put {
                    // A sweep removes up to 1,000 keys in one revision: with their
                    // values that could be a gigabyte in one message.
                    e.kv.value = Vec::new();
                }
                bytes += e.kv.key.len() + e.kv.value.len() + ENTRY_OVERHEAD_BYTES;
                out.push(e);
            }
        }
        Ok((out, applied))
    }

    /// The key as it was at `at_revision`, given that `applied` is the latest revision.
    pub fn get_at(
        &self,
        applied: u64,
        now_ms: u64,
        key: &[u8],
        at_revision: u64,
    ) -> Result<Option<KeyValue>, HistoryError> {
        let retained = self.retained_from(applied);
        if at_revision >= applied {
            return Ok(self.get(now_ms, key));
        }
        if at_revision < retained {
            return Err(HistoryError::Compacted {
                retained_from: retained,
            });
        }
        let events = self.history.get(key);
        if let Some(e) = events.and_then(|ev| ev.iter().rev().find(|e| e.revision <= at_revision)) {
            return Ok(match e.kind {
                EventKind::Put => Some(e.kv.clone()),
                EventKind::Delete | EventKind::Expire => None,
            });
        }
        // No retained change at or before `at_revision`: decide from the first one after.
        if let Some(first) = events.and_then(|ev| ev.front()) {
            return match first.kind {
                // A removal: until then the key was what it removed.
                EventKind::Delete | EventKind::Expire if at_revision >= first.kv.mod_revision => {
                    Ok(Some(first.kv.clone()))
                }
                _ if at_revision < first.kv.create_revision => Ok(None),
                _ => Err(HistoryError::Compacted {
                    retained_from: retained,
                }),
            };
        }
        // Unchanged within the window: the stored key is the answer, if it was there.
        Ok(self
            .keys
            .get(key)
            .filter(|s| s.mod_revision <= at_revision)
            .map(|s| s.to_kv(key)))
    }

    /// Live keys starting with `prefix` and after `after` (exclusive), in key order: at
    /// most `limit`, fewer once their encoded size (keys, values and per-entry framing)
    /// would pass `max_bytes`, and fewer when [`MAX_SCAN_EXAMINED`] entries (expired ones
    /// not yet swept included) were looked at. Returns the page and, when more may follow,
    /// the key to continue after: the last one examined, which may be an expired one
    /// past the last returned, so the next page does not walk them again.
    pub fn scan(
        &self,
        now_ms: u64,
        keys: &Keys,
        after: Option<&[u8]>,
        limit: usize,
        max_bytes: usize,
        keys_only: bool,
    ) -> (Vec<KeyValue>, Option<Vec<u8>>) {
        use std::ops::Bound;
        let first = match keys {
            Keys::Key(k) | Keys::Prefix(k) => k.as_slice(),
            Keys::Range { start, .. } => start.as_slice(),
        };
        let start = match after {
            Some(a) => Bound::Excluded(a.to_vec()),
            None => Bound::Included(first.to_vec()),
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut last_examined: Option<&[u8]> = None;
        for (examined, (key, stored)) in self.keys.range((start, Bound::Unbounded)).enumerate() {
            // Keys come in order: the first one not covered ends the scan.
            if !keys.covers(key) {
                return (out, None);
            }
            if out.len() == limit || examined == MAX_SCAN_EXAMINED {
                return (out, last_examined.map(<[u8]>::to_vec));
            }
            if stored.live(now_ms) {
                let size = key.len() + if keys_only { 0 } else { stored.value.len() } + ENTRY_OVERHEAD_BYTES;
                if bytes + size > max_bytes && !out.is_empty() {
                    return (out, last_examined.map(<[u8]>::to_vec));
                }
                bytes += size;
                let mut kv = stored.to_kv(key);
                if keys_only {
                    kv.value.clear();
                }
                out.push(kv);
            }
            last_examined = Some(key);
        }
        (out, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(kv: &mut KvStore, rev: u64, now: u64, key: &str, value: &str, ttl_ms: u64) -> Reply {
        kv.set(
            rev,
            now,
            &SetOp {
                key: key.into(),
                value: value.into(),
                ttl_ms,
                conditions: Conditions::default(),
            },
        )
    }

    #[test]
    fn versions_and_revisions() {
        let mut kv = KvStore::default();
        put(&mut kv, 3, 0, "a", "1", 0);
        put(&mut kv, 5, 0, "a", "2", 0);
        let got = kv.get(0, b"a").expect("present");
        assert_eq!((got.create_revision, got.mod_revision, got.version), (3, 5, 2));
        assert_eq!(got.value, b"2");
    }

    #[test]
    fn failed_compare_is_an_answer_with_current_value() {
        let mut kv = KvStore::default();
        put(&mut kv, 1, 0, "a", "1", 0);
        let reply = kv.set(
            2,
            0,
            &SetOp {
                key: "a".into(),
                value: "x".into(),
                ttl_ms: 0,
                conditions: Conditions {
                    compare_value: Some("nope".into()),
                    ..Default::default()
                },
            },
        );
        match reply {
            Reply::Write {
                succeeded,
                kv: Some(cur),
            } => {
                assert!(!succeeded);
                assert_eq!(cur.value, b"1");
                assert_eq!(cur.mod_revision, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        let reply = kv.set(
            3,
            0,
            &SetOp {
                key: "a".into(),
                value: "y".into(),
                ttl_ms: 0,
                conditions: Conditions {
                    compare_revision: Some(1),
                    ..Default::default()
                },
            },
        );
        assert!(matches!(reply, Reply::Write { succeeded: true, .. }));
    }

    #[test]
    fn expired_key_is_invisible_then_swept() {
        let mut kv = KvStore::default();
        put(&mut kv, 1, 1000, "a", "1", 100);
        assert!(kv.get(1099, b"a").is_some());
        assert!(kv.get(1100, b"a").is_none());
        assert_eq!(
            kv.scan(1100, &Keys::Prefix(b"".to_vec()), None, 10, usize::MAX, false)
                .0
                .len(),
            0
        );
        // An expired key does not block if_not_exists.
        let reply = kv.set(
            2,
            1100,
            &SetOp {
                key: "b".into(),
                value: "x".into(),
                ttl_ms: 0,
                conditions: Conditions {
                    if_not_exists: true,
                    ..Default::default()
                },
            },
        );
        assert!(matches!(reply, Reply::Write { succeeded: true, .. }));
        assert_eq!(kv.sweep(3, 1100, 100), 1);
        assert!(kv.next_expiry().is_none());
        assert_eq!(kv.len(), 1);
        let h = kv.history(b"a", 10, usize::MAX);
        assert_eq!(h.last().map(|e| e.kind), Some(EventKind::Expire));
    }

    #[test]
    fn rewrite_with_same_expiry_keeps_index() {
        let mut kv = KvStore::default();
        put(&mut kv, 1, 1000, "a", "1", 100);
        put(&mut kv, 2, 1000, "a", "2", 100);
        assert_eq!(kv.next_expiry(), Some(1100));
        put(&mut kv, 3, 1000, "a", "3", 0);
        assert_eq!(kv.next_expiry(), None);
    }

    #[test]
    fn read_at_past_revision() {
        let mut kv = KvStore::default();
        put(&mut kv, 2, 0, "a", "1", 0);
        put(&mut kv, 4, 0, "a", "2", 0);
        kv.delete(
            6,
            0,
            &DeleteOp {
                key: "a".into(),
                conditions: Conditions::default(),
            },
        );
        assert_eq!(kv.get_at(7, 0, b"a", 1), Ok(None));
        assert_eq!(
            kv.get_at(7, 0, b"a", 3).map(|k| k.map(|k| k.value)),
            Ok(Some(b"1".to_vec()))
        );
        assert_eq!(
            kv.get_at(7, 0, b"a", 5).map(|k| k.map(|k| k.value)),
            Ok(Some(b"2".to_vec()))
        );
        assert_eq!(kv.get_at(7, 0, b"a", 6), Ok(None));
    }

    #[test]
    fn history_is_bounded_by_retention() {
        let mut kv = KvStore::default();
        let n = HISTORY_RETENTION_REVISIONS + 500;
        for rev in 1..=n {
            put(&mut kv, rev, 0, "a", "v", 0);
            kv.prune_history(rev);
        }
        let h = kv.history(b"a", usize::MAX, usize::MAX);
        assert_eq!(h.first().map(|e| e.revision), Some(retained_from(n)));
        assert_eq!(
            kv.get_at(n, 0, b"a", 3),
            Err(HistoryError::Compacted {
                retained_from: retained_from(n)
            })
        );
    }

    /// Issue 18: 300 changes of a 1 MiB value would keep 300 MiB of history.
    #[test]
    fn history_is_bounded_by_bytes_and_reads_before_it_are_compacted() {
        let mut kv = KvStore::default();
        let big = "v".repeat(1 << 20);
        let n = 300;
        for rev in 1..=n {
            put(&mut kv, rev, 0, "a", &big, 0);
            kv.prune_history(rev);
            assert!(
                kv.history_bytes() <= MAX_HISTORY_BYTES,
                "{} at {rev}",
                kv.history_bytes()
            );
        }
        let h = kv.history(b"a", usize::MAX, usize::MAX);
        let oldest = h.first().map(|e| e.revision).unwrap_or_default();
        assert!(
            oldest > 1 && h.last().map(|e| e.revision) == Some(n),
            "oldest retained {oldest}"
        );
        assert_eq!(kv.retained_from(n), oldest);
        assert_eq!(
            kv.get_at(n, 0, b"a", oldest - 1),
            Err(HistoryError::Compacted { retained_from: oldest })
        );
        assert_eq!(
            kv.get_at(n, 0, b"a", oldest).map(|k| k.map(|k| k.mod_revision)),
            Ok(Some(oldest))
        );
    }

    #[test]
    fn scan_pages() {
        let mut kv = KvStore::default();
        for (i, k) in ["a/1", "a/2", "a/3", "b/1"].iter().enumerate() {
            put(&mut kv, i as u64 + 1, 0, k, "v", 0);
        }
        let (page, next) = kv.scan(0, &Keys::Prefix(b"a/".to_vec()), None, 2, usize::MAX, false);
        assert_eq!(next, Some(b"a/2".to_vec()));
        assert_eq!(
            page.iter().map(|k| k.key.clone()).collect::<Vec<_>>(),
            vec![b"a/1".to_vec(), b"a/2".to_vec()]
        );
        let (page, next) = kv.scan(0, &Keys::Prefix(b"a/".to_vec()), Some(b"a/2"), 2, usize::MAX, true);
        assert_eq!(next, None);
        assert_eq!(page.len(), 1);
        assert!(page[0].value.is_empty());
    }

    /// Issue 18: keys count toward a page's size, so 1,000 keys of 4 KiB (4 MiB of keys)
    /// do not make a page larger than the clients' 4 MiB receive limit.
    #[test]
    fn a_scan_page_is_bounded_by_encoded_size_keys_included() {
        let mut kv = KvStore::default();
        for i in 0..1000u64 {
            let key = format!("p/{i:04}/{}", "k".repeat(4000));
            put(&mut kv, i + 1, 0, &key, "v", 0);
        }
        let max = 3 << 20;
        let (page, next) = kv.scan(0, &Keys::Prefix(b"p/".to_vec()), None, 1000, max, true);
        let size: usize = page.iter().map(|k| k.key.len() + ENTRY_OVERHEAD_BYTES).sum();
        assert!(size <= max && page.len() < 1000, "{} entries, {size} bytes", page.len());
        assert_eq!(next.as_deref(), page.last().map(|k| k.key.as_slice()));
        let (rest, next) = kv.scan(0, &Keys::Prefix(b"p/".to_vec()), next.as_deref(), 1000, max, true);
        assert_eq!(page.len() + rest.len(), 1000);
        assert_eq!(next, None);
    }

    /// Expired keys not yet swept cost work but are not returned: a page stops after
    /// MAX_SCAN_EXAMINED of them and hands back a token past them, so paging makes
    /// progress and every live key is still found.
    #[test]
    fn a_scan_page_does_bounded_work_over_expired_keys() {
        let mut kv = KvStore::default();
        let dead = MAX_SCAN_EXAMINED as u64 + 500;
        for i in 0..dead {
            put(&mut kv, i + 1, 0, &format!("e/{i:06}"), "v", 10);
        }
        put(&mut kv, dead + 1, 0, "e/zz-live", "v", 0);
        let (page, next) = kv.scan(100, &Keys::Prefix(b"e/".to_vec()), None, 10, usize::MAX, false);
        assert!(page.is_empty());
        let token = next.expect("a token past the examined expired keys");
        assert_eq!(token, format!("e/{:06}", MAX_SCAN_EXAMINED - 1).into_bytes());
        let (page, next) = kv.scan(100, &Keys::Prefix(b"e/".to_vec()), Some(&token), 10, usize::MAX, false);
        assert_eq!(
            page.iter().map(|k| k.key.clone()).collect::<Vec<_>>(),
            vec![b"e/zz-live".to_vec()]
        );
        assert_eq!(next, None);
    }

    fn revs(events: &[Event]) -> Vec<(u64, String, EventKind)> {
        events
            .iter()
            .map(|e| (e.revision, String::from_utf8_lossy(&e.kv.key).into_owned(), e.kind))
            .collect()
    }

    #[test]
    fn changes_come_in_revision_order_for_the_watched_keys() {
        let mut kv = KvStore::default();
        put(&mut kv, 1, 0, "a/1", "x", 0);
        put(&mut kv, 2, 0, "b/1", "x", 0);
        put(&mut kv, 3, 0, "a/2", "x", 100);
        // One revision writing two keys, and one key twice (a transaction).
        put(&mut kv, 4, 0, "a/1", "y", 0);
        put(&mut kv, 4, 0, "a/3", "y", 0);
        put(&mut kv, 4, 0, "a/3", "z", 0);
        kv.delete(
            5,
            0,
            &DeleteOp {
                key: "a/1".into(),
                conditions: Conditions::default(),
            },
        );
        kv.sweep(6, 100, 10);
        for rev in 1..=6 {
            kv.prune_history(rev);
        }
        let prefix = Keys::Prefix(b"a/".to_vec());
        let (all, through) = kv.changes(1, 6, &prefix, 100, usize::MAX).unwrap();
        assert_eq!(through, 6);
        use EventKind::*;
        assert_eq!(
            revs(&all),
            vec![
                (1, "a/1".into(), Put),
                (3, "a/2".into(), Put),
                (4, "a/1".into(), Put),
                (4, "a/3".into(), Put),
                (4, "a/3".into(), Put),
                (5, "a/1".into(), Delete),
                (6, "a/2".into(), Expire),
            ]
        );
        // A later start, one key, and an upper bound below the latest.
        let (one, through) = kv.changes(2, 5, &Keys::Key(b"a/1".to_vec()), 100, usize::MAX).unwrap();
        assert_eq!(revs(&one), vec![(4, "a/1".into(), Put), (5, "a/1".into(), Delete)]);
        assert_eq!(through, 5);
        // Batches stop at the end of a revision, never inside one.
        let (first, through) = kv.changes(1, 6, &prefix, 3, usize::MAX).unwrap();
        assert_eq!(revs(&first).len(), 5, "{:?}", revs(&first));
        assert_eq!(through, 4);
        let (rest, through) = kv.changes(through + 1, 6, &prefix, 3, usize::MAX).unwrap();
        assert_eq!(revs(&rest), vec![(5, "a/1".into(), Delete), (6, "a/2".into(), Expire)]);
        assert_eq!(through, 6);
        let (by_bytes, through) = kv.changes(1, 6, &prefix, 100, 1).unwrap();
        assert_eq!((by_bytes.len(), through), (1, 1));
        // Nothing new: an empty answer complete up to the latest.
        let (none, through) = kv.changes(7, 6, &prefix, 100, usize::MAX).unwrap();
        assert!(none.is_empty());
        assert_eq!(through, 6);
    }

    #[test]
    fn changes_from_before_the_retained_history_are_compacted() {
        let mut kv = KvStore::default();
        let n = HISTORY_RETENTION_REVISIONS + 50;
        for rev in 1..=n {
            put(&mut kv, rev, 0, "k", "v", 0);
            kv.prune_history(rev);
        }
        let all = Keys::Prefix(Vec::new());
        let oldest = retained_from(n);
        assert_eq!(
            kv.changes(oldest - 1, n, &all, 10, usize::MAX),
            Err(HistoryError::Compacted { retained_from: oldest })
        );
        let (events, _) = kv.changes(oldest, n, &all, 10, usize::MAX).unwrap();
        assert_eq!(events.first().map(|e| e.revision), Some(oldest));
    }
}
