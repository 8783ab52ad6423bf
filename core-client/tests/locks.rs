//! Locks against real server processes: renewal, the lost signal under a paused
//! leader, release on drop, wait/retry, fencing.

mod common;

use std::time::{Duration, Instant};

use kahuna_client::{Client, Compare, CompareOp, Durability, Error, LockGuard, LockOptions, SetOptions, TxnOp};
use kahuna_testkit::Cluster;
use tokio::task::JoinHandle;

fn opts(ttl_ms: u64) -> LockOptions {
    LockOptions {
        ttl: Duration::from_millis(ttl_ms),
        ..LockOptions::default()
    }
}

/// Asks for `resource` in the background, waiting up to `wait` and trying again every
/// 50 ms; answers when the lock was granted, with the guard.
fn contend(
    client: Client,
    resource: &'static str,
    wait: Duration,
    options: LockOptions,
) -> JoinHandle<(Instant, kahuna_client::Result<LockGuard>)> {
    let options = LockOptions {
        wait,
        retry: Duration::from_millis(50),
        ..options
    };
    tokio::spawn(async move {
        let g = client.lock(resource, options).await;
        (Instant::now(), g)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_held_through_ten_ttls_by_renewal() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let a = common::client(&cluster).await;
    let b = common::client(&cluster).await;
    // Long enough that renewals outlast a scheduling stall of a loaded CI machine (four
    // clusters of debug servers on two cores): with 1.5 s, one CI run saw renewals fail
    // for longer than the lease, and the guard rightly reported the lock lost.
    let ttl = Duration::from_millis(3000);
    let guard = a.lock("held", opts(3000)).await.expect("lock");
    assert!(guard.is_acquired());
    let token = guard.fencing_token().expect("token");
    let started = Instant::now();
    while started.elapsed() < ttl * 10 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(
            guard.is_acquired(),
            "lost after {:?}: {:?}",
            started.elapsed(),
            guard.lost_reason()
        );
        let other = b.lock("held", opts(1500)).await.expect("try lock");
        assert!(
            !other.is_acquired(),
            "granted to another holder after {:?}",
            started.elapsed()
        );
        assert_eq!(other.holder().map(|h| h.fencing_token), Some(token));
    }
    let info = a
        .lock_info("held", Durability::Persistent)
        .await
        .expect("info")
        .expect("held");
    assert_eq!(
        (info.fencing_token, info.owner.as_str()),
        (token, guard.owner().unwrap_or_default())
    );
    assert!(guard.release().await.expect("release"));
    assert!(!guard.is_acquired());
    assert!(a
        .lock_info("held", Durability::Persistent)
        .await
        .expect("info")
        .is_none());
    // A release fires the lost signal too, and a second release is a no-op.
    tokio::time::timeout(Duration::from_secs(1), guard.lost())
        .await
        .expect("lost after release");
    assert!(!guard.release().await.expect("release again"));
    assert!(matches!(guard.extend(None).await, Err(Error::LockNotHeld(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_fires_when_the_leader_is_paused_before_anyone_else_is_granted() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let a = common::client(&cluster).await;
    let b = common::client(&cluster).await;
    // Shorter than the election timeout (1 s), so A cannot renew through a new leader in time.
    let ttl = Duration::from_millis(800);
    // Hold it through a few renewals, then pause the leader. (On a badly overloaded
    // machine an 800 ms lease can rightly be lost before the pause; then start over.)
    let mut attempt = 0;
    let guard = loop {
        attempt += 1;
        let guard = a.lock("paused", opts(800)).await.expect("lock");
        assert!(guard.is_acquired());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        if guard.is_acquired() {
            break guard;
        }
        assert!(attempt < 3, "lost before the pause 3 times: {:?}", guard.lost_reason());
        eprintln!("lost before the pause: {:?}", guard.lost_reason());
        guard.release().await.ok();
    };
    let lost = guard.lost();
    let contender = contend(b, "paused", Duration::from_secs(40), opts(5000));
    let paused_at = Instant::now();
    cluster.signal(leader, "-STOP");
    tokio::time::timeout(Duration::from_secs(5), lost)
        .await
        .expect("lost must fire");
    let lost_at = Instant::now();
    assert!(!guard.is_acquired());
    assert!(
        lost_at.duration_since(paused_at) <= ttl + Duration::from_millis(500),
        "lost fired {:?} after the pause",
        lost_at.duration_since(paused_at)
    );
    let (granted_at, g) = contender.await.expect("contender");
    let g = g.expect("contender lock");
    assert!(g.is_acquired(), "the contender never got the lock");
    assert!(g.fencing_token() > guard.fencing_token());
    assert!(granted_at > lost_at, "granted to B before A's lost signal fired");
    eprintln!(
        "lost {:?} after the pause; B granted {:?} after the pause; reason: {:?}",
        lost_at.duration_since(paused_at),
        granted_at.duration_since(paused_at),
        guard.lost_reason()
    );
    cluster.signal(leader, "-CONT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_guard_frees_the_lock_for_the_next_waiter_and_fences_hold() {
    // A short ephemeral quiet period after the election, for the ephemeral part below.
    let cluster = Cluster::start(1, "memory", &["--max-ephemeral-ttl-ms", "3000"]).await;
    let a = common::client(&cluster).await;
    let b = common::client(&cluster).await;
    let first = a.lock("job", opts(30_000)).await.expect("lock");
    let first_fence = first.fence().expect("fence");
    // A fenced write by the holder goes through; a txn can compare the token itself.
    let fenced = SetOptions {
        fence: Some(first_fence.clone()),
        ..SetOptions::default()
    };
    assert!(
        a.set_with("job/out", "1", fenced.clone())
            .await
            .expect("fenced")
            .succeeded
    );
    let t = a
        .txn()
        .when(Compare::lock_token("job", CompareOp::Equal, first_fence.token))
        .then(TxnOp::set("job/out", "2"))
        .commit()
        .await
        .expect("txn");
    assert!(t.succeeded);

    // wait = 0: one attempt, answered at once with the holder.
    let started = Instant::now();
    let busy = b.lock("job", opts(5000)).await.expect("try");
    assert!(!busy.is_acquired() && busy.fencing_token().is_none());
    assert_eq!(busy.holder().map(|h| h.fencing_token), Some(first_fence.token));
    assert!(busy.lost_token().is_cancelled());
    // wait = 700ms, retry = 200ms: gives up after about the wait.
    let waited = b
        .lock(
            "job",
            LockOptions {
                wait: Duration::from_millis(700),
                retry: Duration::from_millis(200),
                ..opts(5000)
            },
        )
        .await
        .expect("try");
    assert!(!waited.is_acquired());
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // The next waiter gets it soon after the drop, long before the 30 s TTL.
    let waiter = contend(b, "job", Duration::from_secs(20), opts(5000));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dropped_at = Instant::now();
    drop(first);
    let (granted_at, second) = waiter.await.expect("waiter");
    let second = second.expect("lock");
    assert!(second.is_acquired());
    assert!(granted_at.duration_since(dropped_at) < Duration::from_secs(5));
    assert!(second.fencing_token() > Some(first_fence.token));

    // The old holder's fence is now refused, by the server.
    let stale = a.set_with("job/out", "stale", fenced).await;
    assert!(matches!(stale, Err(Error::Fenced(_))), "{stale:?}");
    let stale = a
        .txn()
        .then(TxnOp::set("job/out", "stale"))
        .fence(first_fence)
        .commit()
        .await;
    assert!(matches!(stale, Err(Error::Fenced(_))), "{stale:?}");
    assert_eq!(
        a.get("job/out").await.expect("get").map(|kv| kv.value),
        Some(b"2".to_vec())
    );

    // Ephemeral locks are a separate namespace with their own tokens.
    let eph = a
        .lock(
            "job",
            LockOptions {
                durability: Durability::Ephemeral,
                wait: Duration::from_secs(15),
                ..opts(2000)
            },
        )
        .await
        .expect("ephemeral");
    assert!(eph.is_acquired());
    eph.extend(Some(Duration::from_secs(3))).await.expect("extend");
    assert_eq!(
        a.lock_info("job", Durability::Ephemeral)
            .await
            .expect("info")
            .map(|l| l.fencing_token),
        eph.fencing_token()
    );
    assert!(eph.release().await.expect("release"));
    assert!(second.release().await.expect("release"));
}

/// Kahuna 1.x's TryExtendLock and Unlock by owner: a caller that chose its owner extends and
/// releases the lock without a guard (a restarted process), and another owner cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_and_unlock_by_owner_without_a_guard() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let a = common::client(&cluster).await;
    let b = common::client(&cluster).await;
    let options = LockOptions {
        owner: Some("worker-1".into()),
        ..opts(5000)
    };
    let guard = a.lock("by-owner", options).await.expect("lock");
    assert!(guard.is_acquired());
    let token = guard.fencing_token().expect("token");

    let (extended, info) = b
        .extend_lock_by_owner("by-owner", "worker-1", Duration::from_secs(30), Durability::Persistent)
        .await
        .expect("extend");
    assert!(extended);
    let info = info.expect("the caller's lock");
    assert_eq!(info.fencing_token, token, "extending keeps the token");
    assert!(info.remaining > Duration::from_secs(20), "{info:?}");

    let (extended, holder) = b
        .extend_lock_by_owner("by-owner", "worker-2", Duration::from_secs(30), Durability::Persistent)
        .await
        .expect("extend as another owner");
    assert!(!extended);
    assert_eq!(holder.expect("the holder").owner, "worker-1");
    assert!(!b
        .unlock("by-owner", "worker-2", Durability::Persistent)
        .await
        .expect("unlock"));
    assert!(b
        .unlock("by-owner", "worker-1", Durability::Persistent)
        .await
        .expect("unlock"));
    assert!(b
        .lock_info("by-owner", Durability::Persistent)
        .await
        .expect("info")
        .is_none());

    let (extended, holder) = b
        .extend_lock_by_owner("by-owner", "worker-1", Duration::from_secs(30), Durability::Persistent)
        .await
        .expect("extend a free lock");
    assert!(!extended);
    assert!(holder.is_none());
    let empty = b
        .extend_lock_by_owner("by-owner", "", Duration::from_secs(1), Durability::Persistent)
        .await;
    assert!(matches!(empty, Err(Error::InvalidArgument(_))), "{empty:?}");
    drop(guard);
}
