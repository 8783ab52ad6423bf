//! The `Locks` service: persistent locks go through the log; ephemeral locks live
//! in the confirmed leader's memory (see `ephemeral`).

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::locks_client::LocksClient;
use kahuna_proto::v1::locks_server::Locks;
use kahuna_proto::v1::Durability;
use kahuna_proto::ErrorKind;
use tonic::{Request, Response, Status};

use std::time::Duration;

use super::limits;
use super::{forward_unless_leader, Api};
use crate::capacity::Item;
use crate::ephemeral::{EphemeralLock, EphemeralTier, LeaseGate, Now};
use crate::errors::{self, internal, shutting_down, RaftFailure};
use crate::sm::{LockReply, LockView, Op, Refusal, Reply};

/// Longest one try-lock call waits in a lock's queue; a caller waiting longer calls
/// again as the same owner.
pub const MAX_LOCK_WAIT_MS: u64 = 5_000;
/// How long a waiter's place outlives the call that took or renewed it: the time the
/// caller has to call again before it loses its place.
pub const PLACE_GRACE_MS: u64 = 2_000;

pub(super) fn info(view: LockView, now_ms: u64, durability: Durability) -> pb::LockInfo {
    pb::LockInfo {
        resource: view.resource,
        owner: view.owner,
        fencing_token: view.token,
        expires_at_ms: view.expires_at_ms,
        remaining_ms: view.expires_at_ms.saturating_sub(now_ms),
        durability: durability as i32,
        value: view.value,
        waiters: view.waiters,
        permits: view.permits,
        holders: view.holders,
    }
}

/// Most permits a semaphore may have: each live one is an entry in every member's
/// memory, like a lock.
pub const MAX_SEMAPHORE_PERMITS: u32 = 10_000;

/// The error for a lock asked as a semaphore, a semaphore as a lock, or a semaphore
/// with another number of permits (`asked` ≤ 1 is a lock).
fn mismatch(resource: &[u8], asked: u32, is: Option<&LockView>) -> Status {
    let name = String::from_utf8_lossy(resource);
    let asked = match asked {
        0 | 1 => "asked as a lock".to_owned(),
        n => format!("asked as a semaphore of {n} permits"),
    };
    let is = match is {
        Some(v) if v.permits > 0 => format!("a semaphore of {} permits", v.permits),
        _ => "a lock".to_owned(),
    };
    errors::invalid(format!(
        "'{name}' is {is} while anyone holds or waits for it, {asked}; everyone must ask for it the same way"
    ))
}

/// What an election leader may announce: the lock table is in every member's memory.
pub const MAX_LOCK_VALUE_BYTES: usize = 64 * 1024;

fn lock_value(value: &[u8]) -> Result<(), Status> {
    if value.len() > MAX_LOCK_VALUE_BYTES {
        return Err(errors::invalid(format!(
            "value is {} bytes; the limit for a lock's value is {MAX_LOCK_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    Ok(())
}

fn refusal(r: Refusal) -> i32 {
    let r = match r {
        Refusal::None => pb::LockRefusal::None,
        Refusal::NotHeld => pb::LockRefusal::NotHeld,
        // Only acquiring can meet a name of the other kind, and that is an error.
        Refusal::HeldByOther | Refusal::Mismatch => pb::LockRefusal::HeldByOther,
    };
    r as i32
}

/// A lock operation's outcome, whichever tier answered it.
struct Outcome {
    reply: LockReply,
    header: pb::ResponseHeader,
    now_ms: u64,
    retry_after_ms: u64,
}

impl Api {
    fn lock_args(&self, resource: &[u8], owner: Option<&[u8]>, durability: i32) -> Result<Durability, Status> {
        limits::resource("resource", resource)?;
        if let Some(owner) = owner {
            limits::owner(owner)?;
        }
        limits::enumeration::<Durability>("durability", durability)
    }

    fn check_ttl(&self, durability: Durability, ttl_ms: u64) -> Result<(), Status> {
        match durability {
            Durability::Persistent => limits::bounded_ttl(ttl_ms, limits::MAX_LOCK_TTL_MS, "persistent locks"),
            Durability::Ephemeral => limits::bounded_ttl(
                ttl_ms,
                self.node.ephemeral.max_ttl().as_millis() as u64,
                "ephemeral locks",
            ),
        }
    }

    /// Runs a lock operation on the tier `durability` names. `ephemeral` runs it on the
    /// ephemeral tier and may ask for the tier's lease gate to be opened first (see
    /// [`Api::ephemeral_lease`]) for `ttl_ms`.
    async fn lock_op(
        &self,
        durability: Durability,
        op: Op,
        request: Option<&pb::RequestId>,
        ttl_ms: u64,
        ephemeral: impl Fn(&EphemeralTier, u64, Now) -> Option<Result<EphemeralLock, LeaseGate>>,
    ) -> Result<Outcome, Status> {
        match durability {
            Durability::Persistent => {
                let p = self.propose(op, None, limits::request_id(request)?).await?;
                match p.reply {
                    Reply::Lock(reply) => Ok(Outcome {
                        reply,
                        header: p.header,
                        now_ms: p.time_ms,
                        retry_after_ms: 0,
                    }),
                    other => Err(internal(format!("state machine gave an unexpected answer: {other:?}"))),
                }
            }
            Durability::Ephemeral => {
                let (answer, header, now_ms) = self.ephemeral_lease(ttl_ms, ephemeral).await?;
                Ok(match answer {
                    EphemeralLock::Reply(reply) => Outcome {
                        reply,
                        header,
                        now_ms,
                        retry_after_ms: 0,
                    },
                    EphemeralLock::RetryAfter(d) => Outcome {
                        reply: LockReply::default(),
                        header,
                        now_ms,
                        retry_after_ms: (d.as_millis() as u64).max(1),
                    },
                })
            }
        }
    }

    /// A persistent try-lock that waits in the lock's queue: takes the lock or a place
    /// through the log, then holds the call until the entry that frees the lock grants
    /// it to this owner, or `wait_ms` (at most [`MAX_LOCK_WAIT_MS`]) passes. The grant
    /// is read from this member's applied state: applied means committed, and the
    /// lease it starts began after the caller sent this request.
    ///
    /// A semaphore's permit (`permits` > 1) is taken the same way, and with `wait_ms`
    /// 0 answers at once.
    async fn wait_for_lock(&self, r: pb::TryLockRequest) -> Result<Response<pb::TryLockResponse>, Status> {
        let received = tokio::time::Instant::now();
        let hold = Duration::from_millis(r.wait_ms.min(MAX_LOCK_WAIT_MS));
        if r.wait_ms > 0 {
            self.admit(Item::LockWaiters, |sm| {
                (
                    sm.locks.waiters(),
                    usize::from(!sm.locks.is_waiting(&r.resource, &r.owner)),
                )
            })?;
        }
        // Subscribed before proposing, so a grant applied right after is seen.
        let mut applied = self.node.sm.subscribe();
        let place_ms = if r.wait_ms > 0 {
            hold.as_millis() as u64 + PLACE_GRACE_MS
        } else {
            0
        };
        let op = if r.permits > 1 {
            Op::AcquirePermit {
                name: r.resource.clone(),
                owner: r.owner.clone(),
                limit: r.permits,
                ttl_ms: r.ttl_ms,
                place_ms,
            }
        } else {
            Op::WaitLock {
                resource: r.resource.clone(),
                owner: r.owner.clone(),
                ttl_ms: r.ttl_ms,
                place_ms,
                value: r.value.clone(),
            }
        };
        let p = self
            .propose(op, None, limits::request_id(r.request_id.as_ref())?)
            .await?;
        let reply = match p.reply {
            Reply::Lock(reply) => reply,
            other => return Err(internal(format!("state machine gave an unexpected answer: {other:?}"))),
        };
        let answer = |acquired: bool, queued: bool, lock: Option<LockView>, now_ms: u64, header, waited: Duration| {
            pb::TryLockResponse {
                header: Some(header),
                acquired,
                lock: lock.map(|v| info(v, now_ms, Durability::Persistent)),
                retry_after_ms: 0,
                queued,
                waited_ms: waited.as_millis() as u64,
            }
        };
        if reply.refusal == Refusal::Mismatch {
            return Err(mismatch(&r.resource, r.permits, reply.lock.as_ref()));
        }
        if reply.ok {
            // Granted by this call's own entry: its lease began after the request came.
            let granted = answer(true, false, reply.lock, p.time_ms, p.header, Duration::ZERO);
            return Ok(Response::new(granted));
        }
        let deadline = tokio::time::Instant::now() + hold;
        loop {
            let woken = tokio::select! {
                changed = applied.changed() => changed.is_ok(),
                () = tokio::time::sleep_until(deadline) => false,
                () = self.node.stopping.cancelled() => false,
            };
            // Measured before the time the remaining lease is judged by, so that both
            // err on the short side.
            let waited = received.elapsed();
            let now = self.node.clock.now_ms();
            let (mine, holder, waiting) = {
                let st = self.node.state()?;
                let now = st.sm.now_ms.max(now);
                (
                    st.sm.locks.held_by(now, &r.resource, &r.owner),
                    st.sm.locks.get(now, &r.resource),
                    st.sm.locks.is_waiting(&r.resource, &r.owner),
                )
            };
            let header = self.node.header();
            if mine.is_some() {
                return Ok(Response::new(answer(true, false, mine, now, header, waited)));
            }
            // Out of time, the place is gone, or this member no longer leads (the next
            // leader grants from the same queue): answer, and the caller asks again.
            if !woken || !waiting || !self.node.is_leader() {
                return Ok(Response::new(answer(false, waiting, holder, now, header, waited)));
            }
        }
    }

    /// Runs an ephemeral lock operation once the tier's lease gate lets it through:
    /// on the term's first grant, reads the mark earlier terms committed (after a
    /// read-index, so all of them are applied) to learn the grace period; before a
    /// lease longer than any granted so far in the term, commits the new mark.
    async fn ephemeral_lease(
        &self,
        ttl_ms: u64,
        op: impl Fn(&EphemeralTier, u64, Now) -> Option<Result<EphemeralLock, LeaseGate>>,
    ) -> Result<(EphemeralLock, pb::ResponseHeader, u64), Status> {
        // At most: read the grace, raise the mark, then run.
        for _ in 0..4 {
            let term = self.leader_lease().await?;
            let now = Now::new(self.node.clock.now_ms());
            let answer = {
                let _open = self.node.enter_ephemeral().ok_or_else(shutting_down)?;
                op(&self.node.ephemeral, term, now)
            };
            match answer {
                Some(Ok(answer)) => return Ok((answer, self.node.header(), now.ms)),
                Some(Err(LeaseGate::GraceUnknown)) => {
                    self.read_barrier().await?;
                    let mark_ms = self.node.state()?.sm.ephemeral_mark_ms;
                    let now = Now::new(self.node.clock.now_ms());
                    self.node.ephemeral.set_grace(term, Duration::from_millis(mark_ms), now);
                }
                Some(Err(LeaseGate::RaiseMark)) => {
                    self.propose(Op::EphemeralLeaseMark { ttl_ms }, None, None).await?;
                    let now = Now::new(self.node.clock.now_ms());
                    self.node.ephemeral.raise_mark(term, ttl_ms, now);
                }
                Some(Err(gate)) => return Err(internal(format!("ephemeral lease gate answered {gate:?}"))),
                None if self.node.term() != term => return Err(self.fail(RaftFailure::NotLeader).await),
                None => return Err(errors::ephemeral_tokens_exhausted()),
            }
        }
        Err(errors::status(
            ErrorKind::Unavailable,
            "leadership changed while the ephemeral lease mark was being raised; retry",
        ))
    }
}

#[tonic::async_trait]
impl Locks for Api {
    async fn try_lock(&self, req: Request<pb::TryLockRequest>) -> Result<Response<pb::TryLockResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, LocksClient, try_lock);
        let r = req.into_inner();
        let durability = self.lock_args(&r.resource, Some(&r.owner), r.durability)?;
        self.check_ttl(durability, r.ttl_ms)?;
        if r.permits > 1 {
            if durability != Durability::Persistent {
                return Err(errors::invalid(
                    "semaphores (permits > 1) are persistent only; ask with durability PERSISTENT",
                ));
            }
            if r.permits > MAX_SEMAPHORE_PERMITS {
                return Err(errors::invalid(format!(
                    "permits is {}; a semaphore has at most {MAX_SEMAPHORE_PERMITS}",
                    r.permits
                )));
            }
            if !r.value.is_empty() {
                return Err(errors::invalid("a semaphore's permit carries no value"));
            }
        }
        match durability {
            Durability::Persistent => self.admit(Item::Locks, |sm| {
                let new = if r.permits > 1 {
                    !sm.locks.has_permit(&r.resource, &r.owner)
                } else {
                    !sm.locks.contains(&r.resource)
                };
                (sm.locks.len(), usize::from(new))
            })?,
            Durability::Ephemeral => self.admit_ephemeral(|t| !t.locks.contains(&r.resource))?,
        }
        lock_value(&r.value)?;
        if durability == Durability::Persistent && (r.wait_ms > 0 || r.permits > 1) {
            return self.wait_for_lock(r).await;
        }
        if !r.value.is_empty() {
            return Err(errors::invalid(
                "a value is taken with a persistent lock that waits (wait_ms > 0, as a campaign does); change \
                 a held lock's value with Proclaim",
            ));
        }
        let op = Op::TryLock {
            resource: r.resource.clone(),
            owner: r.owner.clone(),
            ttl_ms: r.ttl_ms,
        };
        let o = self
            .lock_op(durability, op, r.request_id.as_ref(), r.ttl_ms, |tier, term, now| {
                tier.try_lock(term, now, &r.resource, &r.owner, r.ttl_ms)
            })
            .await?;
        if o.reply.refusal == Refusal::Mismatch {
            return Err(mismatch(&r.resource, r.permits, o.reply.lock.as_ref()));
        }
        Ok(Response::new(pb::TryLockResponse {
            header: Some(o.header),
            acquired: o.reply.ok,
            lock: o.reply.lock.map(|v| info(v, o.now_ms, durability)),
            retry_after_ms: o.retry_after_ms,
            queued: false,
            waited_ms: 0,
        }))
    }

    async fn extend(&self, req: Request<pb::ExtendLockRequest>) -> Result<Response<pb::ExtendLockResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, LocksClient, extend);
        let r = req.into_inner();
        let durability = self.lock_args(&r.resource, Some(&r.owner), r.durability)?;
        self.check_ttl(durability, r.ttl_ms)?;
        let op = Op::ExtendLock {
            resource: r.resource.clone(),
            owner: r.owner.clone(),
            ttl_ms: r.ttl_ms,
        };
        let o = self
            .lock_op(durability, op, r.request_id.as_ref(), r.ttl_ms, |tier, term, now| {
                tier.extend(term, now, &r.resource, &r.owner, r.ttl_ms)
            })
            .await?;
        Ok(Response::new(pb::ExtendLockResponse {
            header: Some(o.header),
            extended: o.reply.ok,
            refusal: refusal(o.reply.refusal),
            lock: o.reply.lock.map(|v| info(v, o.now_ms, durability)),
        }))
    }

    async fn unlock(&self, req: Request<pb::UnlockRequest>) -> Result<Response<pb::UnlockResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, LocksClient, unlock);
        let r = req.into_inner();
        let durability = self.lock_args(&r.resource, Some(&r.owner), r.durability)?;
        let op = Op::Unlock {
            resource: r.resource.clone(),
            owner: r.owner.clone(),
        };
        let o = self
            .lock_op(durability, op, r.request_id.as_ref(), 0, |tier, term, now| {
                tier.with(term, now, |t| {
                    // Nobody waits in the ephemeral tier's queues (waiting there is
                    // the client's retry loop), so an unlock grants nothing and
                    // needs no token.
                    Ok(EphemeralLock::Reply(t.locks.unlock(0, now.ms, &r.resource, &r.owner)))
                })
            })
            .await?;
        Ok(Response::new(pb::UnlockResponse {
            header: Some(o.header),
            unlocked: o.reply.ok,
            refusal: refusal(o.reply.refusal),
            lock: o.reply.lock.map(|v| info(v, o.now_ms, durability)),
        }))
    }

    async fn proclaim(&self, req: Request<pb::ProclaimRequest>) -> Result<Response<pb::ProclaimResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, LocksClient, proclaim);
        let r = req.into_inner();
        self.lock_args(&r.resource, Some(&r.owner), Durability::Persistent as i32)?;
        lock_value(&r.value)?;
        let op = Op::Proclaim {
            resource: r.resource,
            owner: r.owner,
            value: r.value,
        };
        let p = self
            .propose(op, None, limits::request_id(r.request_id.as_ref())?)
            .await?;
        let Reply::Lock(reply) = p.reply else {
            return Err(internal(format!(
                "state machine gave an unexpected answer: {:?}",
                p.reply
            )));
        };
        Ok(Response::new(pb::ProclaimResponse {
            header: Some(p.header),
            proclaimed: reply.ok,
            refusal: refusal(reply.refusal),
            lock: reply.lock.map(|v| info(v, p.time_ms, Durability::Persistent)),
        }))
    }

    type ObserveStream = super::observe::ObserveStream;

    async fn observe(&self, req: Request<pb::ObserveRequest>) -> Result<Response<Self::ObserveStream>, Status> {
        self.open_observe(req).await
    }

    async fn get_lock(&self, req: Request<pb::GetLockRequest>) -> Result<Response<pb::GetLockResponse>, Status> {
        self.authorize(&req)?;
        let r = req.get_ref();
        let durability = self.lock_args(&r.resource, None, r.durability)?;
        // Ephemeral locks exist only on the leader, whatever consistency is asked for.
        if durability == Durability::Ephemeral || self.needs_leader(r.consistency) {
            forward_unless_leader!(self, req, LocksClient, get_lock);
        }
        let r = req.into_inner();
        let (lock, header) = match durability {
            Durability::Persistent => {
                self.read(r.consistency, |st, now| {
                    Ok(st.sm.locks.get(now, &r.resource).map(|v| info(v, now, durability)))
                })
                .await?
            }
            Durability::Ephemeral => {
                let (lock, header, _) = self
                    .ephemeral(|t, now| t.locks.get(now, &r.resource).map(|v| info(v, now, durability)))
                    .await?;
                (lock, header)
            }
        };
        Ok(Response::new(pb::GetLockResponse {
            header: Some(header),
            lock,
        }))
    }
}
