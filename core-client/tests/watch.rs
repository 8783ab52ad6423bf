//! Watches against a real 3-member cluster: every change (put, delete, expire) in
//! revision order, a transaction's changes together, replay from a past revision,
//! progress notifications, COMPACTED, bad input, and a watcher through a leader kill
//! that sees exactly the committed changes.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kahuna_client::{Error, EventKind, HistoryEvent, SetOptions, TxnOp, Watch, WatchOptions};
use kahuna_proto::v1 as pb;
use kahuna_testkit::Cluster;

fn prefix(start_revision: u64) -> WatchOptions {
    WatchOptions {
        prefix: true,
        start_revision,
        ..WatchOptions::default()
    }
}

/// Events until `done` says so, failing after `within`.
async fn collect(watch: &mut Watch, within: Duration, done: impl Fn(&[HistoryEvent]) -> bool) -> Vec<HistoryEvent> {
    let mut out = Vec::new();
    let started = Instant::now();
    while !done(&out) {
        let left = within.saturating_sub(started.elapsed());
        let batch = tokio::time::timeout(left, watch.next())
            .await
            .unwrap_or_else(|_| panic!("watch delivered only {out:?} within {within:?}"))
            .expect("watch");
        out.extend(batch.events);
    }
    out
}

fn summary(events: &[HistoryEvent]) -> Vec<(EventKind, String, String)> {
    events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone(), e.kv.value_str().into_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_delivers_every_change_in_revision_order() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let mut watch = client.watch("w/", prefix(0)).await.expect("watch");
    let opened_at = watch.revision();

    let a = client.set("w/a", "1").await.expect("set");
    client.set("other/x", "not watched").await.expect("set");
    client
        .set_with(
            "w/b",
            "short-lived",
            SetOptions {
                ttl: Some(Duration::from_millis(300)),
                ..SetOptions::default()
            },
        )
        .await
        .expect("set ttl");
    let txn = client
        .txn()
        .then(TxnOp::set("w/c", "3"))
        .then(TxnOp::set("w/d", "4"))
        .commit()
        .await
        .expect("txn");
    assert!(txn.succeeded);
    client.delete("w/a").await.expect("delete");

    let expired = |e: &[HistoryEvent]| e.iter().any(|e| e.kind == EventKind::Expire);
    let events = collect(&mut watch, Duration::from_secs(20), expired).await;
    use EventKind::*;
    assert_eq!(
        summary(&events),
        vec![
            (Put, "w/a".into(), "1".into()),
            (Put, "w/b".into(), "short-lived".into()),
            (Put, "w/c".into(), "3".into()),
            (Put, "w/d".into(), "4".into()),
            (Delete, "w/a".into(), String::new()),
            (Expire, "w/b".into(), String::new()),
        ]
    );
    assert_eq!(events[0].revision, a.mod_revision);
    assert!(events[0].revision > opened_at);
    assert_eq!(events[2].revision, events[3].revision, "a transaction is one revision");
    assert!(events.windows(2).all(|w| w[0].revision <= w[1].revision));
    assert_eq!(
        events[4].kv.create_revision, a.create_revision,
        "a delete names what it removed"
    );

    // Replay from the first change: the same changes, then live ones.
    let mut replay = client.watch("w/", prefix(a.mod_revision)).await.expect("replay");
    let again = collect(&mut replay, Duration::from_secs(10), |e| e.len() >= events.len()).await;
    assert_eq!(again, events);
    client.set("w/e", "5").await.expect("set");
    let live = collect(&mut replay, Duration::from_secs(10), |e| !e.is_empty()).await;
    assert_eq!(summary(&live), vec![(Put, "w/e".into(), "5".into())]);

    // One key: not its neighbours under the same prefix.
    let mut one = client.watch("w/c", WatchOptions::default()).await.expect("key watch");
    client.set("w/cc", "neighbour").await.expect("set");
    client.set("w/c", "33").await.expect("set");
    let mine = collect(&mut one, Duration::from_secs(10), |e| !e.is_empty()).await;
    assert_eq!(summary(&mine), vec![(Put, "w/c".into(), "33".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_hears_progress_and_bad_input_is_refused() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let mut watch = client
        .watch(
            "idle",
            WatchOptions {
                progress_interval: Duration::from_millis(200),
                ..WatchOptions::default()
            },
        )
        .await
        .expect("watch");
    let written = client.set("elsewhere", "x").await.expect("set").mod_revision;
    // Progress notifications catch up with the cluster's revision without any event.
    let started = Instant::now();
    loop {
        let batch = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("a progress notification within 5 s")
            .expect("watch");
        assert!(batch.is_progress(), "{batch:?}");
        if batch.revision >= written {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "progress stuck at {}",
            batch.revision
        );
    }

    // The client refuses an interval it cannot honour; the server names its limits.
    let e = client
        .watch(
            "k",
            WatchOptions {
                progress_interval: Duration::from_millis(10),
                ..WatchOptions::default()
            },
        )
        .await
        .expect_err("10 ms interval");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let mut kv = cluster.kv(1).await;
    for (req, says) in [
        (
            pb::WatchRequest {
                key: Vec::new(),
                ..Default::default()
            },
            "key must not be empty",
        ),
        (
            pb::WatchRequest {
                key: b"k".to_vec(),
                progress_interval_ms: 50,
                ..Default::default()
            },
            "progress_interval_ms is 50",
        ),
        (
            pb::WatchRequest {
                key: vec![0xff],
                prefix: true,
                ..Default::default()
            },
            "not valid UTF-8",
        ),
    ] {
        let s = kv.watch(req).await.expect_err("refused");
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().contains(says), "{}", s.message());
        assert_eq!(
            s.metadata().get("kahuna-error").and_then(|v| v.to_str().ok()),
            Some("INVALID_ARGUMENT")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_before_the_retained_history_is_compacted() {
    let cluster = Cluster::start(1, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let first = client.set("c/first", "x").await.expect("set").mod_revision;
    // The history keeps the last 10,000 revisions: push the first write out of it.
    let writes = futures::stream::iter(0..10_050u32)
        .map(|i| {
            let client = client.clone();
            async move { client.set(&format!("fill/{}", i % 100), "v").await.map(|_| ()) }
        })
        .buffer_unordered(64);
    let results: Vec<_> = writes.collect().await;
    assert!(results.iter().all(Result::is_ok));
    let e = client.watch("c/", prefix(first)).await.expect_err("compacted");
    assert!(matches!(e, Error::Compacted(_)), "{e:?}");
    assert!(e.to_string().contains("no longer retained"), "{e}");
}

use futures::StreamExt;

/// The watcher is connected to the leader, which is killed while a writer goes on
/// through the failover: the watch resumes at another member and delivers every
/// acknowledged write exactly once, in revision order, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_through_a_leader_kill_sees_exactly_the_committed_changes() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let writer = common::patient_client(&cluster).await;
    let watcher = common::patient_client(&cluster).await;
    // The watch opens where the client believes the leader is; right after a start
    // that can be a member that just lost an election: open again until it is the
    // leader that serves it, so the kill below cuts the watch's own stream.
    let mut tries = 0;
    let (leader, mut watch) = loop {
        tries += 1;
        let leader = cluster.wait_leader(Duration::from_secs(30)).await;
        let leader_addr = cluster.members[(leader - 1) as usize].client_addr.clone();
        let watch = watcher.watch("k/", prefix(0)).await.expect("watch");
        if watcher.leader() == Some(leader_addr) {
            break (leader, watch);
        }
        assert!(tries < 50, "the watch never opened at the leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let write = |i: usize| {
        let writer = writer.clone();
        async move {
            if i % 7 == 6 {
                let key = format!("k/{:04}", i - 3);
                let r = writer.delete(&key).await.map_err(|e| format!("delete {key}: {e}"))?;
                Ok::<_, String>((EventKind::Delete, key, r.revision))
            } else {
                let key = format!("k/{i:04}");
                let kv = writer
                    .set(&key, i.to_string())
                    .await
                    .map_err(|e| format!("set {key}: {e}"))?;
                Ok((EventKind::Put, key, kv.mod_revision))
            }
        }
    };
    let mut acknowledged = Vec::new();
    for i in 0..60 {
        acknowledged.push(write(i).await.expect("write before the kill"));
    }
    cluster.kill(leader);
    for i in 60..160 {
        acknowledged.push(write(i).await.expect("write through the failover"));
    }
    let last = acknowledged.iter().map(|a| a.2).max().unwrap_or(0);

    let mut seen: Vec<HistoryEvent> = Vec::new();
    let started = Instant::now();
    while watch.revision() < last {
        let batch = tokio::time::timeout(Duration::from_secs(60).saturating_sub(started.elapsed()), watch.next())
            .await
            .unwrap_or_else(|_| panic!("watch stuck at revision {} of {last}", watch.revision()))
            .expect("watch resumes by itself");
        seen.extend(batch.events);
    }
    let seen: Vec<(EventKind, String, u64)> = seen.iter().map(|e| (e.kind, e.kv.key.clone(), e.revision)).collect();
    // Exactly the acknowledged changes: the writer is the only one writing under k/,
    // and each of its calls was applied once (deduplicated retries).
    assert_eq!(seen.len(), acknowledged.len(), "seen {seen:?}");
    let mut by_revision: HashMap<u64, &(EventKind, String, u64)> = HashMap::new();
    for a in &acknowledged {
        by_revision.insert(a.2, a);
    }
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(
            by_revision.get(&s.2).copied(),
            Some(s),
            "event {i} {s:?} was not acknowledged as such"
        );
        if i > 0 {
            assert!(
                seen[i - 1].2 < s.2,
                "out of order or repeated at {i}: {:?} then {s:?}",
                seen[i - 1]
            );
        }
    }
}
