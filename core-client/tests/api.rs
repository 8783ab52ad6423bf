//! The client API against a real 3-member cluster: key/value, compare-and-set, scan
//! paging, history, transactions, sequences, routing through a follower.

mod common;

use std::time::Duration;

use kahuna_client::{
    Client, ClientOptions, Compare, CompareOp, DeleteCondition, DeleteOptions, Durability, Error, GetOptions,
    ScanOptions, SetCondition, SetOptions, TxnOp,
};
use kahuna_testkit::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_transactions_and_sequences() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    // Given only a follower, the client discovers the others and the leader.
    let (leader, follower) = common::leader_and_follower(&cluster).await;
    let options = ClientOptions {
        timeout: Duration::from_secs(20),
        ..ClientOptions::default()
    };
    // (A member may not have learned every address yet on a loaded machine: ask again.)
    let mut tries = 0;
    let client = loop {
        tries += 1;
        let c = Client::connect(
            [cluster.members[(follower - 1) as usize].client_addr.clone()],
            options.clone(),
        )
        .await
        .expect("connect");
        if c.endpoints().len() == 3 || tries == 10 {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(client.endpoints().len(), 3, "{:?}", client.endpoints());
    assert_eq!(
        client.leader().as_deref(),
        Some(cluster.members[(leader - 1) as usize].client_addr.as_str())
    );

    // get / set / exists
    assert_eq!(client.get("a").await.expect("get"), None);
    let kv = client.set("a", "1").await.expect("set");
    assert_eq!((kv.version, kv.value_str().as_ref()), (1, "1"));
    assert_eq!(client.exists("a").await.expect("exists"), Some(kv.mod_revision));
    assert_eq!(client.exists("nope").await.expect("exists"), None);

    // compare-and-set by value and by revision; failures are answers with the current key
    let r = client.compare_and_set("a", "wrong", "2").await.expect("cas");
    assert!(!r.succeeded);
    assert_eq!(r.kv.as_ref().map(|kv| kv.value.clone()), Some(b"1".to_vec()));
    let r = client.compare_and_set("a", "1", "2").await.expect("cas");
    assert!(r.succeeded);
    let rev = r.kv.as_ref().map(|kv| kv.mod_revision).unwrap_or(0);
    assert!(
        !client
            .compare_revision_and_set("a", rev - 1, "3")
            .await
            .expect("cas rev")
            .succeeded
    );
    assert!(
        client
            .compare_revision_and_set("a", rev, "3")
            .await
            .expect("cas rev")
            .succeeded
    );
    assert!(
        client
            .compare_revision_and_set("fresh", 0, "x")
            .await
            .expect("create")
            .succeeded
    );
    assert!(
        !client
            .compare_revision_and_set("fresh", 0, "y")
            .await
            .expect("create")
            .succeeded
    );
    let only_new = SetOptions {
        condition: SetCondition::IfNotExists,
        ..SetOptions::default()
    };
    assert!(!client.set_with("a", "x", only_new).await.expect("set").succeeded);

    // reading an older revision, a bad key, a future revision
    let old = client
        .get_with(
            "a",
            GetOptions {
                revision: Some(rev),
                ..GetOptions::default()
            },
        )
        .await
        .expect("get at");
    assert_eq!(old.map(|kv| kv.value), Some(b"2".to_vec()));
    assert!(matches!(client.get("").await, Err(Error::InvalidArgument(_))));
    let future = client
        .get_with(
            "a",
            GetOptions {
                revision: Some(1 << 40),
                ..GetOptions::default()
            },
        )
        .await;
    assert!(matches!(future, Err(Error::FutureRevision(_))), "{future:?}");

    // extend and TTL
    let r = client
        .set_with(
            "ttl",
            "v",
            SetOptions {
                ttl: Some(Duration::from_secs(60)),
                ..SetOptions::default()
            },
        )
        .await
        .expect("set ttl");
    assert!(r.kv.as_ref().and_then(|kv| kv.expires_at_ms).is_some());
    let r = client.extend("ttl", None).await.expect("extend");
    assert!(r.succeeded);
    assert_eq!(r.kv.and_then(|kv| kv.expires_at_ms), None);
    assert!(
        !client
            .extend("missing", Some(Duration::from_secs(1)))
            .await
            .expect("extend")
            .succeeded
    );

    // delete, conditional delete
    let d = client
        .delete_with(
            "a",
            DeleteOptions {
                condition: DeleteCondition::IfValue(b"nope".to_vec()),
                ..DeleteOptions::default()
            },
        )
        .await
        .expect("del");
    assert!(!d.succeeded);
    let d = client.delete("a").await.expect("del");
    assert!(d.succeeded && d.deleted);
    assert!(!client.delete("a").await.expect("del").deleted);

    // history
    let h = client.history("a", 0).await.expect("history");
    let kinds: Vec<_> = h.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["put", "put", "put", "delete"]);

    // scan with paging, and the convenience that pages through everything
    for i in 0..25 {
        client.set(&format!("scan/{i:02}"), i.to_string()).await.expect("set");
    }
    let page = client
        .scan(
            "scan/",
            ScanOptions {
                limit: 10,
                ..ScanOptions::default()
            },
        )
        .await
        .expect("scan");
    assert_eq!(page.kvs.len(), 10);
    assert!(page.next_page_token.is_some());
    let all = client
        .scan_all(
            "scan/",
            ScanOptions {
                limit: 7,
                keys_only: true,
                ..ScanOptions::default()
            },
        )
        .await
        .expect("scan all");
    assert_eq!(all.len(), 25);
    assert!(all.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(all[24].key, "scan/24");

    // ephemeral keys are a separate namespace
    client
        .set_with(
            "a",
            "e",
            SetOptions {
                durability: Durability::Ephemeral,
                ttl: Some(Duration::from_secs(10)),
                ..SetOptions::default()
            },
        )
        .await
        .expect("ephemeral set");
    assert_eq!(client.get("a").await.expect("get"), None);
    let e = client
        .get_with(
            "a",
            GetOptions {
                durability: Durability::Ephemeral,
                ..GetOptions::default()
            },
        )
        .await
        .expect("ephemeral get");
    assert_eq!(e.map(|kv| kv.value), Some(b"e".to_vec()));

    // transactions: both branches
    client.set("acct/alice", "100").await.expect("set");
    client.set("acct/bob", "0").await.expect("set");
    let t = client
        .txn()
        .when(Compare::value("acct/alice", CompareOp::Equal, "100"))
        .when(Compare::exists("acct/bob"))
        .then(TxnOp::set("acct/alice", "50"))
        .then(TxnOp::set("acct/bob", "50"))
        .otherwise(TxnOp::get("acct/alice"))
        .commit()
        .await
        .expect("txn");
    assert!(t.succeeded);
    assert_eq!(t.results.len(), 2);
    let t = client
        .txn()
        .when(Compare::value("acct/alice", CompareOp::Equal, "100"))
        .then(TxnOp::set("acct/alice", "0"))
        .otherwise(TxnOp::get("acct/alice"))
        .commit()
        .await
        .expect("txn");
    assert!(!t.succeeded);
    assert_eq!(
        t.results[0].kv.as_ref().map(|kv| kv.value.clone()),
        Some(b"50".to_vec())
    );

    // sequences: ranges never overlap; an idempotency key replays its range
    let a = client.next("ids", 10, None).await.expect("next");
    let b = client.next("ids", 5, None).await.expect("next");
    assert_eq!((a.first, a.count, b.first), (1, 10, 11));
    let k1 = client.next("ids", 3, Some("batch-1")).await.expect("next");
    let k2 = client.next("ids", 3, Some("batch-1")).await.expect("next");
    assert_eq!(k1.first, k2.first);
    assert!(k2.replayed && !k1.replayed);
    assert_eq!(client.peek_sequence("ids").await.expect("peek"), k1.first + 3);

    // status
    let s = client.status().await.expect("status");
    assert_eq!(s.leader_id, leader);
    assert_eq!(s.members.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compare_and_set_counts_every_success_once() {
    let cluster = Cluster::start(1, "memory", &[]).await;
    let client = common::client(&cluster).await;
    // Many concurrent increments by compare-and-set: every success is exactly one step.
    client.set("n", "0").await.expect("set");
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 10 {
                let kv = c.get("n").await.expect("get").expect("exists");
                let n: u64 = kv.value_str().parse().expect("number");
                if c.compare_revision_and_set("n", kv.mod_revision, (n + 1).to_string())
                    .await
                    .expect("cas")
                    .succeeded
                {
                    done += 1;
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(
        client.get("n").await.expect("get").map(|kv| kv.value),
        Some(b"40".to_vec())
    );
}
