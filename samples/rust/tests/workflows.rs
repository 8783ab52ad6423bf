//! Each workflow against a real single-member server, one test per workflow.

use std::collections::HashSet;
use std::time::Duration;

use kahuna_client::{Client, ClientOptions};
use kahuna_samples::leader_job::{run_worker, JobOutcome};
use kahuna_samples::{allocate_ids, rate_limit::RateLimiter, transfer};
use kahuna_testkit::Cluster;

async fn client(cluster: &Cluster) -> Client {
    let endpoints: Vec<String> = cluster.members.iter().map(|m| m.client_addr.clone()).collect();
    let options = ClientOptions {
        timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    };
    Client::connect(endpoints, options).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limiting() {
    let cluster = Cluster::start(1, "memory", &[]).await;
    let c = client(&cluster).await;
    // Rate limiting: 12 concurrent attempts against a limit of 5 per (long) window.
    let limiter = RateLimiter::new(c.clone(), 5, Duration::from_secs(60));
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let l = limiter.clone();
            tokio::spawn(async move { l.try_acquire("user-1").await })
        })
        .collect();
    let mut allowed = 0;
    for a in attempts {
        if a.await.expect("task").expect("try_acquire") {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);
    assert!(limiter.try_acquire("user-2").await.expect("other key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_owned_job_with_fenced_writes() {
    let cluster = Cluster::start(1, "memory", &[]).await;
    let c = client(&cluster).await;

    // Leader-owned job: two workers race; one runs the job, the other is not leader.
    let (a, b) = tokio::join!(
        run_worker(&c, "report", "a", 3, Duration::from_millis(300), Duration::ZERO),
        run_worker(&c, "report", "b", 3, Duration::from_millis(300), Duration::ZERO),
    );
    let outcomes = [a.expect("a"), b.expect("b")];
    let completed: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            JobOutcome::Completed { token, .. } => Some(*token),
            _ => None,
        })
        .collect();
    assert_eq!(completed.len(), 1, "{outcomes:?}");
    assert!(outcomes.contains(&JobOutcome::NotLeader));
    // The next run gets a newer token; a write fenced with the old one is refused.
    let next = run_worker(&c, "report", "c", 1, Duration::ZERO, Duration::from_secs(5))
        .await
        .expect("c");
    let JobOutcome::Completed { token, .. } = next else {
        panic!("{next:?}")
    };
    assert!(token > completed[0]);
    let stale = kahuna_client::SetOptions {
        fence: Some(kahuna_client::Fence::new("jobs/report", completed[0])),
        ..Default::default()
    };
    assert!(matches!(
        c.set_with("jobs/report/progress", "stale", stale).await,
        Err(kahuna_client::Error::Fenced(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_id_allocation() {
    let cluster = Cluster::start(1, "memory", &[]).await;
    let c = client(&cluster).await;
    // Idempotent allocation: retries return the same block; blocks never overlap.
    let first = allocate_ids::invoice_numbers_for_batch(&c, "b1", 10)
        .await
        .expect("alloc");
    let retry = allocate_ids::invoice_numbers_for_batch(&c, "b1", 10)
        .await
        .expect("alloc");
    assert_eq!(first.ids(), retry.ids());
    let mut seen = HashSet::new();
    for r in [
        first,
        allocate_ids::fresh_numbers(&c, 5).await.expect("alloc"),
        allocate_ids::invoice_numbers_for_batch(&c, "b2", 7)
            .await
            .expect("alloc"),
    ] {
        for id in r.ids() {
            assert!(seen.insert(id), "{id} handed out twice");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_compare_and_set() {
    let cluster = Cluster::start(1, "memory", &[]).await;
    let c = client(&cluster).await;
    // Transactional compare-and-set: concurrent transfers keep the total.
    for (name, amount) in [("alice", 100), ("bob", 100), ("carol", 100)] {
        assert!(transfer::open(&c, name, amount).await.expect("open"));
    }
    let moves = [
        ("alice", "bob"),
        ("bob", "carol"),
        ("carol", "alice"),
        ("alice", "carol"),
    ];
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                for j in 0..5 {
                    let (from, to) = moves[(i + j) % moves.len()];
                    let _ = transfer::transfer(&c, from, to, 7).await.expect("transfer");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(transfer::total(&c).await.expect("total"), 300);
    assert_eq!(
        transfer::transfer(&c, "alice", "bob", 1_000).await.expect("transfer"),
        Err(transfer::TransferError::InsufficientFunds)
    );
}
