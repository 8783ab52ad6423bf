//! Persistent leased locks with fencing tokens.
//!
//! A grant's fencing token is the revision of the granting entry, so a resource's
//! tokens strictly increase. A lock is held while `now < expires_at_ms` in the
//! state machine's deterministic time; [`LockTable::extend_all_leases`] runs at the
//! first entry of every new leader term, so a failover never shortens a lease.
//!
//! A caller that wants to wait takes a place in the resource's queue
//! ([`LockTable::wait_lock`]) and is granted the lock, in arrival order, by the entry
//! that frees it: an unlock, a sweep of an expired lease, or any lock operation on the
//! resource once the lease has run out. A place has a lease of its own that the waiter
//! renews by asking again; a waiter that dies loses its place when that lease runs
//! out. A waiter granted the lock is given at first only what is left of its place's
//! lease (its client extends to the full TTL as soon as it hears of the grant), so a
//! waiter that died just before its turn holds the queue up no longer than its place
//! would have.

use serde::{Deserialize, Serialize};

use super::{Map, Seq, Set};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lock {
    pub owner: Vec<u8>,
    pub token: u64,
    pub expires_at_ms: u64,
    pub ttl_ms: u64,
    /// What the holder announces (an election's leader value); empty for plain locks.
    pub value: Vec<u8>,
}

/// A lock as answered to clients.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockView {
    pub resource: Vec<u8>,
    pub owner: Vec<u8>,
    pub token: u64,
    pub expires_at_ms: u64,
    pub value: Vec<u8>,
    /// Places in the lock's queue (some may have expired and not been pruned yet).
    pub waiters: u32,
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

/// Who asks to wait for a lock, and on what terms (see [`LockTable::wait_lock`]).
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub owner: &'a [u8],
    /// The lease it asks for once granted.
    pub ttl_ms: u64,
    /// How long this request keeps its place.
    pub place_ms: u64,
    /// The lock's value once granted to it.
    pub value: &'a [u8],
}

/// A caller waiting for a lock, in its place in the queue.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waiter {
    pub owner: Vec<u8>,
    /// The lease the waiter asked for once granted.
    pub ttl_ms: u64,
    /// How long one renewal keeps the place.
    pub place_ms: u64,
    /// The place is gone at this time unless renewed.
    pub expires_at_ms: u64,
    /// The holder's value once granted.
    pub value: Vec<u8>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockTable {
    locks: Map<Vec<u8>, Lock>,
    /// (expires_at_ms, resource) for every lock.
    expiry: Set<(u64, Vec<u8>)>,
    /// Per resource, its waiters in arrival order.
    queues: Map<Vec<u8>, Seq<Waiter>>,
    /// (expires_at_ms, resource, owner) for every waiter's place.
    places: Set<(u64, Vec<u8>, Vec<u8>)>,
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
            value: l.value.clone(),
            waiters: 0,
        }
    }

    /// The live lock on `resource` with the number of callers waiting for it.
    pub fn get(&self, now_ms: u64, resource: &[u8]) -> Option<LockView> {
        let waiters = self.queues.get(resource).map_or(0, |q| q.len() as u32);
        self.live(now_ms, resource).map(|l| LockView {
            waiters,
            ..Self::view(resource, l)
        })
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
    /// A waiter ahead in the queue goes first: a free lock with live waiters is
    /// granted to the first of them, and the caller is refused.
    pub fn try_lock(&mut self, revision: u64, now_ms: u64, resource: &[u8], owner: &[u8], ttl_ms: u64) -> LockReply {
        self.take(revision, now_ms, resource, owner, ttl_ms, None)
    }

    /// [`LockTable::try_lock`] that also sets the holder's value (`None` keeps it on a
    /// refresh, and is empty on a grant).
    fn take(
        &mut self,
        revision: u64,
        now_ms: u64,
        resource: &[u8],
        owner: &[u8],
        ttl_ms: u64,
        value: Option<&[u8]>,
    ) -> LockReply {
        self.grant_next(revision, now_ms, resource);
        let expires_at_ms = now_ms.saturating_add(ttl_ms);
        let (token, kept) = match self.live(now_ms, resource) {
            Some(l) if l.owner != owner => {
                return LockReply {
                    ok: false,
                    refusal: Refusal::HeldByOther,
                    lock: Some(Self::view(resource, l)),
                }
            }
            Some(l) => (l.token, l.value.clone()),
            None => (revision, Vec::new()),
        };
        let lock = Lock {
            owner: owner.to_vec(),
            token,
            expires_at_ms,
            ttl_ms,
            value: value.map_or(kept, <[u8]>::to_vec),
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

    /// Replaces the value of the lock `owner` holds (an election leader's
    /// announcement); the lease and token stay as they are.
    pub fn proclaim(&mut self, now_ms: u64, resource: &[u8], owner: &[u8], value: &[u8]) -> LockReply {
        if let Some(refused) = self.refuse(now_ms, resource, owner) {
            return refused;
        }
        let Some(mut lock) = self.locks.get(resource).cloned() else {
            return LockReply::default();
        };
        lock.value = value.to_vec();
        let view = Self::view(resource, &lock);
        self.put(resource, Some(lock));
        LockReply {
            ok: true,
            refusal: Refusal::None,
            lock: Some(view),
        }
    }

    /// Releases the lock `owner` holds, granting it to the next waiter at `revision`;
    /// also gives up `owner`'s place in the queue, so a waiter that stops waiting
    /// unlocks whether or not its grant came first.
    pub fn unlock(&mut self, revision: u64, now_ms: u64, resource: &[u8], owner: &[u8]) -> LockReply {
        self.leave_queue(resource, owner);
        if let Some(refused) = self.refuse(now_ms, resource, owner) {
            return refused;
        }
        self.put(resource, None);
        self.grant_next(revision, now_ms, resource);
        LockReply {
            ok: true,
            refusal: Refusal::None,
            lock: None,
        }
    }

    /// Grants the lock to `owner` if it is free and nobody waits ahead, refreshes it
    /// if `owner` holds it, and otherwise puts `owner` in the queue (or keeps its
    /// place) for another `place_ms`. Refused answers name the holder.
    pub fn wait_lock(&mut self, revision: u64, now_ms: u64, resource: &[u8], c: &Candidate) -> LockReply {
        let Candidate {
            owner,
            ttl_ms,
            place_ms,
            value,
        } = *c;
        self.grant_next(revision, now_ms, resource);
        let holder = self.live(now_ms, resource).map(|l| l.owner.clone());
        if holder.is_none() || holder.as_deref() == Some(owner) {
            // Free with an empty queue (grant_next would have granted otherwise), or ours.
            self.leave_queue(resource, owner);
            return self.take(revision, now_ms, resource, owner, ttl_ms, Some(value));
        }
        let expires_at_ms = now_ms.saturating_add(place_ms);
        let mut queue = self.queues.get(resource).cloned().unwrap_or_default();
        match queue.iter().position(|w| w.owner == owner) {
            Some(i) => {
                let old = queue[i].expires_at_ms;
                self.places.remove(&(old, resource.to_vec(), owner.to_vec()));
                queue[i].expires_at_ms = expires_at_ms;
                queue[i].ttl_ms = ttl_ms;
                queue[i].place_ms = place_ms;
                queue[i].value = value.to_vec();
            }
            None => queue.push_back(Waiter {
                owner: owner.to_vec(),
                ttl_ms,
                place_ms,
                expires_at_ms,
                value: value.to_vec(),
            }),
        }
        self.places.insert((expires_at_ms, resource.to_vec(), owner.to_vec()));
        self.queues.insert(resource.to_vec(), queue);
        LockReply {
            ok: false,
            refusal: Refusal::HeldByOther,
            lock: self.get(now_ms, resource),
        }
    }

    /// Whether `owner` has a place in `resource`'s queue (live or not yet pruned).
    pub fn is_waiting(&self, resource: &[u8], owner: &[u8]) -> bool {
        self.queues
            .get(resource)
            .is_some_and(|q| q.iter().any(|w| w.owner == owner))
    }

    /// Removes `owner`'s place in `resource`'s queue, if it has one.
    fn leave_queue(&mut self, resource: &[u8], owner: &[u8]) {
        let Some(queue) = self.queues.get_mut(resource) else {
            return;
        };
        if let Some(i) = queue.iter().position(|w| w.owner == owner) {
            let w = queue.remove(i);
            self.places.remove(&(w.expires_at_ms, resource.to_vec(), w.owner));
        }
        if queue.is_empty() {
            self.queues.remove(resource);
        }
    }

    /// If `resource` is free, grants it at `revision` to the first waiter whose place
    /// is still live, dropping the expired places ahead of it. The grant's lease is
    /// the waiter's TTL, cut to what is left of its place (see the module docs).
    fn grant_next(&mut self, revision: u64, now_ms: u64, resource: &[u8]) {
        if self.live(now_ms, resource).is_some() {
            return;
        }
        loop {
            let Some(queue) = self.queues.get_mut(resource) else {
                return;
            };
            let Some(w) = queue.pop_front() else {
                self.queues.remove(resource);
                return;
            };
            if queue.is_empty() {
                self.queues.remove(resource);
            }
            self.places
                .remove(&(w.expires_at_ms, resource.to_vec(), w.owner.clone()));
            if w.expires_at_ms <= now_ms {
                continue;
            }
            let lock = Lock {
                owner: w.owner,
                token: revision,
                expires_at_ms: now_ms.saturating_add(w.ttl_ms).min(w.expires_at_ms),
                ttl_ms: w.ttl_ms,
                value: w.value,
            };
            self.put(resource, Some(lock));
            return;
        }
    }

    /// Places in every queue.
    pub fn waiters(&self) -> usize {
        self.places.len()
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
        // Waiters could not renew their places while there was no leader either.
        let live: Vec<(u64, Vec<u8>, Vec<u8>)> = self
            .places
            .range((live_at_ms.saturating_add(1), Vec::new(), Vec::new())..)
            .cloned()
            .collect();
        for (at, resource, owner) in live {
            let Some(queue) = self.queues.get_mut(&resource) else {
                continue;
            };
            if let Some(w) = queue.iter_mut().find(|w| w.owner == owner) {
                w.expires_at_ms = at.max(now_ms.saturating_add(w.place_ms));
                self.places.remove(&(at, resource.clone(), owner.clone()));
                self.places.insert((w.expires_at_ms, resource, owner));
            }
        }
    }

    /// Removes up to `limit` expired locks and up to `limit` expired places, granting
    /// each freed lock to its next waiter at `revision`; returns how many were removed.
    pub fn sweep(&mut self, revision: u64, now_ms: u64, limit: u32) -> u32 {
        let due: Vec<Vec<u8>> = self
            .expiry
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit as usize)
            .map(|(_, r)| r.clone())
            .collect();
        for r in &due {
            self.put(r, None);
            self.grant_next(revision, now_ms, r);
        }
        let gone: Vec<(u64, Vec<u8>, Vec<u8>)> = self
            .places
            .iter()
            .take_while(|(at, _, _)| *at <= now_ms)
            .take(limit as usize)
            .cloned()
            .collect();
        for (_, resource, owner) in &gone {
            self.leave_queue(resource, owner);
        }
        (due.len() + gone.len()) as u32
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
        let lock = self.expiry.get_min().map(|(at, _)| *at);
        let place = self.places.get_min().map(|(at, _, _)| *at);
        lock.into_iter().chain(place).min()
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
        assert_eq!(t.unlock(12, 1100, b"r", b"B").refusal, Refusal::HeldByOther);
        assert_eq!(t.extend(1100, b"x", b"A", 10).refusal, Refusal::NotHeld);
        assert!(t.unlock(12, 1100, b"r", b"A").ok);
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
        assert_eq!(t.sweep(4, 50, 10), 1);
        assert_eq!(t.next_expiry(), Some(150));
    }

    fn cand(owner: &[u8], ttl_ms: u64, place_ms: u64) -> Candidate<'_> {
        Candidate {
            owner,
            ttl_ms,
            place_ms,
            value: b"",
        }
    }

    fn holder(t: &LockTable, now: u64, r: &[u8]) -> Option<(Vec<u8>, u64)> {
        t.get(now, r).map(|l| (l.owner, l.token))
    }

    #[test]
    fn waiters_are_granted_in_arrival_order_with_increasing_tokens() {
        let mut t = LockTable::default();
        assert!(
            t.wait_lock(1, 0, b"r", &cand(b"A", 1000, 500)).ok,
            "free: granted at once"
        );
        for (rev, w) in [(2, b"B"), (3, b"C"), (4, b"D")] {
            let r = t.wait_lock(rev, 0, b"r", &cand(w, 1000, 500));
            assert!(!r.ok);
            assert_eq!(r.lock.map(|l| l.owner), Some(b"A".to_vec()), "names the holder");
        }
        assert_eq!(t.waiters(), 3);
        assert!(t.unlock(10, 100, b"r", b"A").ok);
        assert_eq!(holder(&t, 100, b"r"), Some((b"B".to_vec(), 10)));
        // Someone who never queued cannot jump the queue.
        assert!(!t.try_lock(11, 100, b"r", b"E", 1000).ok);
        assert!(t.unlock(12, 100, b"r", b"B").ok);
        assert_eq!(holder(&t, 100, b"r"), Some((b"C".to_vec(), 12)));
        // C's lease runs out (cut to its place: 0 + 500): the sweep grants D.
        assert!(!t.is_waiting(b"r", b"C"));
        let removed = t.sweep(13, 500, 10);
        assert!(removed >= 1);
        assert_eq!(holder(&t, 500, b"r"), None, "D's place ran out at 500 too");
        assert_eq!(t.waiters(), 0);
    }

    #[test]
    fn a_dead_waiter_is_skipped_and_a_grant_is_cut_to_the_place_left() {
        let mut t = LockTable::default();
        t.try_lock(1, 0, b"r", b"A", 100);
        t.wait_lock(2, 0, b"r", &cand(b"dead", 10_000, 50));
        t.wait_lock(3, 0, b"r", &cand(b"live", 10_000, 1_000));
        assert!(t.unlock(4, 60, b"r", b"A").ok);
        let l = t.get(60, b"r").expect("granted");
        assert_eq!((l.owner.as_slice(), l.token), (b"live".as_slice(), 4));
        assert_eq!(l.expires_at_ms, 1_000, "what was left of the place, not the 10 s TTL");
        // Asking again as the holder refreshes to the full TTL.
        let r = t.wait_lock(5, 100, b"r", &cand(b"live", 10_000, 1_000));
        assert!(r.ok);
        assert_eq!(r.lock.map(|l| (l.token, l.expires_at_ms)), Some((4, 10_100)));
    }

    #[test]
    fn an_expired_lease_goes_to_the_first_waiter_on_the_next_touch() {
        let mut t = LockTable::default();
        t.try_lock(1, 0, b"r", b"A", 100);
        t.wait_lock(2, 0, b"r", &cand(b"B", 1_000, 5_000));
        // No sweep yet: a newcomer's try finds the lease over and the queue first.
        let e = t.try_lock(3, 150, b"r", b"E", 1_000);
        assert!(!e.ok);
        assert_eq!(holder(&t, 150, b"r"), Some((b"B".to_vec(), 3)));
    }

    #[test]
    fn leaving_renewing_and_failover_keep_places_right() {
        let mut t = LockTable::default();
        t.try_lock(1, 0, b"r", b"A", 10_000);
        t.wait_lock(2, 0, b"r", &cand(b"B", 1_000, 100));
        t.wait_lock(3, 0, b"r", &cand(b"C", 1_000, 100));
        assert_eq!(t.next_expiry(), Some(100), "places are swept when due");
        // Renewing keeps B's place (still first) with a later expiry.
        t.wait_lock(4, 50, b"r", &cand(b"B", 1_000, 100));
        // C gives up: it unlocks, which leaves the queue.
        assert_eq!(t.unlock(5, 60, b"r", b"C").refusal, Refusal::HeldByOther);
        assert!(!t.is_waiting(b"r", b"C"));
        // A new term extends places like leases: B keeps its place past 150.
        t.extend_all_leases(60, 1_000);
        assert_eq!(t.sweep(6, 1_050, 10), 0);
        assert!(t.is_waiting(b"r", b"B"));
        assert!(t.unlock(7, 1_060, b"r", b"A").ok);
        assert_eq!(holder(&t, 1_060, b"r"), Some((b"B".to_vec(), 7)));
    }
}
