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
//!
//! A name can instead be a semaphore ([`LockTable::acquire_permit`]): up to `limit`
//! owners hold it at once, each with a permit of its own (lease, token), granted
//! from the same kind of queue. A name is a lock or a semaphore, never both at once;
//! a semaphore's limit is set by whoever creates it and holds until nobody holds or
//! waits for it. Permits granted by one entry (a sweep can free several) each need a
//! token of their own, so a permit's token is the granting entry's revision or, when
//! an earlier permit already took it, the next number after the last permit token:
//! unique, increasing, never below the entry's revision.
//!
//! An unlock also withdraws the owner's earlier requests: a lock request its client
//! sent before the unlock (a smaller request id) but that reached the log after it
//! (an attempt that timed out at the client and was forwarded late) is refused
//! instead of queueing or granting a lock nobody will renew ([`LockTable::withdraw`]).

use serde::{Deserialize, Serialize};

use super::{due, Map, Seq, Set};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lock {
    pub owner: Vec<u8>,
    pub token: u64,
    pub expires_at_ms: u64,
    pub ttl_ms: u64,
    /// What the holder announces (an election's leader value); empty for plain locks.
    pub value: Vec<u8>,
}

/// One holder's permit of a semaphore.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Permit {
    pub token: u64,
    pub expires_at_ms: u64,
    pub ttl_ms: u64,
}

/// A name up to `limit` owners hold at once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Semaphore {
    pub limit: u32,
    /// By owner; expired permits stay until swept or the semaphore is next touched.
    pub holders: Map<Vec<u8>, Permit>,
}

impl Semaphore {
    fn live(&self, now_ms: u64) -> impl Iterator<Item = (&Vec<u8>, &Permit)> {
        self.holders.iter().filter(move |(_, p)| p.expires_at_ms > now_ms)
    }
}

/// A lock as answered to clients. For a semaphore, the caller's permit when it holds
/// one; otherwise no owner, the newest live permit's token, and the counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockView {
    pub resource: Vec<u8>,
    pub owner: Vec<u8>,
    pub token: u64,
    pub expires_at_ms: u64,
    pub value: Vec<u8>,
    /// Places in the lock's queue (some may have expired and not been pruned yet).
    pub waiters: u32,
    /// A semaphore's limit; 0 for a lock.
    pub permits: u32,
    /// A semaphore's live permits; 0 for a lock.
    pub holders: u32,
}

/// Why an extend or unlock did not happen.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Refusal {
    #[default]
    None,
    NotHeld,
    HeldByOther,
    /// Asked as a lock of a semaphore, as a semaphore of a lock, or with a limit other
    /// than the semaphore's; the view says what the name is.
    Mismatch,
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
    /// Semaphores by name (see the module docs).
    semaphores: Map<Vec<u8>, Semaphore>,
    /// (expires_at_ms, name, owner) for every permit.
    permit_expiry: Set<(u64, Vec<u8>, Vec<u8>)>,
    /// The last permit token handed out.
    last_permit_token: u64,
    /// (resource, owner) → (client, request id, until): the owner unlocked with that
    /// request; until then, that client's lock requests for it with smaller ids are
    /// stale.
    withdrawn: Map<(Vec<u8>, Vec<u8>), Withdrawal>,
    /// (until, resource, owner) for every withdrawal.
    withdrawn_expiry: Set<(u64, Vec<u8>, Vec<u8>)>,
}

/// An owner's unlock of a name: `(client, request id, until)`.
type Withdrawal = (String, u64, u64);

/// How long an unlock withdraws the owner's earlier requests: longer than a request
/// can take to reach the log (the server's request deadline is 10 s by default).
pub const WITHDRAWN_MS: u64 = 60_000;

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
            ..LockView::default()
        }
    }

    fn waiting(&self, resource: &[u8]) -> u32 {
        self.queues.get(resource).map_or(0, |q| q.len() as u32)
    }

    /// A semaphore as answered: `owner`'s permit if it holds a live one, else the
    /// newest live permit's token with no owner.
    fn semaphore_view(&self, now_ms: u64, name: &[u8], sem: &Semaphore, owner: &[u8]) -> LockView {
        let mine = sem.holders.get(owner).filter(|p| p.expires_at_ms > now_ms);
        let newest = sem.live(now_ms).map(|(_, p)| p.token).max().unwrap_or(0);
        LockView {
            resource: name.to_vec(),
            owner: mine.map_or_else(Vec::new, |_| owner.to_vec()),
            token: mine.map_or(newest, |p| p.token),
            expires_at_ms: mine.map_or(0, |p| p.expires_at_ms),
            value: Vec::new(),
            waiters: self.waiting(name),
            permits: sem.limit,
            holders: sem.live(now_ms).count() as u32,
        }
    }

    /// The live lock on `resource` with the number of callers waiting for it, or the
    /// semaphore of that name while anyone holds a permit.
    pub fn get(&self, now_ms: u64, resource: &[u8]) -> Option<LockView> {
        if let Some(sem) = self.semaphores.get(resource) {
            return (sem.live(now_ms).next().is_some()).then(|| self.semaphore_view(now_ms, resource, sem, b""));
        }
        self.live(now_ms, resource).map(|l| LockView {
            waiters: self.waiting(resource),
            ..Self::view(resource, l)
        })
    }

    /// The lock or permit `owner` holds on `resource`, if it holds one.
    pub fn held_by(&self, now_ms: u64, resource: &[u8], owner: &[u8]) -> Option<LockView> {
        if let Some(sem) = self.semaphores.get(resource) {
            let held = sem.holders.get(owner).is_some_and(|p| p.expires_at_ms > now_ms);
            return held.then(|| self.semaphore_view(now_ms, resource, sem, owner));
        }
        self.get(now_ms, resource).filter(|l| l.owner == owner)
    }

    /// Whether `token` is live on `resource`: the lock's token, or one of the
    /// semaphore's live permits. Refused, it answers the live token (the newest
    /// permit's for a semaphore; 0 when free).
    pub fn fence(&self, now_ms: u64, resource: &[u8], token: u64) -> Result<(), u64> {
        if let Some(sem) = self.semaphores.get(resource) {
            if sem.live(now_ms).any(|(_, p)| p.token == token) {
                return Ok(());
            }
            return Err(sem.live(now_ms).map(|(_, p)| p.token).max().unwrap_or(0));
        }
        match self.live(now_ms, resource).map_or(0, |l| l.token) {
            live if live == token => Ok(()),
            live => Err(live),
        }
    }

    /// Whether `test` holds for the live token of `resource` (0 when free); for a
    /// semaphore, for one of its live permits' tokens (0 when none is held).
    pub fn token_holds(&self, now_ms: u64, resource: &[u8], test: impl Fn(u64) -> bool) -> bool {
        match self.semaphores.get(resource) {
            Some(sem) if sem.live(now_ms).next().is_some() => sem.live(now_ms).any(|(_, p)| test(p.token)),
            _ => test(self.live(now_ms, resource).map_or(0, |l| l.token)),
        }
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
        if let Some(refused) = self.not_a_lock(now_ms, resource) {
            return refused;
        }
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

    /// Refuses a lock operation on a semaphore's name.
    fn not_a_lock(&self, now_ms: u64, resource: &[u8]) -> Option<LockReply> {
        let sem = self.semaphores.get(resource)?;
        Some(LockReply {
            ok: false,
            refusal: Refusal::Mismatch,
            lock: Some(self.semaphore_view(now_ms, resource, sem, b"")),
        })
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

    /// Extends the lock `owner` holds on `resource`, or its permit of the semaphore.
    pub fn extend(&mut self, now_ms: u64, resource: &[u8], owner: &[u8], ttl_ms: u64) -> LockReply {
        if self.semaphores.contains_key(resource) {
            return self.extend_permit(now_ms, resource, owner, ttl_ms);
        }
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
    /// On a semaphore, gives back `owner`'s permit (and its place) the same way.
    pub fn unlock(&mut self, revision: u64, now_ms: u64, resource: &[u8], owner: &[u8]) -> LockReply {
        self.leave_queue(resource, owner);
        if self.semaphores.contains_key(resource) {
            return self.release_permit(revision, now_ms, resource, owner);
        }
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
            owner, ttl_ms, value, ..
        } = *c;
        self.grant_next(revision, now_ms, resource);
        if let Some(refused) = self.not_a_lock(now_ms, resource) {
            return refused;
        }
        let holder = self.live(now_ms, resource).map(|l| l.owner.clone());
        if holder.is_none() || holder.as_deref() == Some(owner) {
            // Free with an empty queue (grant_next would have granted otherwise), or ours.
            self.leave_queue(resource, owner);
            return self.take(revision, now_ms, resource, owner, ttl_ms, Some(value));
        }
        self.enqueue(now_ms, resource, c);
        LockReply {
            ok: false,
            refusal: Refusal::HeldByOther,
            lock: self.get(now_ms, resource),
        }
    }

    /// Puts `c` at the back of `resource`'s queue, or renews its place there, for
    /// another `place_ms`.
    fn enqueue(&mut self, now_ms: u64, resource: &[u8], c: &Candidate) {
        let Candidate {
            owner,
            ttl_ms,
            place_ms,
            value,
        } = *c;
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
    }

    /// Takes a permit of the semaphore `name` (created with `limit` permits if it does
    /// not exist) for `c.owner`: granted if one is free and nobody waits ahead,
    /// refreshed (same token) if the owner holds one, and otherwise, when
    /// `c.place_ms > 0`, a place in the queue. Refused answers carry the counts.
    pub fn acquire_permit(&mut self, revision: u64, now_ms: u64, name: &[u8], limit: u32, c: &Candidate) -> LockReply {
        self.grant_next(revision, now_ms, name);
        if let Some(l) = self.live(now_ms, name) {
            return LockReply {
                ok: false,
                refusal: Refusal::Mismatch,
                lock: Some(Self::view(name, l)),
            };
        }
        // A lock whose lease ran out (grant_next granted no waiter, so none was left).
        if self.locks.contains_key(name) {
            self.put(name, None);
        }
        let mut sem = match self.semaphores.get(name) {
            Some(sem) if sem.limit != limit => {
                return LockReply {
                    ok: false,
                    refusal: Refusal::Mismatch,
                    lock: Some(self.semaphore_view(now_ms, name, sem, c.owner)),
                };
            }
            Some(sem) => sem.clone(),
            None => Semaphore {
                limit,
                holders: Map::new(),
            },
        };
        let expires_at_ms = now_ms.saturating_add(c.ttl_ms);
        let held = sem
            .holders
            .get(c.owner)
            .filter(|p| p.expires_at_ms > now_ms)
            .map(|p| p.token);
        // grant_next filled every free permit from the queue: one is free only when
        // nobody waits.
        let free = (sem.live(now_ms).count() as u32) < sem.limit;
        let token = match held {
            Some(token) => token,
            None if free => self.next_permit_token(revision),
            None => {
                if c.place_ms > 0 {
                    self.enqueue(now_ms, name, c);
                }
                return LockReply {
                    ok: false,
                    refusal: Refusal::HeldByOther,
                    lock: Some(self.semaphore_view(now_ms, name, &sem, c.owner)),
                };
            }
        };
        self.leave_queue(name, c.owner);
        self.put_permit(
            name,
            &mut sem,
            c.owner,
            Permit {
                token,
                expires_at_ms,
                ttl_ms: c.ttl_ms,
            },
        );
        let view = self.semaphore_view(now_ms, name, &sem, c.owner);
        self.semaphores.insert(name.to_vec(), sem);
        LockReply {
            ok: true,
            refusal: Refusal::None,
            lock: Some(view),
        }
    }

    fn next_permit_token(&mut self, revision: u64) -> u64 {
        self.last_permit_token = revision.max(self.last_permit_token.saturating_add(1));
        self.last_permit_token
    }

    /// Sets `owner`'s permit in `sem`, keeping the expiry index in step.
    fn put_permit(&mut self, name: &[u8], sem: &mut Semaphore, owner: &[u8], permit: Permit) {
        self.permit_expiry
            .insert((permit.expires_at_ms, name.to_vec(), owner.to_vec()));
        if let Some(old) = sem.holders.insert(owner.to_vec(), permit) {
            if sem.holders.get(owner).map(|p| p.expires_at_ms) != Some(old.expires_at_ms) {
                self.permit_expiry
                    .remove(&(old.expires_at_ms, name.to_vec(), owner.to_vec()));
            }
        }
    }

    /// Removes `owner`'s permit from `sem`, if it has one.
    fn drop_permit(&mut self, name: &[u8], sem: &mut Semaphore, owner: &[u8]) -> Option<Permit> {
        let old = sem.holders.remove(owner)?;
        self.permit_expiry
            .remove(&(old.expires_at_ms, name.to_vec(), owner.to_vec()));
        Some(old)
    }

    fn extend_permit(&mut self, now_ms: u64, name: &[u8], owner: &[u8], ttl_ms: u64) -> LockReply {
        let Some(mut sem) = self.semaphores.get(name).cloned() else {
            return LockReply::default();
        };
        let Some(mut permit) = sem.holders.get(owner).filter(|p| p.expires_at_ms > now_ms).cloned() else {
            return LockReply {
                ok: false,
                refusal: Refusal::NotHeld,
                lock: Some(self.semaphore_view(now_ms, name, &sem, owner)),
            };
        };
        permit.expires_at_ms = now_ms.saturating_add(ttl_ms);
        permit.ttl_ms = ttl_ms;
        self.put_permit(name, &mut sem, owner, permit);
        let view = self.semaphore_view(now_ms, name, &sem, owner);
        self.semaphores.insert(name.to_vec(), sem);
        LockReply {
            ok: true,
            refusal: Refusal::None,
            lock: Some(view),
        }
    }

    /// Gives back `owner`'s permit and grants the freed permit to the next waiter.
    fn release_permit(&mut self, revision: u64, now_ms: u64, name: &[u8], owner: &[u8]) -> LockReply {
        let Some(mut sem) = self.semaphores.get(name).cloned() else {
            return LockReply::default();
        };
        let held = self
            .drop_permit(name, &mut sem, owner)
            .is_some_and(|p| p.expires_at_ms > now_ms);
        self.semaphores.insert(name.to_vec(), sem);
        self.grant_permits(revision, now_ms, name);
        LockReply {
            ok: held,
            refusal: if held { Refusal::None } else { Refusal::NotHeld },
            lock: None,
        }
    }

    /// Drops the semaphore's expired permits and grants its free permits to the
    /// first live waiters, each with a token of its own (cut to what is left of its
    /// place, like a lock's grant); forgets the semaphore once nobody holds or waits.
    fn grant_permits(&mut self, revision: u64, now_ms: u64, name: &[u8]) {
        let Some(mut sem) = self.semaphores.get(name).cloned() else {
            return;
        };
        let expired: Vec<Vec<u8>> = sem
            .holders
            .iter()
            .filter(|(_, p)| p.expires_at_ms <= now_ms)
            .map(|(owner, _)| owner.clone())
            .collect();
        for owner in expired {
            self.drop_permit(name, &mut sem, &owner);
        }
        while (sem.holders.len() as u32) < sem.limit {
            let Some(w) = self.next_waiter(now_ms, name) else {
                break;
            };
            let permit = Permit {
                token: self.next_permit_token(revision),
                expires_at_ms: now_ms.saturating_add(w.ttl_ms).min(w.expires_at_ms),
                ttl_ms: w.ttl_ms,
            };
            self.put_permit(name, &mut sem, &w.owner, permit);
        }
        if sem.holders.is_empty() && !self.queues.contains_key(name) {
            self.semaphores.remove(name);
        } else {
            self.semaphores.insert(name.to_vec(), sem);
        }
    }

    /// Records that `owner` gave up `resource` with `client`'s request `request_id`.
    pub fn withdraw(&mut self, now_ms: u64, resource: &[u8], owner: &[u8], client: &str, request_id: u64) {
        let key = (resource.to_vec(), owner.to_vec());
        let until = now_ms.saturating_add(WITHDRAWN_MS);
        if let Some((_, _, old)) = self.withdrawn.get(&key) {
            self.withdrawn_expiry.remove(&(*old, key.0.clone(), key.1.clone()));
        }
        self.withdrawn_expiry.insert((until, key.0.clone(), key.1.clone()));
        self.withdrawn.insert(key, (client.to_owned(), request_id, until));
    }

    /// Whether a lock request by `owner` for `resource`, sent by `client` as
    /// `request_id`, was sent before that owner's unlock (see the module docs).
    pub fn is_withdrawn(&self, resource: &[u8], owner: &[u8], client: &str, request_id: u64) -> bool {
        self.withdrawn
            .get(&(resource.to_vec(), owner.to_vec()))
            .is_some_and(|(c, id, _)| c == client && request_id < *id)
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
        if self.semaphores.contains_key(resource) {
            return self.grant_permits(revision, now_ms, resource);
        }
        if self.live(now_ms, resource).is_some() {
            return;
        }
        if let Some(w) = self.next_waiter(now_ms, resource) {
            let lock = Lock {
                owner: w.owner,
                token: revision,
                expires_at_ms: now_ms.saturating_add(w.ttl_ms).min(w.expires_at_ms),
                ttl_ms: w.ttl_ms,
                value: w.value,
            };
            self.put(resource, Some(lock));
        }
    }

    /// Takes the first waiter whose place is live out of `resource`'s queue, dropping
    /// the expired places ahead of it.
    fn next_waiter(&mut self, now_ms: u64, resource: &[u8]) -> Option<Waiter> {
        loop {
            let queue = self.queues.get_mut(resource)?;
            let Some(w) = queue.pop_front() else {
                self.queues.remove(resource);
                return None;
            };
            if queue.is_empty() {
                self.queues.remove(resource);
            }
            self.places
                .remove(&(w.expires_at_ms, resource.to_vec(), w.owner.clone()));
            if w.expires_at_ms > now_ms {
                return Some(w);
            }
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
        let live: Vec<(u64, Vec<u8>, Vec<u8>)> = self
            .permit_expiry
            .range((live_at_ms.saturating_add(1), Vec::new(), Vec::new())..)
            .cloned()
            .collect();
        for (_, name, owner) in live {
            let Some(mut sem) = self.semaphores.get(&name).cloned() else {
                continue;
            };
            if let Some(mut permit) = sem.holders.get(&owner).cloned() {
                permit.expires_at_ms = permit.expires_at_ms.max(now_ms.saturating_add(permit.ttl_ms));
                self.put_permit(&name, &mut sem, &owner, permit);
                self.semaphores.insert(name, sem);
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
        let expired = due(&self.expiry, now_ms, limit);
        for (_, r) in &expired {
            self.put(r, None);
            self.grant_next(revision, now_ms, r);
        }
        let mut names: Vec<Vec<u8>> = due(&self.permit_expiry, now_ms, limit)
            .into_iter()
            .map(|(_, name, _)| name)
            .collect();
        let permits = names.len();
        names.sort();
        names.dedup();
        for name in &names {
            // Drops every expired permit of the semaphore and grants the freed ones.
            self.grant_permits(revision, now_ms, name);
        }
        let gone = due(&self.places, now_ms, limit);
        for (_, resource, owner) in &gone {
            self.leave_queue(resource, owner);
            // A semaphore nobody holds is forgotten with its last waiter.
            self.grant_permits(revision, now_ms, resource);
        }
        for (at, resource, owner) in due(&self.withdrawn_expiry, now_ms, limit) {
            self.withdrawn_expiry.remove(&(at, resource.clone(), owner.clone()));
            self.withdrawn.remove(&(resource, owner));
        }
        (expired.len() + permits + gone.len()) as u32
    }

    /// Locks and permits held, expired or not yet swept.
    pub fn len(&self) -> usize {
        self.locks.len() + self.permit_expiry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `resource` has an entry (held, or expired and not yet swept).
    pub fn contains(&self, resource: &[u8]) -> bool {
        self.locks.contains_key(resource)
    }

    /// Whether `owner` has a permit of `name` (live or not yet swept).
    pub fn has_permit(&self, name: &[u8], owner: &[u8]) -> bool {
        self.semaphores.get(name).is_some_and(|s| s.holders.contains_key(owner))
    }

    pub fn next_expiry(&self) -> Option<u64> {
        let lock = self.expiry.get_min().map(|(at, _)| *at);
        let place = self.places.get_min().map(|(at, _, _)| *at);
        let permit = self.permit_expiry.get_min().map(|(at, _, _)| *at);
        let withdrawn = self.withdrawn_expiry.get_min().map(|(at, _, _)| *at);
        [lock, place, permit, withdrawn].into_iter().flatten().min()
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
        assert_eq!(t.fence(99, b"r", 5), Ok(()));
        assert_eq!(t.fence(100, b"r", 5), Err(0));
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

    fn permit(t: &mut LockTable, rev: u64, now: u64, owner: &[u8], limit: u32, place_ms: u64) -> LockReply {
        t.acquire_permit(rev, now, b"s", limit, &cand(owner, 1_000, place_ms))
    }

    #[test]
    fn a_semaphore_grants_up_to_its_limit_with_a_token_each() {
        let mut t = LockTable::default();
        let a = permit(&mut t, 1, 0, b"A", 2, 0);
        let b = permit(&mut t, 2, 0, b"B", 2, 0);
        assert!(a.ok && b.ok);
        let c = permit(&mut t, 3, 0, b"C", 2, 0);
        assert!(!c.ok);
        assert_eq!(c.refusal, Refusal::HeldByOther);
        let v = c.lock.expect("counts");
        assert_eq!((v.permits, v.holders, v.owner.len()), (2, 2, 0));
        assert!(!t.is_waiting(b"s", b"C"), "no place without place_ms");
        // Refreshing keeps the token.
        let again = permit(&mut t, 4, 10, b"A", 2, 0);
        assert_eq!(again.lock.map(|l| (l.token, l.expires_at_ms)), Some((1, 1_010)));
        assert_eq!(t.fence(10, b"s", 1), Ok(()));
        assert_eq!(t.fence(10, b"s", 2), Ok(()));
        assert_eq!(t.fence(10, b"s", 3), Err(2), "answers the newest live token");
        assert!(t.token_holds(10, b"s", |tok| tok == 2));
        assert_eq!(t.len(), 2);
        assert!(t.unlock(5, 20, b"s", b"B").ok);
        assert_eq!(t.fence(20, b"s", 2), Err(1));
        assert!(!t.unlock(6, 20, b"s", b"B").ok, "released twice");
        assert!(t.unlock(7, 20, b"s", b"A").ok);
        assert_eq!(t.get(20, b"s"), None, "forgotten once nobody holds or waits");
        assert!(t.is_empty());
    }

    #[test]
    fn waiters_get_freed_permits_in_order_each_with_its_own_token() {
        let mut t = LockTable::default();
        permit(&mut t, 1, 0, b"A", 2, 0);
        permit(&mut t, 2, 0, b"B", 2, 0);
        for (rev, w) in [(3, b"C"), (4, b"D"), (5, b"E")] {
            assert!(!permit(&mut t, rev, 0, w, 2, 5_000).ok);
        }
        assert_eq!(t.get(0, b"s").map(|v| v.waiters), Some(3));
        // A newcomer does not jump the queue when a permit frees.
        assert!(t.unlock(10, 100, b"s", b"A").ok);
        assert!(!permit(&mut t, 11, 100, b"F", 2, 0).ok);
        assert_eq!(t.held_by(100, b"s", b"C").map(|v| v.token), Some(10));
        // B's and C's leases run out (1,000 and 100 + 1,000): one sweep grants two
        // permits, each with a token of its own.
        let removed = t.sweep(12, 1_100, 10);
        assert!(removed >= 2);
        let d = t.held_by(1_100, b"s", b"D").map(|v| v.token);
        let e = t.held_by(1_100, b"s", b"E").map(|v| v.token);
        assert_eq!(
            (d, e),
            (Some(12), Some(13)),
            "unique, increasing, from the entry's revision"
        );
        assert!(t.unlock(13, 1_100, b"s", b"D").ok);
        assert!(permit(&mut t, 14, 1_100, b"G", 2, 0)
            .lock
            .is_some_and(|v| v.token == 14));
        assert_eq!(t.waiters(), 0);
    }

    #[test]
    fn a_name_is_a_lock_or_a_semaphore() {
        let mut t = LockTable::default();
        permit(&mut t, 1, 0, b"A", 3, 0);
        assert_eq!(permit(&mut t, 2, 0, b"B", 4, 0).refusal, Refusal::Mismatch);
        assert_eq!(t.try_lock(3, 0, b"s", b"B", 100).refusal, Refusal::Mismatch);
        assert_eq!(
            t.wait_lock(4, 0, b"s", &cand(b"B", 100, 100)).refusal,
            Refusal::Mismatch
        );
        t.try_lock(5, 0, b"l", b"A", 100);
        let asked = t.acquire_permit(6, 0, b"l", 2, &cand(b"B", 100, 0));
        assert_eq!(asked.refusal, Refusal::Mismatch);
        assert_eq!(asked.lock.map(|v| v.permits), Some(0));
        // Once the lock's lease is over, the name can be a semaphore.
        assert!(t.acquire_permit(7, 200, b"l", 2, &cand(b"B", 100, 0)).ok);
        // Extend and proclaim act on permits, not on a lock of that name.
        assert!(t.extend(250, b"l", b"B", 500).ok);
        assert_eq!(t.held_by(250, b"l", b"B").map(|v| v.expires_at_ms), Some(750));
        assert_eq!(t.extend(250, b"l", b"C", 500).refusal, Refusal::NotHeld);
        assert!(!t.proclaim(250, b"l", b"B", b"v").ok);
    }

    #[test]
    fn a_new_term_extends_permits_and_the_sweep_frees_them() {
        let mut t = LockTable::default();
        t.acquire_permit(1, 0, b"s", 2, &cand(b"A", 100, 0));
        t.acquire_permit(2, 0, b"s", 2, &cand(b"B", 10, 0));
        assert_eq!(t.next_expiry(), Some(10));
        t.extend_all_leases(50, 50);
        assert_eq!(t.held_by(50, b"s", b"A").map(|v| v.expires_at_ms), Some(150));
        assert!(t.held_by(50, b"s", b"B").is_none(), "B's lease was over");
        t.sweep(3, 50, 10);
        assert_eq!(t.len(), 1);
        assert_eq!(t.sweep(4, 150, 10), 1);
        assert!(t.is_empty());
        assert_eq!(t.get(150, b"s"), None);
        assert_eq!(t.next_expiry(), None);
    }
}
