//! A stream of writes keeps going through a leader kill: the caller sees no error inside
//! its deadline, and every write is applied exactly once (version 1) despite retries.

mod common;

use std::time::{Duration, Instant};

use kahuna_testkit::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_continue_through_a_leader_kill() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::patient_client(&cluster).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let client = client.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            // (index, when the write returned, how long it took)
            let mut done: Vec<(usize, Instant, Duration)> = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                if let Err(e) = client.set(&format!("w/{i:05}"), i.to_string()).await {
                    return Err(format!("write {i} failed after {:?}: {e}", t.elapsed()));
                }
                done.push((i, Instant::now(), t.elapsed()));
                i += 1;
            }
            Ok(done)
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    cluster.kill(leader);
    // When a surviving member first reports itself leader (polled every 50 ms).
    let mut elected = None;
    while elected.is_none() && killed_at.elapsed() < Duration::from_secs(20) {
        for id in cluster.running() {
            if cluster.status(id).await.is_some_and(|s| s.state == "leader") {
                elected = Some(killed_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Keep writing for a while under the new leader.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done = writer.await.expect("writer task").expect("no write may fail");

    let before = done.iter().filter(|(_, at, _)| *at < killed_at).count();
    let after: Vec<_> = done.iter().filter(|(_, at, _)| *at >= killed_at).collect();
    assert!(before > 0, "no writes before the kill");
    assert!(after.len() > 10, "only {} writes after the kill", after.len());
    // The longest the caller waited for a write after the kill (the stall over the failover).
    let mut stall = Duration::ZERO;
    let mut prev = killed_at;
    for (_, at, _) in &after {
        stall = stall.max(at.duration_since(prev));
        prev = *at;
    }
    let slowest = done.iter().map(|d| d.2).max().unwrap_or_default();
    eprintln!(
        "leader {leader} killed: new leader seen after {:?} ms; writes stalled {} ms; slowest write {} ms; {} writes before, {} after",
        elected.map(|d| d.as_millis()),
        stall.as_millis(),
        slowest.as_millis(),
        before,
        after.len()
    );
    assert_ne!(
        client.leader(),
        Some(cluster.members[(leader - 1) as usize].client_addr.clone())
    );

    // Every write is there exactly once: version 1 means no retry was applied twice.
    let all = client.scan_all("w/", Default::default()).await.expect("scan");
    assert_eq!(all.len(), done.len());
    for (kv, (i, _, _)) in all.iter().zip(&done) {
        assert_eq!(kv.value_str(), i.to_string());
        assert_eq!(kv.version, 1, "{} was applied more than once", kv.key);
    }
}
