//! Semaphores against real server processes: at most N holders at once, waiters
//! granted in arrival order as permits free up, each permit fencing writes with a
//! token of its own, a dead holder's permit freed by its lease, permits kept through
//! a leader kill, and typed errors for a name asked two ways.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::queued as options;
use kahuna_client::{Client, Durability, Error, LockOptions, SetOptions};
use kahuna_testkit::Cluster;

/// Sets `key` fenced by `permit`'s name and token.
async fn fenced_set(client: &Client, key: &str, fence: kahuna_client::Fence) -> kahuna_client::Result<()> {
    let options = SetOptions {
        fence: Some(fence),
        ..SetOptions::default()
    };
    client.set_with(key, "v", options).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_n_hold_at_once_and_waiters_are_granted_in_order() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;
    const PERMITS: u32 = 3;
    const WORKERS: usize = 12;
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let grants: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    // The first three hold on until every other worker has its place in the queue.
    let mut first = Vec::new();
    for _ in 0..PERMITS {
        let g = client
            .acquire_permit("sem/pool", PERMITS, options(Duration::from_secs(10), Duration::ZERO))
            .await
            .expect("permit");
        assert!(g.is_acquired());
        first.push(g);
    }
    let full = client
        .acquire_permit("sem/pool", PERMITS, options(Duration::from_secs(10), Duration::ZERO))
        .await
        .expect("a fourth try");
    assert!(!full.is_acquired(), "a fourth permit of three was granted");
    let info = full.holder().expect("the refusal names the semaphore");
    assert_eq!((info.permits, info.holders), (PERMITS, PERMITS));
    let mut tokens: Vec<u64> = first.iter().filter_map(|g| g.fencing_token()).collect();
    let mut tasks = Vec::new();
    for i in 0..WORKERS {
        let c = client.clone();
        let (inside, most, grants) = (inside.clone(), most.clone(), grants.clone());
        tasks.push(tokio::spawn(async move {
            let g = c
                .acquire_permit(
                    "sem/pool",
                    PERMITS,
                    options(Duration::from_secs(10), Duration::from_secs(90)),
                )
                .await
                .expect("acquire");
            assert!(g.is_acquired(), "worker {i} gave up");
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let token = g.fencing_token().expect("token");
            grants.lock().unwrap().push((i, token));
            // A permit's token fences writes while it is held.
            fenced_set(&c, &format!("sem/pool/out/{i}"), g.fence().expect("fence"))
                .await
                .expect("fenced write with a live permit");
            tokio::time::sleep(Duration::from_millis(100)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            g.release().await.expect("release");
            // Released, its token fences no more.
            let stale = fenced_set(
                &c,
                &format!("sem/pool/late/{i}"),
                kahuna_client::Fence::new("sem/pool", token),
            )
            .await;
            assert!(
                matches!(stale, Err(Error::Fenced(_))),
                "a released permit's token still fenced: {stale:?}"
            );
        }));
        // The next asks only once this one has its place.
        common::until_lock(
            &client,
            "sem/pool",
            |l| l.waiters as usize > i,
            &format!("worker {i} never took its place"),
        )
        .await;
    }
    inside.store(PERMITS as usize, Ordering::SeqCst);
    most.store(PERMITS as usize, Ordering::SeqCst);
    for g in first {
        inside.fetch_sub(1, Ordering::SeqCst);
        g.release().await.expect("release");
    }
    common::all_finish(tasks, "every worker is granted within 60 s").await;
    assert!(
        most.load(Ordering::SeqCst) <= PERMITS as usize,
        "{} held at once",
        most.load(Ordering::SeqCst)
    );
    // Tokens follow the grant order (two grants can reach their workers in either
    // order): in token order, the workers are in the order they asked.
    let mut grants = grants.lock().unwrap().clone();
    grants.sort_by_key(|g| g.1);
    let order: Vec<usize> = grants.iter().map(|g| g.0).collect();
    assert_eq!(order, (0..WORKERS).collect::<Vec<_>>(), "granted out of arrival order");
    tokens.extend(grants.iter().map(|g| g.1));
    let mut unique = tokens.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), tokens.len(), "two permits shared a token: {tokens:?}");
    let left = client
        .lock_info("sem/pool", Durability::Persistent)
        .await
        .expect("info");
    assert!(left.is_none(), "the semaphore outlived its last holder: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_asked_two_ways_and_bad_input_are_typed_errors() {
    let cluster = Cluster::start(1, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let quick = || options(Duration::from_secs(10), Duration::ZERO);
    let held = client.acquire_permit("sem/kinds", 3, quick()).await.expect("permit");
    assert!(held.is_acquired());
    let info = held.holder().expect("the permit's view");
    assert_eq!((info.permits, info.holders), (3, 1));
    for (what, answer) in [
        ("another limit", client.acquire_permit("sem/kinds", 5, quick()).await),
        ("as a lock", client.lock("sem/kinds", quick()).await),
    ] {
        match answer {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("semaphore of 3 permits"), "{what}: {m}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    let lock = client.lock("sem/a-lock", quick()).await.expect("lock");
    assert!(lock.is_acquired());
    match client.acquire_permit("sem/a-lock", 2, quick()).await {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("is a lock"), "{m}"),
        other => panic!("a lock asked as a semaphore: {other:?}"),
    }
    let ephemeral = LockOptions {
        durability: Durability::Ephemeral,
        ..quick()
    };
    assert!(matches!(
        client.acquire_permit("sem/eph", 2, ephemeral).await,
        Err(Error::InvalidArgument(_))
    ));
    match client.acquire_permit("sem/huge", 10_001, quick()).await {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("10000"), "{m}"),
        other => panic!("10,001 permits: {other:?}"),
    }
    assert!(matches!(
        client.acquire_permit("sem/none", 0, quick()).await,
        Err(Error::InvalidArgument(_))
    ));
    // A semaphore of one permit is the lock of that name.
    let one = client.acquire_permit("sem/one", 1, quick()).await.expect("one permit");
    assert!(one.is_acquired());
    assert_eq!(one.holder().map(|l| l.permits), Some(0));
    // Nobody holds or waits: the name is free to be a semaphore of another size.
    held.release().await.expect("release");
    let again = client.acquire_permit("sem/kinds", 5, quick()).await.expect("permit");
    assert!(again.is_acquired());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holders_permit_is_freed_by_its_lease() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let endpoints = common::endpoints(&cluster).join(",");
    let quick = || options(Duration::from_secs(10), Duration::ZERO);
    let mine = client.acquire_permit("sem/dead", 2, quick()).await.expect("permit");
    assert!(mine.is_acquired());
    // The other permit, held by `kahuna lock run --permits 2` in another process.
    let mut dead = common::lock_run(
        &endpoints,
        &["sem/dead", "--permits", "2", "--ttl", "3s", "--", "sleep", "100"],
    )
    .spawn()
    .expect("kahuna lock run");
    common::until_lock(&client, "sem/dead", |l| l.holders == 2, "the CLI never took its permit").await;
    dead.kill().expect("kill the holder");
    let _ = dead.wait();
    let killed = Instant::now();
    let waiter = client
        .acquire_permit("sem/dead", 2, options(Duration::from_secs(10), Duration::from_secs(30)))
        .await
        .expect("waiter");
    assert!(waiter.is_acquired());
    let freed = killed.elapsed();
    eprintln!("a killed holder's permit (3 s lease) was granted again after {freed:?}");
    assert!(freed < Duration::from_secs(8), "freed after {freed:?}");
    assert!(waiter.fencing_token() > mine.fencing_token());
    assert_eq!(mine.lost_reason(), None, "the live holder kept its permit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_survive_a_leader_kill() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::patient_client(&cluster).await;
    let quick = || options(Duration::from_secs(6), Duration::ZERO);
    let a = client.acquire_permit("sem/failover", 2, quick()).await.expect("a");
    let b = client.acquire_permit("sem/failover", 2, quick()).await.expect("b");
    assert!(a.is_acquired() && b.is_acquired());
    let before = a.fencing_token().max(b.fencing_token());
    let waiter = tokio::spawn({
        let c = client.clone();
        async move {
            c.acquire_permit(
                "sem/failover",
                2,
                options(Duration::from_secs(6), Duration::from_secs(60)),
            )
            .await
            .expect("waiter")
        }
    });
    common::until_lock(
        &client,
        "sem/failover",
        |l| l.waiters == 1,
        "the waiter never took its place",
    )
    .await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    cluster.kill(leader);
    // Past both leases: the holders renew through the failover and keep their permits.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(a.lost_reason(), None);
    assert_eq!(b.lost_reason(), None);
    assert!(!waiter.is_finished(), "a third permit of two was granted");
    a.release().await.expect("release through the failover");
    let c = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter is granted the freed permit")
        .expect("waiter");
    assert!(c.is_acquired());
    assert!(c.fencing_token() > before, "{:?} after {before:?}", c.fencing_token());
}
