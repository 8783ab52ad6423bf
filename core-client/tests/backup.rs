//! Backups with real processes: `kahuna snapshot save` under write load against a
//! 3-member cluster, then `kahuna-server --restore` seeding a new one-member cluster
//! that answers every key with its value and revision, keeps lock tokens and
//! sequences moving forward, and refuses damaged files and used data directories.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kahuna_client::{LockOptions, ScanOptions};
use kahuna_testkit::Cluster;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Every key with its value and revisions, read linearizably.
async fn all_keys(client: &kahuna_client::Client) -> BTreeMap<String, (Vec<u8>, u64, u64)> {
    let options = ScanOptions {
        limit: 500,
        ..ScanOptions::default()
    };
    client
        .scan_all("", options)
        .await
        .expect("scan")
        .into_iter()
        .map(|kv| (kv.key, (kv.value, kv.mod_revision, kv.create_revision)))
        .collect()
}

fn save(endpoint: &str, file: &std::path::Path) -> Value {
    let out = common::kahuna(endpoint)
        .args(["--timeout", "60s", "--json", "snapshot", "save"])
        .arg(file)
        .output()
        .expect("run kahuna");
    assert!(
        out.status.success(),
        "kahuna snapshot save: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_saved_under_load_restores_every_key() {
    let source = Cluster::start(3, "rocksdb", &[]).await;
    let client = common::client(&source).await;
    for i in 0..2_000 {
        client
            .set(&format!("base/{i:05}"), format!("value {i}"))
            .await
            .expect("set");
    }
    // Overwritten and deleted keys: the restore has their latest state only.
    client.set("base/00001", "rewritten").await.expect("set");
    client.delete("base/00002").await.expect("delete");
    let held = client
        .lock(
            "jobs/backup-test",
            LockOptions {
                ttl: Duration::from_secs(60),
                ..LockOptions::default()
            },
        )
        .await
        .expect("lock");
    let token = held.fencing_token().expect("acquired");
    let ids = client.next("orders", 10, None).await.expect("next");

    // Writers keep going while the snapshot is taken; each remembers what was
    // acknowledged before the save began.
    let stop = Arc::new(AtomicBool::new(false));
    let acked_before: Arc<Mutex<Vec<String>>> = Arc::default();
    let saving = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, stop, acked, saving) = (client.clone(), stop.clone(), acked_before.clone(), saving.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("load/{w}/{n:06}");
                let before = !saving.load(Ordering::SeqCst);
                if client.set(&key, "x").await.is_ok() && before {
                    acked.lock().expect("lock").push(key);
                }
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    saving.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("kahuna.snapshot");
    // Through a follower: it forwards to the leader, which takes the snapshot.
    let leader = source.wait_leader(WAIT).await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let endpoint = source.members[(follower - 1) as usize].client_addr.clone();
    let saved = tokio::task::spawn_blocking({
        let file = file.clone();
        move || save(&endpoint, &file)
    })
    .await
    .expect("save");
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.expect("writer");
    }
    assert!(written > 0, "the writers wrote nothing");
    let revision = saved["revision"].as_u64().expect("revision");
    assert_eq!(
        saved["member_id"].as_u64(),
        Some(leader),
        "taken by the leader: {saved}"
    );
    assert_eq!(
        saved["bytes"].as_u64(),
        Some(std::fs::metadata(&file).expect("file").len()),
        "{saved}"
    );
    assert!(!dir.path().join("kahuna.snapshot.part").exists());

    // The source as of the snapshot: keys written at or before its revision (each load
    // key is written once, so its latest state is the one the snapshot saw).
    let expected: BTreeMap<_, _> = all_keys(&client)
        .await
        .into_iter()
        .filter(|(_, (_, rev, _))| *rev <= revision)
        .collect();
    assert_eq!(saved["keys"].as_u64(), Some(expected.len() as u64), "{saved}");

    // A new one-member cluster from the file.
    let file_arg = file.to_str().expect("utf-8 path").to_owned();
    let mut restored = Cluster::start(1, "rocksdb", &["--restore", &file_arg]).await;
    let rclient = common::client(&restored).await;
    let got = all_keys(&rclient).await;
    assert_eq!(got.len(), expected.len(), "key count");
    for (key, want) in &expected {
        assert_eq!(got.get(key), Some(want), "{key}: value and revisions");
    }
    for key in acked_before.lock().expect("lock").iter() {
        assert!(
            got.contains_key(key),
            "{key} was acknowledged before the save and is missing"
        );
    }
    assert!(!got.contains_key("base/00002"), "a deleted key came back");

    // Revisions, fencing tokens and sequences go on from where the snapshot was.
    let next = rclient.set("after/restore", "y").await.expect("write after restore");
    assert!(next.mod_revision > revision, "{} after {revision}", next.mod_revision);
    let info = rclient
        .lock_info("jobs/backup-test", kahuna_client::Durability::Persistent)
        .await
        .expect("lock info")
        .expect("the lock is still held in the restored cluster");
    assert_eq!(info.fencing_token, token);
    let more = rclient.next("orders", 1, None).await.expect("next");
    assert!(more.first >= ids.first + ids.count, "{more:?} after {ids:?}");

    // Started again with the same --restore (a container's fixed command line): it
    // keeps its own state instead of refusing or restoring over it.
    restored.kill(1);
    restored.spawn(1);
    restored.wait_leader(WAIT).await;
    let again = common::client(&restored).await;
    assert_eq!(
        again.get("after/restore").await.expect("get").map(|kv| kv.value),
        Some(b"y".to_vec())
    );
    drop(held);
}

/// Starts a one-member cluster with `--restore file` in a fresh data directory and
/// returns what it printed once it exited (it must refuse).
async fn refused(file: &std::path::Path, data_dir: &std::path::Path) -> String {
    let out = tokio::process::Command::new(kahuna_testkit::server_bin())
        .arg("--restore")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{}", kahuna_testkit::free_port())])
        .args(["--peer-listen", &format!("127.0.0.1:{}", kahuna_testkit::free_port())])
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("the server kept running")
        .expect("run the server");
    assert!(
        !out.status.success(),
        "started: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_and_used_data_directories_are_refused() {
    let mut source = Cluster::start(1, "rocksdb", &[]).await;
    let client = common::client(&source).await;
    for i in 0..50 {
        client.set(&format!("k/{i}"), "v").await.expect("set");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("good.snapshot");
    let endpoint = source.members[0].client_addr.clone();
    let saved = tokio::task::spawn_blocking({
        let file = file.clone();
        move || save(&endpoint, &file)
    })
    .await
    .expect("save");
    assert_eq!(saved["keys"].as_u64(), Some(50));
    let good = std::fs::read(&file).expect("read");

    let truncated = dir.path().join("truncated.snapshot");
    std::fs::write(&truncated, &good[..good.len() * 2 / 3]).expect("write");
    let log = refused(&truncated, &dir.path().join("d1")).await;
    assert!(log.contains("truncated"), "{log}");

    let corrupt = dir.path().join("corrupt.snapshot");
    let mut bytes = good.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&corrupt, &bytes).expect("write");
    let log = refused(&corrupt, &dir.path().join("d2")).await;
    assert!(log.contains("corrupt") && log.contains("sha-256"), "{log}");

    let other = dir.path().join("not-a-snapshot");
    std::fs::write(&other, b"{\"hello\": 1}").expect("write");
    let log = refused(&other, &dir.path().join("d3")).await;
    assert!(log.contains("not a Kahuna snapshot file"), "{log}");

    // A data directory with a member's state is never restored over.
    source.kill(1);
    let log = refused(&file, &source.members[0].data_dir).await;
    assert!(log.contains("already holds a member's state"), "{log}");
}
