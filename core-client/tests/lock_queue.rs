//! Fair lock waiting against real server processes: waiters are granted in the order
//! they asked, woken by the server; a killed waiter holds the queue up no longer than
//! its place's lease; the queue survives a leader kill; fencing tokens keep rising.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::queued as waiting;
use kahuna_client::Client;
use kahuna_testkit::Cluster;

/// What each waiter saw: (waiter, fencing token, when granted, when released).
type Grants = Arc<Mutex<Vec<(usize, u64, Instant, Instant)>>>;

/// Starts `n` waiters on `resource` one after another while its holder holds it,
/// each in its place in the queue (the lock's `waiters`) before the next asks.
async fn queue_waiters(
    client: &Client,
    resource: &str,
    n: usize,
    hold: Duration,
) -> (Vec<tokio::task::JoinHandle<()>>, Grants) {
    let grants: Grants = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..n {
        let waiter = client.clone();
        let grants = grants.clone();
        let mine = resource.to_owned();
        tasks.push(tokio::spawn(async move {
            let guard = waiter
                .lock(&mine, waiting(Duration::from_secs(10), Duration::from_secs(90)))
                .await
                .expect("lock");
            assert!(guard.is_acquired(), "waiter {i} gave up");
            let granted = Instant::now();
            let token = guard.fencing_token().unwrap_or(0);
            tokio::time::sleep(hold).await;
            assert_eq!(guard.lost_reason(), None, "waiter {i} lost its lock while holding it");
            let released = Instant::now();
            grants.lock().unwrap().push((i, token, granted, released));
            guard.release().await.expect("release");
        }));
        // The next asks only once this one has its place (the holder holds on while
        // the waiters line up: none is granted yet).
        common::until_lock(
            client,
            resource,
            |l| l.waiters as usize > i,
            &format!("waiter {i} never took its place"),
        )
        .await;
    }
    (tasks, grants)
}

fn check_order(grants: &[(usize, u64, Instant, Instant)], first_token: u64) {
    let order: Vec<usize> = grants.iter().map(|g| g.0).collect();
    let expected: Vec<usize> = (0..grants.len()).collect();
    assert_eq!(order, expected, "granted out of arrival order");
    let mut last = first_token;
    for g in grants {
        assert!(g.1 > last, "token {} after {last}: fencing tokens must rise", g.1);
        last = g.1;
    }
    for w in grants.windows(2) {
        assert!(
            w[1].2 >= w[0].3,
            "waiter {} was granted before {} released",
            w[1].0,
            w[0].0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_waiters_are_granted_in_the_order_they_asked() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let holder = client
        .lock("queue/fifo", waiting(Duration::from_secs(10), Duration::ZERO))
        .await
        .expect("holder");
    assert!(holder.is_acquired());
    let first = holder.fencing_token().unwrap_or(0);
    let (tasks, grants) = queue_waiters(&client, "queue/fifo", 20, Duration::from_millis(20)).await;
    let released = Instant::now();
    holder.release().await.expect("release");
    common::all_finish(tasks, "every waiter is granted within 60 s").await;
    let grants = grants.lock().unwrap().clone();
    check_order(&grants, first);
    // Handoffs: from one waiter's release to the next one's grant, woken by the server.
    let mut handoffs: Vec<Duration> = std::iter::once(grants[0].2.duration_since(released))
        .chain(grants.windows(2).map(|w| w[1].2.duration_since(w[0].3)))
        .collect();
    handoffs.sort();
    eprintln!(
        "lock handoff with 20 waiters: p50 {:?}, max {:?}",
        handoffs[handoffs.len() / 2],
        handoffs[handoffs.len() - 1]
    );
    // Polling every 5 s would make handoffs of seconds.
    assert!(handoffs[handoffs.len() / 2] < Duration::from_secs(1), "{handoffs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_waiter_does_not_block_the_queue_past_its_place() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let endpoints = common::endpoints(&cluster).join(",");
    let holder = client
        .lock("queue/dead", waiting(Duration::from_secs(10), Duration::ZERO))
        .await
        .expect("holder");
    let first = holder.fencing_token().unwrap_or(0);
    // A waiter in another process, asking for a 60 s lease, first in the queue.
    let mut dead = common::lock_run(
        &endpoints,
        &["queue/dead", "--ttl", "60s", "--wait", "120s", "--", "sleep", "100"],
    )
    .spawn()
    .expect("kahuna lock run");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let live = tokio::spawn({
        let client = client.clone();
        async move {
            // A lease shorter than the time it waited: its guard must time the lease
            // from the grant, not from when it asked.
            let g = client
                .lock("queue/dead", waiting(Duration::from_secs(2), Duration::from_secs(60)))
                .await
                .expect("lock");
            let at = Instant::now();
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(g.lost_reason(), None, "renewed past its 2 s TTL");
            (g.is_acquired(), g.fencing_token().unwrap_or(0), at, g)
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    dead.kill().expect("kill the waiter");
    let _ = dead.wait();
    let killed = Instant::now();
    // Its turn comes at once: the grant goes to the dead waiter, cut to what is left
    // of its place (at most 5 s of wait + 2 s), not its 60 s lease.
    holder.release().await.expect("release");
    let (acquired, token, at, _guard) = tokio::time::timeout(Duration::from_secs(30), live)
        .await
        .expect("the live waiter is granted")
        .expect("waiter");
    assert!(acquired);
    assert!(token > first, "token {token} after {first}");
    let blocked = at.duration_since(killed);
    eprintln!("a killed waiter held the queue up for {blocked:?}");
    assert!(
        blocked < Duration::from_secs(10),
        "the killed waiter blocked the queue for {blocked:?}, past its place's lease (7 s) plus a sweep"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_survives_a_leader_kill() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::patient_client(&cluster).await;
    let holder = client
        .lock("queue/failover", waiting(Duration::from_secs(10), Duration::ZERO))
        .await
        .expect("holder");
    let first = holder.fencing_token().unwrap_or(0);
    let (tasks, grants) = queue_waiters(&client, "queue/failover", 5, Duration::from_millis(20)).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    cluster.kill(leader);
    // The holder's release goes to the next leader, which grants from the same queue.
    holder.release().await.expect("release through the failover");
    common::all_finish(tasks, "every waiter is granted within 60 s").await;
    check_order(&grants.lock().unwrap().clone(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_that_never_reaches_a_member_says_why() {
    let options = kahuna_client::ClientOptions {
        timeout: Duration::from_millis(300),
        discover_members: false,
        ..kahuna_client::ClientOptions::default()
    };
    let client = Client::connect_lazy(["127.0.0.1:1"], options).expect("lazy client");
    let started = Instant::now();
    let e = client
        .lock(
            "queue/nowhere",
            waiting(Duration::from_secs(5), Duration::from_millis(500)),
        )
        .await
        .expect_err("nobody listens at 127.0.0.1:1");
    assert!(e.is_retryable(), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let e = client
        .campaign(
            "queue/nowhere",
            "v",
            kahuna_client::CampaignOptions {
                ttl: Duration::from_secs(5),
                wait: Some(Duration::from_millis(500)),
            },
        )
        .await
        .expect_err("a campaign too");
    assert!(e.is_retryable(), "{e:?}");
}
