//! SIGTERM on the leader under a stream of writes: the leader hands its leadership to
//! an up-to-date follower before it exits (code 0), so the next leader takes over in
//! the next term well before any election timeout could pass, and no write fails.
//! `stall_sigterm_versus_sigkill` (ignored; run it by name) prints the write stall of
//! both ways of stopping a leader.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kahuna_client::{Client, ClientOptions};
use kahuna_testkit::Cluster;
use tokio::task::JoinHandle;

/// The testkit's `--election-timeout-ms`: no member starts an election sooner after the
/// leader's last heartbeat.
const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(1000);

type Writes = Result<Vec<Instant>, String>;

/// Writes one key after another until `stop`; returns when each write returned.
fn write_stream(client: Client, stop: Arc<AtomicBool>, prefix: &'static str) -> JoinHandle<Writes> {
    tokio::spawn(async move {
        let mut done = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            if let Err(e) = client.set(&format!("{prefix}/{i:06}"), i.to_string()).await {
                return Err(format!("write {i} failed after {:?}: {e}", t.elapsed()));
            }
            done.push(Instant::now());
            i += 1;
        }
        Ok(done)
    })
}

/// The longest wait between two writes returning, from `from` on.
fn stall(done: &[Instant], from: Instant) -> Duration {
    let mut longest = Duration::ZERO;
    let mut prev = from;
    for at in done.iter().filter(|at| **at >= from) {
        longest = longest.max(at.duration_since(prev));
        prev = *at;
    }
    longest
}

/// Polls the running members other than `old` until one reports itself leader;
/// returns it, its term and when it was first seen.
async fn next_leader(cluster: &Cluster, old: u64, within: Duration) -> (u64, u64, Instant) {
    let deadline = Instant::now() + within;
    loop {
        for id in cluster.running().into_iter().filter(|id| *id != old) {
            if let Some(s) = cluster.status(id).await {
                if s.state == "leader" {
                    return (id, s.term, Instant::now());
                }
            }
        }
        if Instant::now() >= deadline {
            for m in &cluster.members {
                let log = cluster.log(m.id);
                eprintln!(
                    "--- member {} log (tail):\n{}",
                    m.id,
                    &log[log.len().saturating_sub(6000)..]
                );
            }
            panic!("no new leader within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(30),
        ..ClientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_leader_hands_over_without_an_election() {
    let mut cluster = Cluster::start(3, "rocksdb", &[]).await;
    let client = common::client_with(&cluster, options()).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let old_term = cluster.status(leader).await.expect("leader status").term;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = write_stream(client.clone(), stop.clone(), "w");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = Instant::now();
    cluster.signal(leader, "-TERM");
    let (new_leader, new_term, seen) = next_leader(&cluster, leader, Duration::from_secs(20)).await;
    let exit = cluster.wait_exit(leader, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let done = writer.await.expect("writer task").expect("no write may fail");

    let takeover = seen.duration_since(signalled);
    eprintln!(
        "leader {leader} (term {old_term}) got SIGTERM: member {new_leader} leads term {new_term} after {} ms; \
         writes stalled {} ms; {} writes",
        takeover.as_millis(),
        stall(&done, signalled).as_millis(),
        done.len()
    );
    let exit = exit.expect("the old leader did not exit within 20 s of SIGTERM");
    assert_eq!(exit.code(), Some(0), "exit status after SIGTERM: {exit:?}");
    assert_ne!(new_leader, leader);
    // By transfer, not by election: the very next term, and sooner than any member
    // could have timed out (its last heartbeat from the old leader was at most one
    // heartbeat before the signal).
    let log = cluster.log(leader);
    let handoff: Vec<&str> = log.lines().filter(|l| l.contains("hand")).collect();
    assert_eq!(
        new_term,
        old_term + 1,
        "the new leader is not in the next term; the old leader's hand-off:\n{}",
        handoff.join("\n")
    );
    assert!(
        takeover < ELECTION_TIMEOUT_MIN * 7 / 10,
        "takeover took {takeover:?}: as slow as an election timeout"
    );
    assert!(
        log.contains(&format!("leadership handed over to member {new_leader}")),
        "the old leader's log does not show the hand-off:\n{log}"
    );
    assert!(
        done.iter().filter(|at| **at > signalled).count() > 10,
        "too few writes after the hand-off"
    );

    // Every write is there exactly once (version 1: no retry applied twice).
    let all = client.scan_all("w/", Default::default()).await.expect("scan");
    assert_eq!(all.len(), done.len());
    assert!(all.iter().all(|kv| kv.version == 1));

    // The old leader comes back as a follower of the new one.
    cluster.spawn(leader);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = cluster.status(leader).await.expect("restarted member's status");
    assert_eq!(s.leader_id, new_leader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_follower_exits_cleanly() {
    let mut cluster = Cluster::start(3, "rocksdb", &[]).await;
    let client = common::client_with(&cluster, options()).await;
    let (leader, follower) = common::leader_and_follower(&cluster).await;
    client.set("before", "x").await.expect("write");
    cluster.signal(follower, "-TERM");
    let exit = cluster
        .wait_exit(follower, Duration::from_secs(20))
        .await
        .expect("the follower did not exit within 20 s of SIGTERM");
    assert_eq!(exit.code(), Some(0), "exit status after SIGTERM: {exit:?}");
    // The leader was not disturbed.
    client.set("after", "y").await.expect("write after the follower left");
    assert_eq!(cluster.status(leader).await.expect("status").state, "leader");
}

/// Median write stall over `rounds` stops of the leader by `signal`.
async fn stalls(cluster: &mut Cluster, client: &Client, signal: &str, rounds: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for round in 0..rounds {
        let leader = cluster.wait_leader(Duration::from_secs(30)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = write_stream(client.clone(), stop.clone(), "bench");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let at = Instant::now();
        if signal == "-KILL" {
            cluster.kill(leader);
        } else {
            cluster.signal(leader, signal);
        }
        next_leader(cluster, leader, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        let done = writer.await.expect("writer task").expect("no write may fail");
        let s = stall(&done, at);
        eprintln!("{signal} round {round}: writes stalled {} ms", s.as_millis());
        out.push(s);
        let _ = cluster.wait_exit(leader, Duration::from_secs(20)).await;
        cluster.kill(leader);
        cluster.spawn(leader);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test -p kahuna-client --test shutdown -- --ignored --nocapture"]
async fn stall_sigterm_versus_sigkill() {
    let mut cluster = Cluster::start(3, "rocksdb", &[]).await;
    let client = common::client_with(&cluster, options()).await;
    let term = stalls(&mut cluster, &client, "-TERM", 5).await;
    let kill = stalls(&mut cluster, &client, "-KILL", 5).await;
    let ms = |v: &[Duration]| {
        v.iter()
            .map(|d| d.as_millis().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "STALL sigterm median {} ms [{}]; sigkill median {} ms [{}]",
        term[term.len() / 2].as_millis(),
        ms(&term),
        kill[kill.len() / 2].as_millis(),
        ms(&kill)
    );
}
