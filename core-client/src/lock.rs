//! Leased locks with fencing tokens, renewed in the background.
//!
//! The client trusts a lease only by its own monotonic clock: a grant or renewal whose
//! request was *sent* at `t` is trusted until `t + ttl` (or less, if the server reports
//! less time left). The server starts the lease later than `t` — when it applies the
//! grant — and on a leader change extends every live lease to a full TTL, so whenever
//! the client still trusts its lease, the server still has it. When the lease can no
//! longer be trusted (renewals failed until the trusted time ran out, or the server
//! refused a renewal), the guard's **lost** signal fires.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kahuna_proto::v1 as pb;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::kv::{Consistency, Durability, Fence};
use crate::retry::Safety;

/// How to take a lock: lease length, how long to keep trying, tier.
///
/// `wait` works like the C# API: how long to wait for the lock while someone else holds
/// it; `wait == 0` makes one attempt. A persistent lock waits in the server's queue:
/// waiters are granted in the order they asked, woken by the server the moment the
/// lock is released or its lease expires (no polling; `retry` is not used). An
/// ephemeral lock is tried again every `retry` until `wait` has passed.
///
/// ```
/// use std::time::Duration;
/// use kahuna_client::{LockOptions, Durability};
///
/// let o = LockOptions {
///     ttl: Duration::from_secs(5),
///     wait: Duration::from_secs(30),
///     retry: Duration::from_millis(200),
///     durability: Durability::Ephemeral,
///     ..LockOptions::default()
/// };
/// ```
#[derive(Debug, Clone)]
pub struct LockOptions {
    /// Lease length; the guard renews it at about a third of this.
    pub ttl: Duration,
    /// How long to keep trying while someone else holds the lock (0 = one attempt).
    pub wait: Duration,
    /// Pause between attempts while waiting for an ephemeral lock.
    pub retry: Duration,
    /// Persistent (replicated) or ephemeral (leader memory) lock.
    pub durability: Durability,
    /// The owner name to lock as; `None` makes one unique to this guard. Locking again
    /// with the same owner while it holds the lock refreshes it and keeps the token.
    pub owner: Option<String>,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            ttl: Duration::from_secs(10),
            wait: Duration::ZERO,
            retry: Duration::from_millis(100),
            durability: Durability::Persistent,
            owner: None,
        }
    }
}

/// A lock as the server reports it.
///
/// ```
/// # use kahuna_client::LockInfo;
/// # fn f(info: LockInfo) {
/// println!("{} holds {} with token {}", info.owner, info.resource, info.fencing_token);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The resource name.
    pub resource: String,
    /// The holder's owner name.
    pub owner: String,
    /// The holder's fencing token.
    pub fencing_token: u64,
    /// Expiry in the leader's clock, Unix ms (an estimate for ephemeral locks).
    pub expires_at_ms: u64,
    /// Lease time left when the server answered.
    pub remaining: Duration,
    /// The lock's tier.
    pub durability: Durability,
    /// What the holder announces (an election leader's value); empty for plain locks.
    pub value: Vec<u8>,
    /// Callers waiting in the lock's queue ([`Client::lock_info`] only; 0 elsewhere).
    pub waiters: u32,
    /// A semaphore's number of permits; 0 for a lock. For a semaphore, `owner`,
    /// `fencing_token` and the expiry are the caller's permit when it holds one, and
    /// otherwise no owner and the newest permit's token.
    pub permits: u32,
    /// A semaphore's permits held now; 0 for a lock.
    pub holders: u32,
}

impl LockInfo {
    pub(crate) fn from_pb(l: pb::LockInfo) -> LockInfo {
        LockInfo {
            resource: String::from_utf8_lossy(&l.resource).into_owned(),
            owner: String::from_utf8_lossy(&l.owner).into_owned(),
            fencing_token: l.fencing_token,
            expires_at_ms: l.expires_at_ms,
            remaining: Duration::from_millis(l.remaining_ms),
            durability: Durability::from_pb(l.durability),
            value: l.value,
            waiters: l.waiters,
            permits: l.permits,
            holders: l.holders,
        }
    }
}

struct Lease {
    /// Until when the client trusts the lease (monotonic).
    trusted_until: Instant,
    ttl: Duration,
    /// False once lost or released.
    held: bool,
    released: bool,
    lost_reason: Option<String>,
}

struct Shared {
    resource: String,
    owner: String,
    durability: Durability,
    token: u64,
    lease: Mutex<Lease>,
    /// Cancelled when the guard stops holding the lock (lost, expired or released).
    gone: CancellationToken,
    /// Cancelled to stop the renewal task.
    stop: CancellationToken,
}

impl Shared {
    fn lease(&self) -> MutexGuard<'_, Lease> {
        self.lease.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mark_lost(&self, reason: String) {
        {
            let mut l = self.lease();
            if !l.held {
                return;
            }
            l.held = false;
            l.lost_reason = Some(reason.clone());
        }
        warn!(resource = %self.resource, token = self.token, %reason, "lock lost");
        self.stop.cancel();
        self.gone.cancel();
    }

    /// Records a successful grant or renewal whose request was sent at `sent`.
    fn renewed(&self, sent: Instant, ttl: Duration, info: Option<&pb::LockInfo>) -> bool {
        let mut trusted = ttl;
        if let Some(i) = info {
            if i.remaining_ms > 0 {
                trusted = trusted.min(Duration::from_millis(i.remaining_ms));
            }
        }
        let mut l = self.lease();
        if !l.held {
            return false;
        }
        l.trusted_until = l.trusted_until.max(sent + trusted);
        true
    }
}

/// A lock attempt's result. When [`is_acquired`](LockGuard::is_acquired), the guard holds
/// the lock, renews it in the background at about a third of its TTL, and releases it when
/// dropped (in a spawned task) or on [`release`](LockGuard::release).
///
/// ```no_run
/// use std::time::Duration;
/// use kahuna_client::{Client, ClientOptions, LockOptions};
///
/// # async fn run(client: Client) -> kahuna_client::Result<()> {
/// let guard = client.lock("jobs/nightly", LockOptions { ttl: Duration::from_secs(10), ..LockOptions::default() }).await?;
/// if guard.is_acquired() {
///     let token = guard.fencing_token().unwrap_or(0);
///     tokio::select! {
///         _ = guard.lost() => eprintln!("lost the lock; stopping"),
///         _ = async { /* work, passing `token` to every fenced write */ } => {}
///     }
///     guard.release().await?;
/// }
/// # Ok(()) }
/// ```
pub struct LockGuard {
    pub(crate) client: Client,
    shared: Option<Arc<Shared>>,
    holder: Option<LockInfo>,
    renewer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("acquired", &self.is_acquired())
            .field("resource", &self.shared.as_ref().map(|s| s.resource.clone()))
            .field("token", &self.fencing_token())
            .field("holder", &self.holder)
            .finish()
    }
}

/// What an acquisition asks for besides the name, owner and lease.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Claim<'a> {
    /// A semaphore's number of permits; 0 asks for the lock.
    pub permits: u32,
    /// The value the lock carries once granted (an election candidate's).
    pub value: &'a [u8],
}

fn try_lock_request(
    resource: &str,
    owner: &str,
    ttl_ms: u64,
    durability: Durability,
    wait_ms: u64,
    claim: Claim,
) -> pb::TryLockRequest {
    pb::TryLockRequest {
        resource: resource.as_bytes().to_vec(),
        owner: owner.as_bytes().to_vec(),
        ttl_ms,
        durability: durability.pb(),
        wait_ms,
        value: claim.value.to_vec(),
        permits: claim.permits,
        request_id: None,
    }
}

/// Longest one call waits in a lock's queue (the server's limit): a longer wait is
/// several calls, each renewing the caller's place.
const MAX_WAIT_PER_CALL: Duration = Duration::from_secs(5);

pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64> {
    if ttl < Duration::from_millis(1) {
        return Err(Error::InvalidArgument("lock ttl must be at least 1 ms".into()));
    }
    // Rounded up: the guard trusts its lease for `ttl`, so the server must hold it
    // at least that long.
    Ok(crate::ttl::ceil_ms(ttl))
}

impl Client {
    /// Tries to take the lock on `resource`, waiting and retrying as `options` say.
    /// Someone else holding it is not an error: the guard then has
    /// `is_acquired() == false` and [`holder`](LockGuard::holder) names the holder.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kahuna_client::LockOptions;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let options = LockOptions { ttl: Duration::from_secs(5), wait: Duration::from_secs(20), ..LockOptions::default() };
    /// let guard = client.lock("printer", options).await?;
    /// println!("acquired: {}", guard.is_acquired());
    /// # Ok(()) }
    /// ```
    pub async fn lock(&self, resource: &str, options: LockOptions) -> Result<LockGuard> {
        self.acquire(resource, options, Claim::default()).await
    }

    /// Takes one of the `permits` permits of the semaphore `name` (anchors: Curator's
    /// InterProcessSemaphoreV2, Consul's semaphore): up to `permits` owners hold it at
    /// once, each with a lease and a fencing token of its own, renewed and released
    /// like a lock (the guard is the same kind), and usable in fenced writes. Waiters
    /// are granted in arrival order as permits free up. Semaphores are persistent,
    /// and everyone must ask with the same `permits` while anyone holds or waits for
    /// it (otherwise `InvalidArgument`); a semaphore of 1 permit is the lock of that
    /// name.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kahuna_client::LockOptions;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let options = LockOptions { ttl: Duration::from_secs(10), wait: Duration::from_secs(30), ..LockOptions::default() };
    /// let permit = client.acquire_permit("gpu-pool", 4, options).await?;
    /// if let Some(fence) = permit.fence() {
    ///     // fenced work: writes with `fence` fail once this permit is gone
    ///     # let _ = fence;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn acquire_permit(&self, name: &str, permits: u32, options: LockOptions) -> Result<LockGuard> {
        if permits == 0 {
            return Err(Error::InvalidArgument("a semaphore has at least 1 permit".into()));
        }
        let permits = if permits == 1 { 0 } else { permits };
        self.acquire(name, options, Claim { permits, value: &[] }).await
    }

    async fn acquire(&self, resource: &str, options: LockOptions, claim: Claim<'_>) -> Result<LockGuard> {
        let ttl = ttl_ms(options.ttl)?;
        if options.wait > Duration::ZERO && options.durability == Durability::Persistent {
            return self.lock_in_queue(resource, ttl, &options, claim).await;
        }
        let started = Instant::now();
        loop {
            // A generated owner is new for every attempt, so giving back an attempt whose
            // answer was lost can never release a later attempt's grant.
            let owner = options.owner.clone().unwrap_or_else(|| self.new_owner());
            let msg = try_lock_request(resource, &owner, ttl, options.durability, 0, claim);
            // Locking again as the same owner refreshes the lease from when it is applied,
            // so each attempt is a fresh request and the lease is measured from the moment
            // the attempt that answered was sent.
            // Armed while the attempt is in flight: if it fails, or this future is dropped
            // (cancelled) before the answer arrives, the attempt may still have been
            // granted, and the grant is given back rather than left to expire.
            let mut give_back = GiveBack::arm(self, resource, &owner, options.durability, options.owner.is_none());
            let (answer, sent) = self.unary_fresh(&msg).await;
            if !answer.as_ref().is_err_and(Error::is_retryable) {
                give_back.disarm();
            }
            drop(give_back);
            let (holder, retry_after) = match answer {
                Ok(r) if r.acquired => return Ok(self.guard(resource, owner, &options, sent, r.lock)),
                Ok(r) => (r.lock.map(LockInfo::from_pb), Duration::from_millis(r.retry_after_ms)),
                Err(e) if e.is_retryable() && started.elapsed() < options.wait => (None, Duration::ZERO),
                Err(e) => return Err(e),
            };
            let waited = started.elapsed();
            if waited >= options.wait {
                return Ok(self.not_acquired(holder));
            }
            let pause = options.retry.max(retry_after).min(options.wait - waited);
            tokio::time::sleep(pause.max(Duration::from_millis(1))).await;
        }
    }

    /// Waits for a persistent lock in the server's queue: one owner takes a place and
    /// is granted the lock in arrival order, woken by the server, with one call per
    /// [`MAX_WAIT_PER_CALL`] to keep the place. Whatever ends the wait without the lock
    /// (the wait running out, an error, the future being dropped) gives the place
    /// back, and with it a grant that may have raced the end.
    ///
    /// `claim` says what is asked for: the lock (with the value it carries once
    /// granted, an election candidate's) or a semaphore's permit.
    pub(crate) async fn lock_in_queue(
        &self,
        resource: &str,
        ttl: u64,
        options: &LockOptions,
        claim: Claim<'_>,
    ) -> Result<LockGuard> {
        let started = Instant::now();
        let generated = options.owner.is_none();
        let owner = options.owner.clone().unwrap_or_else(|| self.new_owner());
        // A caller-chosen owner may hold the lock on purpose from before; it is given
        // back only once an answer showed it waiting, not holding.
        let mut give_back = GiveBack::arm(self, resource, &owner, options.durability, generated);
        let mut holder = None;
        // The failure of the last call, when the wait ran out on one: like the polling
        // path, a wait that never reached a member says why instead of "not acquired".
        let mut failed = None;
        loop {
            let waited = started.elapsed();
            if waited >= options.wait {
                break;
            }
            let hold = (options.wait - waited).min(MAX_WAIT_PER_CALL);
            let wait_ms = crate::ttl::ceil_ms(hold);
            let msg = try_lock_request(resource, &owner, ttl, options.durability, wait_ms, claim);
            // Each attempt may be held by the server for `hold` before it answers.
            let mut waiting = self.clone();
            waiting.call.attempt_timeout = self.call.attempt_timeout + hold;
            waiting.call.timeout = self.call.timeout.max(waiting.call.attempt_timeout);
            let (answer, sent) = waiting.unary_fresh(&msg).await;
            match answer {
                Ok(r) if r.acquired => {
                    give_back.disarm();
                    // The grant came while the server held the call: the lease began
                    // no earlier than the send plus the time the server says it held it.
                    let from = (sent + Duration::from_millis(r.waited_ms)).min(Instant::now());
                    return Ok(self.guard(resource, owner, options, from, r.lock));
                }
                Ok(r) => {
                    failed = None;
                    holder = r.lock.map(LockInfo::from_pb);
                    if r.queued && !generated && !give_back.armed() {
                        give_back = GiveBack::arm(self, resource, &owner, options.durability, true);
                    }
                }
                // The place outlives a failed call by seconds: ask again, same owner.
                Err(e) if e.is_retryable() => failed = Some(e),
                Err(e) => return Err(e),
            }
        }
        drop(give_back);
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(self.not_acquired(holder))
    }

    /// The answer of an attempt that did not get the lock: `holder` is who has it.
    fn not_acquired(&self, holder: Option<LockInfo>) -> LockGuard {
        LockGuard {
            client: self.clone(),
            shared: None,
            holder,
            renewer: None,
        }
    }

    fn guard(
        &self,
        resource: &str,
        owner: String,
        options: &LockOptions,
        sent: Instant,
        info: Option<pb::LockInfo>,
    ) -> LockGuard {
        let token = info.as_ref().map_or(0, |i| i.fencing_token);
        let shared = Arc::new(Shared {
            resource: resource.to_owned(),
            owner,
            durability: options.durability,
            token,
            lease: Mutex::new(Lease {
                trusted_until: sent,
                ttl: options.ttl,
                held: true,
                released: false,
                lost_reason: None,
            }),
            gone: CancellationToken::new(),
            stop: CancellationToken::new(),
        });
        shared.renewed(sent, options.ttl, info.as_ref());
        debug!(resource, token, "lock acquired");
        let renewer = self.inner.runtime.spawn(renew(self.clone(), shared.clone()));
        LockGuard {
            client: self.clone(),
            shared: Some(shared),
            holder: info.map(LockInfo::from_pb),
            renewer: Some(renewer),
        }
    }

    /// Gives back `resource` if `owner` holds it, without a guard: for a caller that
    /// chose the owner itself and lost its guard (a restarted worker, an interrupted
    /// wait). Returns whether the server released it.
    pub async fn unlock(&self, resource: &str, owner: &str, durability: Durability) -> Result<bool> {
        let msg = pb::UnlockRequest {
            resource: resource.as_bytes().to_vec(),
            owner: owner.as_bytes().to_vec(),
            durability: durability.pb(),
            request_id: Some(self.request_id()),
        };
        let r = self.unary(Safety::Deduplicated, msg).await?;
        Ok(r.unlocked)
    }

    /// Renews `resource`'s lease for `ttl` if `owner` holds it, without a guard: the
    /// counterpart of [`unlock`](Client::unlock) for a caller that chose the owner itself
    /// (Kahuna 1.x's `TryExtendLock`). Returns whether it was extended, and the lock: the
    /// caller's after the extend (its fencing token is unchanged), or the current holder's
    /// when another owner holds it (`None` when nobody does). Nothing renews the lease
    /// afterwards: the caller extends again before `ttl` runs out.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use kahuna_client::Durability;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let (extended, lock) = client.extend_lock_by_owner("printer", "worker-7", Duration::from_secs(30), Durability::Persistent).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend_lock_by_owner(
        &self,
        resource: &str,
        owner: &str,
        ttl: Duration,
        durability: Durability,
    ) -> Result<(bool, Option<LockInfo>)> {
        if owner.is_empty() {
            return Err(Error::InvalidArgument("lock owner must not be empty".into()));
        }
        let msg = pb::ExtendLockRequest {
            resource: resource.as_bytes().to_vec(),
            owner: owner.as_bytes().to_vec(),
            ttl_ms: ttl_ms(ttl)?,
            durability: durability.pb(),
            request_id: None,
        };
        // Extending as the owner is idempotent: each attempt is a fresh request.
        let r = self.unary_fresh(&msg).await.0?;
        Ok((r.extended, r.lock.map(LockInfo::from_pb)))
    }

    /// Who holds the lock on `resource` right now, if anyone.
    ///
    /// ```no_run
    /// # use kahuna_client::Durability;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// match client.lock_info("printer", Durability::Persistent).await? {
    ///     Some(l) => println!("held by {} (token {})", l.owner, l.fencing_token),
    ///     None => println!("free"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lock_info(&self, resource: &str, durability: Durability) -> Result<Option<LockInfo>> {
        let msg = pb::GetLockRequest {
            resource: resource.as_bytes().to_vec(),
            durability: durability.pb(),
            consistency: Consistency::Linearizable.pb(),
        };
        let r = self.unary(Safety::Idempotent, msg).await?;
        Ok(r.lock.map(LockInfo::from_pb))
    }

    /// Sends ExtendLock (retried within `self`'s deadline); also returns when the attempt
    /// that answered was sent. Extending as the owner is idempotent, so each attempt is a
    /// fresh request and the renewed lease is measured from that attempt.
    async fn extend_lock(&self, shared: &Shared, ttl: Duration) -> Result<(pb::ExtendLockResponse, Instant)> {
        let msg = pb::ExtendLockRequest {
            resource: shared.resource.as_bytes().to_vec(),
            owner: shared.owner.as_bytes().to_vec(),
            ttl_ms: ttl_ms(ttl)?,
            durability: shared.durability.pb(),
            request_id: None,
        };
        let (r, sent) = self.unary_fresh(&msg).await;
        Ok((r?, sent))
    }
}

fn refusal_text(r: &pb::ExtendLockResponse) -> String {
    match pb::LockRefusal::try_from(r.refusal) {
        Ok(pb::LockRefusal::HeldByOther) => format!(
            "held by {}",
            r.lock.as_ref().map_or_else(
                || "another owner".into(),
                |l| String::from_utf8_lossy(&l.owner).into_owned()
            )
        ),
        Ok(pb::LockRefusal::NotHeld) => "the lease had expired on the server".into(),
        _ => "the server refused the renewal".into(),
    }
}

/// Keeps the lease alive: renews at about a third of the TTL, and declares it lost the
/// moment the trusted time runs out or the server refuses.
async fn renew(client: Client, shared: Arc<Shared>) {
    loop {
        let (trusted_until, ttl) = {
            let l = shared.lease();
            if !l.held {
                return;
            }
            (l.trusted_until, l.ttl)
        };
        // Renew when two thirds of the trusted time are left.
        let due = trusted_until.checked_sub(ttl * 2 / 3).unwrap_or(trusted_until);
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep_until(due.into()) => {}
        }
        let now = Instant::now();
        let trusted_until = shared.lease().trusted_until;
        let Some(left) = trusted_until.checked_duration_since(now).filter(|d| !d.is_zero()) else {
            shared.mark_lost("the lease expired before it could be renewed".into());
            return;
        };
        // Each attempt gets a slice of the trusted time, so a hung member does not use it all.
        let mut c = client.with_timeout(left);
        c.call.attempt_timeout = c
            .call
            .attempt_timeout
            .min((ttl / 3).max(Duration::from_millis(100)))
            .min(left);
        let outcome = tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep_until(trusted_until.into()) => {
                shared.mark_lost("the lease expired while renewals failed".into());
                return;
            }
            r = c.extend_lock(&shared, ttl) => r,
        };
        match outcome {
            Ok((r, sent)) if r.extended => {
                if !shared.renewed(sent, ttl, r.lock.as_ref()) {
                    return;
                }
            }
            Ok((r, _)) => {
                shared.mark_lost(format!("renewal refused: {}", refusal_text(&r)));
                return;
            }
            Err(e) if e.is_retryable() => {
                // Out of time for this round; the loop re-checks the trusted time.
                debug!(resource = %shared.resource, error = %e, "renewal failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => {
                shared.mark_lost(format!("renewal failed: {e}"));
                return;
            }
        }
    }
}

impl LockGuard {
    /// Whether this guard holds the lock: it was acquired, and has been neither lost nor
    /// released, and its lease is still trusted.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// if !guard.is_acquired() { println!("busy: {:?}", guard.holder()); }
    /// # Ok(()) }
    /// ```
    pub fn is_acquired(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| {
            let l = s.lease();
            l.held && Instant::now() < l.trusted_until
        })
    }

    /// The fencing token of this grant (`None` when not acquired). Pass it with every
    /// write the lock protects; tokens of a resource strictly increase.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// if let Some(token) = guard.fencing_token() { println!("token {token}"); }
    /// # Ok(()) }
    /// ```
    pub fn fencing_token(&self) -> Option<u64> {
        self.shared.as_ref().map(|s| s.token)
    }

    /// A [`Fence`] for writes protected by this lock (`None` when not acquired).
    ///
    /// ```no_run
    /// # use kahuna_client::{SetOptions};
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("jobs/report", Default::default()).await?;
    /// let options = SetOptions { fence: guard.fence(), ..SetOptions::default() };
    /// client.set_with("reports/today", "done", options).await?;
    /// # Ok(()) }
    /// ```
    pub fn fence(&self) -> Option<Fence> {
        self.shared.as_ref().map(|s| Fence {
            resource: s.resource.clone(),
            token: s.token,
            durability: s.durability,
        })
    }

    /// The current holder when the lock was not acquired (or this guard's own grant).
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// if let Some(h) = guard.holder() { println!("{} until {}", h.owner, h.expires_at_ms); }
    /// # Ok(()) }
    /// ```
    pub fn holder(&self) -> Option<&LockInfo> {
        self.holder.as_ref()
    }

    /// The owner name this guard locked as (`None` when not acquired).
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// println!("{:?}", guard.owner());
    /// # Ok(()) }
    /// ```
    pub fn owner(&self) -> Option<&str> {
        self.shared.as_ref().map(|s| s.owner.as_str())
    }

    /// How much longer the lease is trusted by the client's own clock (zero when not held).
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// println!("safe for another {:?}", guard.trusted_for());
    /// # Ok(()) }
    /// ```
    pub fn trusted_for(&self) -> Duration {
        self.shared.as_ref().map_or(Duration::ZERO, |s| {
            let l = s.lease();
            if l.held {
                l.trusted_until.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            }
        })
    }

    /// Why the lock was lost, once it has been (`None` while held or after a release).
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// guard.lost().await;
    /// println!("{:?}", guard.lost_reason());
    /// # Ok(()) }
    /// ```
    pub fn lost_reason(&self) -> Option<String> {
        self.shared.as_ref().and_then(|s| s.lease().lost_reason.clone())
    }

    /// Completes when the guard stops holding the lock: the lease could no longer be
    /// trusted, the server refused a renewal, or the guard was released. Completes at once
    /// for a guard that was never acquired.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// tokio::select! {
    ///     _ = guard.lost() => println!("lost"),
    ///     _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => println!("still ours"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let token = self.lost_token();
        async move { token.cancelled().await }
    }

    /// A cancellation token cancelled under the same conditions as [`lost`](LockGuard::lost)
    /// (already cancelled for a guard that was never acquired). Cancelling it yourself
    /// does not affect the lock.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// let token = guard.lost_token();
    /// tokio::spawn(async move { token.cancelled().await; eprintln!("stop work"); });
    /// # Ok(()) }
    /// ```
    pub fn lost_token(&self) -> CancellationToken {
        match &self.shared {
            Some(s) => s.gone.child_token(),
            None => {
                let t = CancellationToken::new();
                t.cancel();
                t
            }
        }
    }

    /// Renews the lease now, for `ttl` (`None`: the current TTL), which also becomes the
    /// TTL of later background renewals. Fails with [`Error::LockNotHeld`] when the lock
    /// is no longer this guard's (then the lost signal fires).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// guard.extend(Some(Duration::from_secs(60))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn extend(&self, ttl: Option<Duration>) -> Result<()> {
        let s = self.held()?;
        let ttl = match ttl {
            Some(t) => t,
            None => s.lease().ttl,
        };
        let (r, sent) = self.client.extend_lock(s, ttl).await?;
        if !r.extended {
            let why = refusal_text(&r);
            s.mark_lost(format!("extend refused: {why}"));
            return Err(Error::LockNotHeld(why));
        }
        s.lease().ttl = ttl;
        if !s.renewed(sent, ttl, r.lock.as_ref()) {
            return Err(Error::LockNotHeld("the lock was released or lost meanwhile".into()));
        }
        Ok(())
    }

    fn held(&self) -> Result<&Shared> {
        match &self.shared {
            None => Err(Error::LockNotHeld("the lock was not acquired".into())),
            Some(s) => {
                let l = s.lease();
                if l.released {
                    Err(Error::LockNotHeld("the lock was released".into()))
                } else if !l.held {
                    Err(Error::LockNotHeld(
                        l.lost_reason.clone().unwrap_or_else(|| "the lock was lost".into()),
                    ))
                } else {
                    Ok(s)
                }
            }
        }
    }

    /// Releases the lock and stops renewing it. Returns whether the server released it
    /// (false when it had already expired or was never acquired). Calling it again
    /// returns `Ok(false)`.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let guard = client.lock("r", Default::default()).await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn release(&self) -> Result<bool> {
        let Some(s) = &self.shared else {
            return Ok(false);
        };
        {
            let mut l = s.lease();
            if l.released {
                return Ok(false);
            }
            l.released = true;
            l.held = false;
        }
        s.stop.cancel();
        s.gone.cancel();
        unlock(&self.client, s).await
    }
}

async fn unlock(client: &Client, s: &Shared) -> Result<bool> {
    let unlocked = client.unlock(&s.resource, &s.owner, s.durability).await?;
    debug!(resource = %s.resource, token = s.token, unlocked, "lock released");
    Ok(unlocked)
}

/// Gives back a lock attempt that may have been granted although no answer arrived.
struct GiveBack {
    target: Option<(Client, String, String, Durability)>,
}

impl GiveBack {
    /// Armed only for generated owners: a caller-chosen owner may be held on purpose.
    fn arm(client: &Client, resource: &str, owner: &str, durability: Durability, generated_owner: bool) -> Self {
        GiveBack {
            target: generated_owner.then(|| (client.clone(), resource.to_owned(), owner.to_owned(), durability)),
        }
    }

    fn disarm(&mut self) {
        self.target = None;
    }

    fn armed(&self) -> bool {
        self.target.is_some()
    }
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        if let Some((client, resource, owner, durability)) = self.target.take() {
            let runtime = client.inner.runtime.clone();
            runtime.spawn(async move {
                let _ = client.unlock(&resource, &owner, durability).await;
            });
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let Some(s) = self.shared.take() else {
            return;
        };
        let release = {
            let mut l = s.lease();
            let release = !l.released && (l.held || l.lost_reason.is_some());
            l.released = true;
            l.held = false;
            release
        };
        s.stop.cancel();
        s.gone.cancel();
        if release {
            let client = self.client.clone();
            let runtime = tokio::runtime::Handle::try_current().unwrap_or_else(|_| client.inner.runtime.clone());
            runtime.spawn(async move {
                if let Err(e) = unlock(&client, &s).await {
                    debug!(resource = %s.resource, error = %e, "release on drop failed; the lease will expire");
                }
            });
        }
    }
}
