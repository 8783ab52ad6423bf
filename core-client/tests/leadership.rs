//! `cluster transfer-leader`, `cluster status` lag and health, and `cluster remove`,
//! against real server processes.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kahuna_client::{ClusterStatus, Durability, Error, LockOptions};
use kahuna_testkit::Cluster;

/// A member other than `not`, among those running.
fn other(cluster: &Cluster, not: &[u64]) -> u64 {
    cluster
        .running()
        .into_iter()
        .find(|id| !not.contains(id))
        .expect("another running member")
}

/// Waits until member `id` reports itself leader; returns how long that took.
async fn wait_leads(cluster: &Cluster, id: u64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Some(s) = cluster.status(id).await {
            if s.state == "leader" {
                return start.elapsed();
            }
        }
        assert!(start.elapsed() < within, "member {id} does not lead within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ephemeral_token(client: &kahuna_client::Client, resource: &str) -> u64 {
    let guard = client
        .lock(
            resource,
            LockOptions {
                ttl: Duration::from_secs(2),
                // A new leader waits out the longest lease its predecessor may have
                // granted (--max-ephemeral-ttl-ms) before it grants one.
                wait: Duration::from_secs(15),
                durability: Durability::Ephemeral,
                ..LockOptions::default()
            },
        )
        .await
        .expect("ephemeral lock");
    let token = guard.fencing_token().expect("a token");
    assert!(guard.release().await.expect("release"));
    token
}

async fn persistent_token(client: &kahuna_client::Client, resource: &str) -> u64 {
    let guard = client
        .lock(resource, LockOptions::default())
        .await
        .expect("persistent lock");
    let token = guard.fencing_token().expect("a token");
    assert!(guard.release().await.expect("release"));
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_under_write_load_keeps_writes_tokens_and_ephemeral_locks() {
    let cluster = Cluster::start(3, "rocksdb", &["--max-ephemeral-ttl-ms", "2000"]).await;
    let client = common::client(&cluster).await;
    let old = cluster.wait_leader(Duration::from_secs(10)).await;
    let target = other(&cluster, &[old]);

    let persistent_before = persistent_token(&client, "fence").await;
    let ephemeral_before = ephemeral_token(&client, "eph").await;

    // A light write load through the transfer; every acknowledged write is recorded.
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (key, value) = (format!("load/{i:06}"), format!("v{i}"));
                if client.set(&key, &value).await.is_ok() {
                    acked.lock().expect("acked").insert(key, value);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let t = client.transfer_leader(target).await.expect("transfer");
    assert_eq!(t.leader_id, target);
    let took = wait_leads(&cluster, target, Duration::from_secs(5)).await;
    eprintln!(
        "transfer {old} -> {target}: answered after {:?}, leading after {:?}",
        started.elapsed(),
        took
    );
    let s = cluster.status(old).await.expect("old leader answers");
    assert_eq!(s.state, "follower", "the old leader keeps running as a follower");
    assert!(s.term >= t.term);

    // The new leader grants ephemeral locks; tokens and fencing tokens keep rising.
    let ephemeral_new = ephemeral_token(&client, "eph").await;
    assert!(
        ephemeral_new > ephemeral_before,
        "{ephemeral_new} after {ephemeral_before}"
    );
    let persistent_new = persistent_token(&client, "fence").await;
    assert!(
        persistent_new > persistent_before,
        "{persistent_new} after {persistent_before}"
    );

    // And back: the old leader leads again, with its ephemeral tier serving.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let back = client.transfer_leader(old).await.expect("transfer back");
    assert_eq!(back.leader_id, old);
    assert!(back.term > t.term);
    wait_leads(&cluster, old, Duration::from_secs(5)).await;
    let ephemeral_back = ephemeral_token(&client, "eph").await;
    assert!(ephemeral_back > ephemeral_new, "{ephemeral_back} after {ephemeral_new}");
    let persistent_back = persistent_token(&client, "fence").await;
    assert!(persistent_back > persistent_new);

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let acked = acked.lock().expect("acked").clone();
    assert!(acked.len() > 50, "only {} writes acknowledged", acked.len());
    for (key, value) in &acked {
        let kv = client
            .get(key)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(kv.value, value.as_bytes(), "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_refusals_are_typed() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;

    match client.transfer_leader(99).await {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("99") && m.contains("not in the cluster"), "{m}"),
        other => panic!("unknown member: {other:?}"),
    }
    // To itself: nothing changes.
    let term = cluster.status(leader).await.expect("status").term;
    let t = client.transfer_leader(leader).await.expect("to the leader itself");
    assert_eq!((t.leader_id, t.term), (leader, term));

    // A learner cannot lead.
    let learner = cluster.spawn_joining();
    let addr = cluster.members[(learner - 1) as usize].peer_addr.clone();
    client.add_learner(learner, &addr).await.expect("add learner");
    match client.transfer_leader(learner).await {
        Err(Error::Membership(m)) => assert!(m.contains("learner"), "{m}"),
        other => panic!("learner: {other:?}"),
    }

    // A voter that cannot catch up (paused) is refused after a bounded wait, saying
    // how far behind it is; the leader keeps leading and serving.
    let paused = other(&cluster, &[leader, learner]);
    cluster.signal(paused, "-STOP");
    for i in 0..20 {
        client.set(&format!("behind/{i}"), "x").await.expect("write");
    }
    let started = Instant::now();
    let refused = client.transfer_leader(paused).await;
    cluster.signal(paused, "-CONT");
    match refused {
        Err(Error::Membership(m)) => {
            assert!(
                m.contains(&format!("member {paused}")) && m.contains("entries behind"),
                "{m}"
            )
        }
        other => panic!("paused member: {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(cluster.status(leader).await.expect("status").state, "leader");
    client.set("after-refusal", "y").await.expect("writes go on");
    let t = client.transfer_leader(0).await.expect("to any voter");
    assert!(t.leader_id != leader && t.leader_id != learner);
    wait_leads(&cluster, t.leader_id, Duration::from_secs(5)).await;
}

/// The leader's view of member `id` in `s`.
fn member(s: &ClusterStatus, id: u64) -> &kahuna_client::Member {
    s.members.iter().find(|m| m.id == id).expect("member listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_shows_lag_and_health_of_each_member() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let follower = other(&cluster, &[leader]);
    let paused = other(&cluster, &[leader, follower]);
    client.set("k", "v").await.expect("write");

    // Caught up: lag 0 and answering, for every member.
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = client.status().await.expect("status");
        if s.members.iter().all(|m| m.lag == 0 && m.answering) {
            break s;
        }
        assert!(Instant::now() < deadline, "not all caught up: {:?}", s.members);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(s.member_id, leader);
    assert!(s
        .members
        .iter()
        .all(|m| m.leader_view && m.matched_index == s.last_log_index));

    // A follower reports no replication view.
    let addr = cluster.members[(follower - 1) as usize].client_addr.clone();
    let direct = kahuna_client::Client::connect(vec![addr], kahuna_client::ClientOptions::default())
        .await
        .expect("connect");
    let fs = direct.status().await.expect("follower status");
    if fs.member_id == follower {
        assert!(fs.members.iter().all(|m| !m.leader_view && m.lag == 0 && !m.answering));
    }

    // A paused member falls behind and stops answering.
    cluster.signal(paused, "-STOP");
    for i in 0..10 {
        client.set(&format!("a/{i}"), "x").await.expect("write");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let first = client.status().await.expect("status");
    for i in 0..10 {
        client.set(&format!("b/{i}"), "x").await.expect("write");
    }
    let second = client.status().await.expect("status");
    let (p1, p2) = (member(&first, paused), member(&second, paused));
    assert!(p1.lag > 0 && p2.lag > p1.lag, "lag {} then {}", p1.lag, p2.lag);
    assert!(!p2.answering && p2.last_answer_ms >= 1000, "{p2:?}");
    assert_eq!(p2.matched_index, p1.matched_index);
    let f = member(&second, follower);
    assert!(f.answering && f.lag == 0, "{f:?}");

    // The CLI shows the same, as JSON and for people.
    let ep = common::endpoints(&cluster).join(",");
    let out = common::kahuna(&ep)
        .args(["--json", "cluster", "status"])
        .output()
        .expect("run kahuna");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let pm = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["id"] == paused)
        .expect("paused member")
        .clone();
    assert!(pm["lag"].as_u64().unwrap_or(0) > 0 && pm["answering"] == false, "{pm}");
    let human = common::kahuna(&ep)
        .args(["cluster", "status"])
        .output()
        .expect("run kahuna");
    let human = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(human.contains("NOT ANSWERING") && human.contains("lag=0"), "{human}");

    // Resumed, it catches up.
    cluster.signal(paused, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = client.status().await.expect("status");
        let p = member(&s, paused);
        if p.lag == 0 && p.answering {
            break;
        }
        assert!(Instant::now() < deadline, "not caught up after SIGCONT: {p:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Leader and term as every running member sees them.
async fn views(cluster: &Cluster) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    for id in cluster.running() {
        let s = cluster.status(id).await.expect("status");
        out.push((id, s.leader_id, s.term));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_members_stop_and_the_others_carry_on() {
    let mut cluster = Cluster::start(3, "rocksdb", &[]).await;
    let client = common::client(&cluster).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;

    // A member started with --join is in no membership yet: it waits, it does not stop.
    let joiner = cluster.spawn_joining();
    assert!(cluster.wait_exit(joiner, Duration::from_secs(5)).await.is_none());
    let addr = cluster.members[(joiner - 1) as usize].peer_addr.clone();
    client.add_learner(joiner, &addr).await.expect("add learner");
    client.promote(joiner).await.expect("promote");
    // A voter demoted to learner is still a member.
    let voters: Vec<u64> = (1..=3).collect();
    client.change_membership(&voters, true).await.expect("demote");
    assert!(cluster.wait_exit(joiner, Duration::from_secs(5)).await.is_none());
    let s = client.status().await.expect("status");
    assert!(!member(&s, joiner).voter);

    let before = views(&cluster).await;
    assert!(before.iter().all(|(_, l, _)| *l == leader), "{before:?}");

    // Removing a learner, through the CLI.
    let ep = common::endpoints(&cluster).join(",");
    let out = common::kahuna(&ep)
        .args(["cluster", "remove", &joiner.to_string()])
        .output()
        .expect("run kahuna");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exit = cluster.wait_exit(joiner, Duration::from_secs(15)).await;
    assert!(exit.is_some_and(|e| e.success()), "removed learner: {exit:?}");
    assert!(cluster.log(joiner).contains("removed from the cluster"));

    // Removing a voter.
    let removed = other(&cluster, &[leader]);
    let members = client.remove_member(removed).await.expect("remove voter");
    assert!(members.iter().all(|m| m.id != removed && m.id != joiner));
    let exit = cluster.wait_exit(removed, Duration::from_secs(15)).await;
    assert!(exit.is_some_and(|e| e.success()), "removed voter: {exit:?}");
    assert!(cluster.log(removed).contains("removed from the cluster"));
    // Removing it again changes nothing.
    match client.remove_member(removed).await {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("not in the cluster"), "{m}"),
        other => panic!("second removal: {other:?}"),
    }

    // The others kept their leader and term throughout.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = views(&cluster).await;
    let expected: Vec<_> = before
        .iter()
        .filter(|(id, _, _)| *id != removed && *id != joiner)
        .cloned()
        .collect();
    assert_eq!(after, expected);
    client.set("still", "serving").await.expect("write");
}
