//! Rate limiters against a real 3-member cluster: each policy's decisions and waits,
//! exactly the limit allowed under 64 concurrent checks, both tiers, the CLI, and
//! bad input.

mod common;

use std::time::Duration;

use kahuna_client::{Durability, Error, RatePolicy};
use kahuna_testkit::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_policy_allows_its_limit_and_says_when_to_retry() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;

    // A token bucket: the burst, then one token per 100 ms.
    let bucket = RatePolicy::TokenBucket {
        capacity: 3,
        refill_per_second: 10,
    };
    for left in [2, 1, 0] {
        let d = client.check_rate("rl/bucket", bucket, 1).await.expect("check");
        assert!(d.allowed);
        assert_eq!(d.remaining, left);
    }
    let refused = client.check_rate("rl/bucket", bucket, 1).await.expect("check");
    assert!(!refused.allowed);
    assert!(
        refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(100),
        "{:?}",
        refused.retry_after
    );
    tokio::time::sleep(refused.retry_after + Duration::from_millis(20)).await;
    assert!(client.check_rate("rl/bucket", bucket, 1).await.expect("check").allowed);

    // A fixed window: the limit per window, then a wait to the window's end.
    let fixed = RatePolicy::FixedWindow {
        limit: 5,
        window: Duration::from_secs(2),
    };
    let mut allowed = 0;
    let mut wait = Duration::ZERO;
    for _ in 0..8 {
        let d = client.check_rate("rl/fixed", fixed, 1).await.expect("check");
        if d.allowed {
            allowed += 1;
        } else {
            wait = d.retry_after;
        }
    }
    // The 8 checks may straddle a window boundary: 5 in one window, the rest in the next.
    assert!((5..=8).contains(&allowed), "{allowed}");
    if allowed == 5 {
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(2), "{wait:?}");
    }

    // A cost takes several units at once; one more than the limit can never pass.
    let sliding = RatePolicy::SlidingWindow {
        limit: 10,
        window: Duration::from_secs(60),
    };
    assert!(
        client
            .check_rate("rl/sliding", sliding, 7)
            .await
            .expect("check")
            .allowed
    );
    let d = client.check_rate("rl/sliding", sliding, 4).await.expect("check");
    assert!(!d.allowed);
    assert_eq!(d.remaining, 3);
    let e = client
        .check_rate("rl/sliding", sliding, 11)
        .await
        .expect_err("cost > limit");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains("could never be allowed"), "{e}");
    let e = client
        .check_rate(
            "rl/zero",
            RatePolicy::FixedWindow {
                limit: 0,
                window: Duration::from_secs(1),
            },
            1,
        )
        .await
        .expect_err("limit 0");
    assert!(e.to_string().contains("fixed_window.limit is 0"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_allow_exactly_the_limit_on_both_tiers() {
    let cluster = Cluster::start(3, "memory", &["--max-ephemeral-ttl-ms", "1000"]).await;
    let client = common::client(&cluster).await;
    let policy = RatePolicy::FixedWindow {
        limit: 50,
        window: Duration::from_secs(3600),
    };
    for durability in [Durability::Persistent, Durability::Ephemeral] {
        let name = format!("rl/race/{}", durability.as_str());
        let checks = (0..64).map(|_| {
            let client = client.clone();
            let name = name.clone();
            tokio::spawn(async move { client.check_rate_with(&name, policy, 1, durability).await })
        });
        let mut allowed = 0;
        for c in checks {
            if c.await.expect("join").expect("check").allowed {
                allowed += 1;
            }
        }
        assert_eq!(
            allowed, 50,
            "{durability:?}: exactly the limit, whatever the interleaving"
        );
    }

    // The CLI: allowed (exit 0), then refused (exit 2) with the wait.
    let ep = common::endpoints(&cluster).join(",");
    let run = |args: &[&str]| {
        common::kahuna(&ep)
            .args(["rate", "rl/cli"])
            .args(args)
            .output()
            .expect("kahuna rate")
    };
    let first = run(&["--token-bucket", "1/1"]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&first.stdout), "allowed, 0 left\n");
    let second = run(&["--token-bucket", "1/1"]);
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stdout).starts_with("refused: retry after "));
    let none = run(&[]);
    assert_eq!(none.status.code(), Some(1), "a policy is required");
    assert!(String::from_utf8_lossy(&none.stderr).contains("--fixed-window"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_limiter_counts_each_check_once_through_a_leader_kill() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::patient_client(&cluster).await;
    // A window far longer than the test: only the limit decides.
    let policy = RatePolicy::FixedWindow {
        limit: 30,
        window: Duration::from_secs(24 * 3600),
    };
    let mut allowed = 0;
    for _ in 0..20 {
        allowed += u32::from(
            client
                .check_rate("rl/failover", policy, 1)
                .await
                .expect("check")
                .allowed,
        );
    }
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    cluster.kill(leader);
    // Checks retried across the failover carry their request ids: none is counted twice,
    // and the state the old leader committed carries over.
    let mut refused = Vec::new();
    for _ in 0..20 {
        let d = client
            .check_rate("rl/failover", policy, 1)
            .await
            .expect("check through the failover");
        if d.allowed {
            allowed += 1;
        } else {
            refused.push(d);
        }
    }
    assert_eq!(allowed, 30, "exactly the limit across the leader kill");
    assert_eq!(refused.len(), 10);
    assert!(refused
        .iter()
        .all(|d| d.remaining == 0 && d.retry_after > Duration::ZERO));
}
