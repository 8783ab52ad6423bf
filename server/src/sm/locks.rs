//! Persistent leased locks with fencing tokens.
//!
//! A grant's fencing token is the revision of the granting entry, so a resource's
//! tokens strictly increase. A lock is held while `now < expires_at_ms` in the
//! state machine's deterministic time; [`LockTable::extend_all_leases`] runs at the
//! first entry of every new leader term, so a failover never shortens a lease.

use serde::{Deserialize, Serialize};

use super::{Map, Set};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lock {
    pub owner: Vec<u8>,
    pub token: u64,
    pub expires_at_ms: u64,
    pub ttl_ms: u64,
}

/// A lock as answered to clients.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockView {
    pub resource: Vec<u8>,
    pub owner: Vec<u8>,
    pub token: u64,
    pub expires_at_ms: u64,
}

/// Why an extend or unlock did not happen.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Refusal {
    #[default]
    None,
    NotHeld,
    HeldByOther,
}

/// The answer to a lock operation: whether it happened, why not, and the lock as
/// it stands (the caller's on success, the holder's on refusal).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockReply {
    pub ok: bool,
    pub refusal: Refusal,
    pub lock: Option<LockView>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockTable {
    locks: Map<Vec<u8>, Lock>,
    /// (expires_at_ms, resource) for every lock.
    expiry: Set<(u64, Vec<u8>)>,
}

impl LockTable {
    fn live(&self, now_ms: u64, resource: &[u8]) -> Option<&Lock> {
        self.locks.get(resource).filter(|l| l.expires_at_ms > now_ms)
    }

    fn view(resource: &[u8], l: &Lock) -> LockView {
        LockView {
            resource: resource.to_vec(),
            owner: l.owner.clone(),
            token: l.token,
            expires_at_ms: l.expires_at_ms,
        }
    }

    pub fn get(&self, now_ms: u64, resource: &[u8]) -> Option<LockView> {
        self.live(now_ms, resource).map(|l| Self::view(resource, l))
    }

    /// The token of the live lock on `resource`, 0 when free.
    pub fn token_of(&self, now_ms: u64, resource: &[u8]) -> u64 {
        self.live(now_ms, resource).map_or(0, |l| l.token)
    }

    fn put(&mut self, resource: &[u8], lock: Option<Lock>) {
        let old = match lock {
            Some(l) => self.locks.insert(resource.to_vec(), l),
            None => self.locks.remove(resource),
        };
        if let Some(old) = old {
            self.expiry.remove(&(old.expires_at_ms, resource.to_vec()));
        }
        if let Some(new) = self.locks.get(resource) {
            self.expiry.insert((new.expires_at_ms, resource.to_vec()));
        }
    }

    /// Grants the lock to `owner` at `revision`, or refreshes it (same token) when
    /// `owner` already holds it.
    pub fn try_lock(&mut self, revision: u64, now_ms: u64, resource: &[u8], owner: &[u8], ttl_ms: u64) -> LockReply {
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        let token = match self.live(now_ms, resource) {
            Some(l) if l.owner != owner => {
                return LockReply {
                    ok: false,
                    refusal: Refusal::HeldByOther,
                    lock: Some(Self::view(resource, l)),
                }
            }
            Some(l) => l.token,
            None => revision,
        };
        let lock = Lock {
            owner: owner.to_vec(),
            token,
            expires_at_ms,
            ttl_ms,
        };
        let view = Self::view(resource, &lock);
        self.put(resource, Some(lock));
        LockReply {
            ok: true,
            refusal: Refusal::None,
            lock: Some(view),
        }
    }

    fn refuse(&self, now_ms: u64, resource: &[u8], owner: &[u8]) -> Option<LockReply> {
        match self.live(now_ms, resource) {
            None => Some(LockReply {
                ok: false,
                refusal: Refusal::NotHeld,
                lock: None,
            }),
            Some(l) if l.owner != owner => Some(LockReply {
                ok: false,
                refusal: Refusal::HeldByOther,
                lock: Some(Self::view(resource, l)),
            }),
            Some(_) => None,
        }
    }

    pub fn extend(&mut self, now_ms: u64, resource: &[u8], owner: &[u8], ttl_ms: u64) -> LockReply {
        if let Some(refused) = self.refuse(now_ms, resource, owner) {
            return refused;
        }
        let Some(mut lock) = self.locks.get(resource).cloned() else {
            return LockReply::default();
        };
        lock.expires_at_ms = now_ms.saturating_add(ttl_ms);
        lock.ttl_ms = ttl_ms;
        let view = Self::view(resource, &lock);
        self.put(resource, Some(lock));
        LockReply {
            ok: true,
            refusal: Refusal::None,
            lock: Some(view),
        }
    }

    pub fn unlock(&mut self, now_ms: u64, resource: &[u8], owner: &[u8]) -> LockReply {
        if let Some(refused) = self.refuse(now_ms, resource, owner) {
            return refused;
        }
        self.put(resource, None);
        LockReply {
            ok: true,
            refusal: Refusal::None,
            lock: None,
        }
    }

    /// Gives every lease live at `live_at_ms` (the previous leader's last time) at
    /// least one full TTL from `now_ms` (the new leader's first): a new leader's clock
    /// may differ from the old one's, and a holder must never see its lease cut.
    pub fn extend_all_leases(&mut self, live_at_ms: u64, now_ms: u64) {
        let live: Vec<Vec<u8>> = self
            .expiry
            .range((live_at_ms.saturating_add(1), Vec::new())..)
            .map(|(_, r)| r.clone())
            .collect();
        for resource in live {
            if let Some(mut lock) = self.locks.get(&resource).cloned() {
                lock.expires_at_ms = lock.expires_at_ms.max(now_ms.saturating_add(lock.ttl_ms));
                self.put(&resource, Some(lock));
            }
        }
    }

    /// Removes up to `limit` expired locks; returns how many.
    pub fn sweep(&mut self, now_ms: u64, limit: u32) -> u32 {
        let due: Vec<Vec<u8>> = self
            .expiry
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit as usize)
            .map(|(_, r)| r.clone())
            .collect();
        for r in &due {
            self.put(r, None);
        }
        due.len() as u32
    }

    /// Locks held, expired or not yet swept.
    pub fn len(&self) -> usize {
        self.locks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    /// Whether `resource` has an entry (held, or expired and not yet swept).
    pub fn contains(&self, resource: &[u8]) -> bool {
        self.locks.contains_key(resource)
    }

    pub fn next_expiry(&self) -> Option<u64> {
        self.expiry.get_min().map(|(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_refresh_refuse_release() {
        let mut t = LockTable::default();
        let a = t.try_lock(10, 1000, b"r", b"A", 100);
        assert!(a.ok);
        assert_eq!(a.lock.as_ref().map(|l| l.token), Some(10));
        // Re-lock by the owner keeps the token and refreshes the lease.
        let again = t.try_lock(11, 1050, b"r", b"A", 100);
        assert_eq!(
            again.lock.as_ref().map(|l| (l.token, l.expires_at_ms)),
            Some((10, 1150))
        );
        let b = t.try_lock(12, 1100, b"r", b"B", 100);
        assert!(!b.ok);
        assert_eq!(b.refusal, Refusal::HeldByOther);
        assert_eq!(b.lock.map(|l| l.owner), Some(b"A".to_vec()));
        assert_eq!(t.unlock(1100, b"r", b"B").refusal, Refusal::HeldByOther);
        assert_eq!(t.extend(1100, b"x", b"A", 10).refusal, Refusal::NotHeld);
        assert!(t.unlock(1100, b"r", b"A").ok);
        let b = t.try_lock(13, 1100, b"r", b"B", 100);
        assert_eq!(b.lock.map(|l| l.token), Some(13));
    }

    #[test]
    fn expired_lock_goes_to_the_next_owner_with_a_larger_token() {
        let mut t = LockTable::default();
        t.try_lock(5, 0, b"r", b"A", 100);
        assert_eq!(t.token_of(99, b"r"), 5);
        assert_eq!(t.token_of(100, b"r"), 0);
        let b = t.try_lock(9, 100, b"r", b"B", 100);
        assert!(b.ok && b.lock.map(|l| l.token) == Some(9));
    }

    #[test]
    fn new_term_extends_live_leases_only() {
        let mut t = LockTable::default();
        t.try_lock(1, 0, b"live", b"A", 100);
        t.try_lock(2, 0, b"long", b"A", 10_000);
        t.try_lock(3, 0, b"dead", b"A", 10);
        t.extend_all_leases(50, 50);
        assert_eq!(t.get(50, b"live").map(|l| l.expires_at_ms), Some(150));
        assert_eq!(t.get(50, b"long").map(|l| l.expires_at_ms), Some(10_050));
        assert!(t.get(50, b"dead").is_none());
        assert_eq!(t.sweep(50, 10), 1);
        assert_eq!(t.next_expiry(), Some(150));
    }
}
