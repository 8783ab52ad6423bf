//! Leases and cluster time through a failover to a member whose wall clock is far off
//! (libfaketime), with real server processes.

use std::time::{Duration, Instant};

use kahuna_proto::v1::{Durability, TryLockRequest};
use kahuna_testkit::{libfaketime_available, retry, set_req, Cluster, LIBFAKETIME};

fn try_lock(owner: &str, ttl_ms: u64) -> TryLockRequest {
    TryLockRequest {
        resource: b"jobs/nightly".to_vec(),
        owner: owner.into(),
        ttl_ms,
        durability: Durability::Persistent as i32,
        wait_ms: 0,
        value: Vec::new(),
        permits: 0,
        request_id: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_survives_failover_to_a_leader_whose_clock_is_120s_ahead() {
    if !libfaketime_available() {
        panic!("{LIBFAKETIME} is missing: scripts/install-deps.sh installs faketime");
    }
    let mut c = Cluster::start(3, "rocksdb", &[]).await;
    let leader = c.wait_leader(Duration::from_secs(20)).await;
    // A takes the lock for 60 s; by its own clock the lease ends 60 s after it asked.
    let asked = Instant::now();
    let granted = c
        .locks(leader)
        .await
        .try_lock(try_lock("A", 60_000))
        .await
        .expect("lock")
        .into_inner();
    assert!(granted.acquired);
    let token = granted.lock.map(|l| l.fencing_token).unwrap_or_default();

    // Both followers are restarted, one at a time, with their wall clocks 120 s ahead;
    // then the leader is killed, so whichever is elected next leads 120 s ahead.
    let followers: Vec<u64> = c.members.iter().map(|m| m.id).filter(|id| *id != leader).collect();
    for id in &followers {
        c.kill(*id);
        c.spawn_skewed(*id, 120);
        // Back in the cluster (it answers reads through the leader) before the next.
        assert!(kahuna_testkit::get(&c, *id, "nothing").await.is_none());
    }
    c.kill(leader);
    let skewed = c.wait_leader(Duration::from_secs(30)).await;
    assert!(followers.contains(&skewed));
    c.spawn(leader);

    // Nobody else is granted the lock while A's lease is valid in A's own view, and
    // the new leader reports at least what A has left.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let b = retry(Duration::from_secs(20), || {
            let c = &c;
            async move { c.locks(skewed).await.try_lock(try_lock("B", 60_000)).await }
        })
        .await
        .into_inner();
        let held_by_a = b.lock.as_ref().map(|l| (l.owner.clone(), l.fencing_token));
        assert!(
            !b.acquired && held_by_a == Some((b"A".to_vec(), token)),
            "B was granted the lock {:?} after {:?}, while A's 60 s lease was valid by A's clock",
            b.lock,
            asked.elapsed()
        );
        let a_left = Duration::from_secs(60).saturating_sub(asked.elapsed());
        let reported = Duration::from_millis(b.lock.map(|l| l.remaining_ms).unwrap_or_default());
        assert!(
            reported >= a_left,
            "the new leader gives A {reported:?}, A still trusts its lease for {a_left:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Cluster time runs on from where it was: a 2 s key expires after about 2 s, not
    // at once (time jumped 120 s) and not never (time frozen).
    let mut put = set_req("session", "x");
    put.ttl_ms = 2_000;
    c.kv(skewed).await.set(put).await.expect("set");
    let set_at = Instant::now();
    assert!(
        kahuna_testkit::get(&c, skewed, "session").await.is_some(),
        "expired at once"
    );
    loop {
        if kahuna_testkit::get(&c, skewed, "session").await.is_none() {
            break;
        }
        assert!(
            set_at.elapsed() < Duration::from_secs(10),
            "a 2 s key still there after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(set_at.elapsed() >= Duration::from_millis(1900));
}
