//! The workloads: concurrent clients that record every operation with its invocation
//! and completion time. Written values are unique.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::check::lock::{FencedWrite, Grant, LockHistory, WriteResult};
use crate::check::register::RegisterOp;
use crate::check::sequence::Alloc;
use crate::db::{Db, Outcome, Tier};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the harness started, on the monotonic clock every client shares.
pub fn now_ns() -> i64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as i64
}

fn ns_of(t: Instant) -> i64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    if t < epoch {
        return 0;
    }
    (t - epoch).as_nanos() as i64
}

/// ok / failed / unknown operation counts.
#[derive(Default)]
pub struct Counts {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub unknown: AtomicU64,
}

impl Counts {
    fn count<T>(&self, o: &Outcome<T>) {
        match o {
            Outcome::Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed(_) => self.failed.fetch_add(1, Ordering::Relaxed),
            Outcome::Unknown(_) => self.unknown.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.unknown.load(Ordering::Relaxed),
        )
    }
}

pub struct Ctx {
    pub endpoints: Vec<String>,
    pub stop: Arc<AtomicBool>,
    pub run_id: String,
    pub timeout: Duration,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Runs `clients` clients of `workload` (client `i` on [`Ctx::db`]'s connection) and
    /// waits until they have all stopped.
    async fn run_clients<F, Fut>(self: &Arc<Self>, workload: &str, clients: usize, mut client: F) -> anyhow::Result<()>
    where
        F: FnMut(Arc<Ctx>, Db, usize) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut tasks = Vec::new();
        for i in 0..clients {
            let db = self.db(workload, i)?;
            tasks.push(tokio::spawn(client(self.clone(), db, i)));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    }

    /// Client `i`: odd clients are pinned to one member (followers forward their
    /// requests), even ones use every member and follow the leader.
    fn db(&self, workload: &str, i: usize) -> anyhow::Result<Db> {
        let id = format!("{}-{workload}-{i}", self.run_id);
        if i % 2 == 1 {
            let e = self.endpoints[(i / 2) % self.endpoints.len()].clone();
            Db::new(&[e], id, self.timeout, true)
        } else {
            Db::new(&self.endpoints, id, self.timeout, false)
        }
    }
}

/// A random number in `lo..hi`.
fn rnd(lo: u64, hi: u64) -> u64 {
    rand::thread_rng().gen_range(lo..hi)
}

async fn think() {
    let ms = rnd(0, 15);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

// ---------------------------------------------------------------- register

pub struct Register {
    pub ops: Mutex<Vec<RegisterOp>>,
    pub counts: Counts,
    next_op: AtomicU64,
}

/// Operations per key before the workload moves on to a fresh key.
pub const OPS_PER_KEY: u64 = 100;

impl Register {
    pub fn new() -> Arc<Register> {
        Arc::new(Register {
            ops: Mutex::new(Vec::new()),
            counts: Counts::default(),
            next_op: AtomicU64::new(0),
        })
    }

    pub async fn run(self: Arc<Self>, ctx: Arc<Ctx>, clients: usize) -> anyhow::Result<()> {
        ctx.run_clients("register", clients, |ctx, db, i| {
            let me = self.clone();
            async move { me.client(ctx, db, i).await }
        })
        .await
    }

    async fn client(&self, ctx: Arc<Ctx>, db: Db, client: usize) {
        // The last value this client saw per key: what its compare-and-sets expect.
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut n = 0u64;
        while !ctx.stopped() {
            let k = self.next_op.fetch_add(1, Ordering::Relaxed) / OPS_PER_KEY;
            let key = format!("{}/reg/{k}", ctx.run_id);
            n += 1;
            let value = format!("c{client}-{n}");
            let roll = rnd(0, 100);
            let mut op = RegisterOp {
                client,
                key: key.clone(),
                call: now_ns(),
                ..Default::default()
            };
            if roll < 50 {
                op.op = "get".into();
                let o = db.get(&key).await;
                op.ret = now_ns();
                self.counts.count(&o);
                match o {
                    Outcome::Ok(v) => {
                        let v = v.map(|v| String::from_utf8_lossy(&v).into_owned());
                        op.out_exists = v.is_some();
                        op.out_value = v.clone().unwrap_or_default();
                        seen.insert(key, v.unwrap_or_default());
                    }
                    // A read that failed tells nothing and changes nothing.
                    _ => continue,
                }
            } else {
                let expected = if roll < 75 {
                    None
                } else {
                    Some(seen.get(&key).cloned().unwrap_or_default())
                };
                op.value = value.clone();
                let o = match &expected {
                    None => {
                        op.op = "set".into();
                        db.set(&key, value.as_bytes(), None).await
                    }
                    Some(e) => {
                        op.op = "cas".into();
                        op.expected = e.clone();
                        let cond = if e.is_empty() { None } else { Some(e.as_bytes()) };
                        db.set(&key, value.as_bytes(), Some(cond)).await
                    }
                };
                op.ret = now_ns();
                self.counts.count(&o);
                match o {
                    Outcome::Ok((succeeded, _)) => {
                        op.out_ok = succeeded;
                        if succeeded {
                            seen.insert(key, value);
                        }
                    }
                    Outcome::Failed(_) => continue,
                    Outcome::Unknown(_) => {
                        op.unknown = true;
                        op.ret = i64::MAX;
                    }
                }
            }
            self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
            think().await;
        }
    }
}

// ---------------------------------------------------------------- locks

pub struct Locks {
    /// The workload's name, also in its resource names.
    pub name: &'static str,
    pub tier: Tier,
    pub ttl: Duration,
    pub history: Mutex<LockHistory>,
    pub counts: Counts,
    pub grants: AtomicU64,
    /// Wait in the server's lock queue this long (a random pick in the range, ms)
    /// instead of trying once and retrying after a pause.
    pub wait_ms: Option<(u64, u64)>,
}

/// Shorter than an election: leases run out while a failover is under way.
pub const LOCK_TTL: Duration = Duration::from_millis(1500);
/// Longer than an election (1-2 s here) and shorter than the clock skews the faults
/// inject: leases are carried across failovers by the new-term extension.
pub const LONG_LOCK_TTL: Duration = Duration::from_millis(5000);

impl Locks {
    pub fn new(name: &'static str, tier: Tier, ttl: Duration) -> Arc<Locks> {
        Arc::new(Locks {
            name,
            tier,
            ttl,
            history: Mutex::new(LockHistory::default()),
            counts: Counts::default(),
            grants: AtomicU64::new(0),
            wait_ms: None,
        })
    }

    /// Persistent locks whose clients wait in the server's queue for `wait_ms`: grants
    /// handed from one holder to the next waiter by the state machine, whose leases
    /// the waiters time from the server's answer.
    pub fn queued(name: &'static str, ttl: Duration, wait_ms: (u64, u64)) -> Arc<Locks> {
        Arc::new(Locks {
            name,
            tier: Tier::Persistent,
            ttl,
            history: Mutex::new(LockHistory::default()),
            counts: Counts::default(),
            grants: AtomicU64::new(0),
            wait_ms: Some(wait_ms),
        })
    }

    pub async fn run(self: Arc<Self>, ctx: Arc<Ctx>, clients: usize, resources: usize) -> anyhow::Result<()> {
        ctx.run_clients(&format!("lock-{}", self.name), clients, |ctx, db, i| {
            let me = self.clone();
            let resource = format!("{}/{}/lock/{}", ctx.run_id, self.name, i % resources);
            async move { me.client(ctx, db, i, resource).await }
        })
        .await
    }

    fn grant(&self, g: Grant) {
        self.grants.fetch_add(1, Ordering::Relaxed);
        self.history.lock().unwrap_or_else(|p| p.into_inner()).grants.push(g);
    }

    async fn client(&self, ctx: Arc<Ctx>, db: Db, client: usize, resource: String) {
        let tier = self.tier;
        let data_key = format!("{resource}/data");
        let mut attempt = 0u64;
        while !ctx.stopped() {
            attempt += 1;
            // A fresh owner per attempt: every grant is a new lease, never a re-lock.
            let owner = format!("c{client}-{attempt}");
            let wait = self
                .wait_ms
                .map_or(Duration::ZERO, |(lo, hi)| Duration::from_millis(rnd(lo, hi)));
            let sent = Instant::now();
            let o = db.lock(&resource, &owner, self.ttl, tier, wait).await;
            let ack = Instant::now();
            self.counts.count(&o);
            let lease = match o {
                Outcome::Ok(Some(lease)) => lease,
                Outcome::Ok(None) => {
                    tokio::time::sleep(Duration::from_millis(rnd(20, 120))).await;
                    continue;
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let token = lease.token();
            // The end of the lease in the holder's own view: the client's guard renews
            // it in the background and says until when it may be trusted.
            let mut trusted_until = lease.trusted_until().unwrap_or(ack);
            let hold = Duration::from_millis(rnd(100, 2500));
            let mut n = 0;
            let mut lost = false;
            let mut fenced = false;
            while !ctx.stopped() && ack.elapsed() < hold {
                match lease.trusted_until() {
                    Some(t) => trusted_until = trusted_until.max(t),
                    None => {
                        lost = true;
                        break;
                    }
                }
                n += 1;
                let value = format!("{owner}-w{n}");
                let w_sent = now_ns();
                let o = db.fenced_set(&data_key, value.as_bytes(), &resource, token, tier).await;
                if self.record_write(&owner, &resource, token, value, w_sent, &o) == WriteResult::Fenced {
                    fenced = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(rnd(10, 60))).await;
            }
            let released = Instant::now();
            if !lost {
                if let Some(t) = lease.trusted_until() {
                    trusted_until = trusted_until.max(t);
                }
            }
            let end = released.min(trusted_until);
            self.grant(Grant {
                owner: owner.clone(),
                resource: resource.clone(),
                token,
                sent: ns_of(sent),
                ack: ns_of(ack),
                end: ns_of(end),
            });
            if lost || fenced || ctx.stopped() {
                let o = lease.release().await;
                self.counts.count(&o);
            } else {
                // Race a last write against the release and the next client's grant:
                // it must be applied while the lock is still held or refused FENCED,
                // never accepted after someone else's grant (a fence checked apart
                // from its write would let it through).
                n += 1;
                let value = format!("{owner}-w{n}");
                let w_sent = now_ns();
                let (o, released) = tokio::join!(
                    db.fenced_set(&data_key, value.as_bytes(), &resource, token, tier),
                    lease.release()
                );
                self.record_write(&owner, &resource, token, value, w_sent, &o);
                self.counts.count(&released);
            }
            think().await;
        }
    }

    /// Counts and records a fenced write; returns how it ended.
    fn record_write(
        &self,
        owner: &str,
        resource: &str,
        token: u64,
        value: String,
        sent: i64,
        o: &Outcome<(bool, u64)>,
    ) -> WriteResult {
        self.counts.count(o);
        let result = match o {
            Outcome::Ok((true, rev)) => WriteResult::Ok(*rev),
            Outcome::Ok((false, _)) => WriteResult::Failed,
            Outcome::Failed(e) if e.starts_with("FENCED") => WriteResult::Fenced,
            Outcome::Failed(_) => WriteResult::Failed,
            Outcome::Unknown(_) => WriteResult::Unknown,
        };
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .writes
            .push(FencedWrite {
                owner: owner.to_owned(),
                resource: resource.to_owned(),
                token,
                value,
                sent,
                ack: now_ns(),
                result: result.clone(),
            });
        result
    }
}

// ---------------------------------------------------------------- sequences

pub struct Sequences {
    pub allocs: Mutex<Vec<Alloc>>,
    pub counts: Counts,
    pub replays: AtomicU64,
}

impl Sequences {
    pub fn new() -> Arc<Sequences> {
        Arc::new(Sequences {
            allocs: Mutex::new(Vec::new()),
            counts: Counts::default(),
            replays: AtomicU64::new(0),
        })
    }

    pub async fn run(self: Arc<Self>, ctx: Arc<Ctx>, clients: usize) -> anyhow::Result<()> {
        ctx.run_clients("sequence", clients, |ctx, db, i| {
            let me = self.clone();
            async move { me.client(ctx, db, i).await }
        })
        .await
    }

    async fn client(&self, ctx: Arc<Ctx>, db: Db, client: usize) {
        let mut n = 0u64;
        while !ctx.stopped() {
            n += 1;
            let name = format!("{}/seq/{}", ctx.run_id, n % 2);
            let key = format!("c{client}-{n}");
            let count = rnd(1, 6);
            // Retry an unknown outcome with the same idempotency key (a new request id,
            // as an application retrying after a crash would), and sometimes replay a
            // known one on purpose.
            let mut answered = false;
            let mut tries = 0;
            loop {
                tries += 1;
                let sent = now_ns();
                let o = db.next(&name, count, &key).await;
                self.counts.count(&o);
                match o {
                    Outcome::Ok((first, got, replayed)) => {
                        if answered || tries > 1 {
                            self.replays.fetch_add(1, Ordering::Relaxed);
                        }
                        self.allocs.lock().unwrap_or_else(|p| p.into_inner()).push(Alloc {
                            name: name.clone(),
                            key: key.clone(),
                            first,
                            count: got,
                            replayed,
                            sent,
                            ack: now_ns(),
                        });
                        if answered || rnd(0, 100) >= 15 {
                            break;
                        }
                        answered = true;
                    }
                    Outcome::Failed(_) | Outcome::Unknown(_) => {
                        if ctx.stopped() || tries >= 20 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            think().await;
        }
    }
}
