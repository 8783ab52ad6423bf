//! Overload with real server processes: requests that cannot be served (the quorum is
//! gone) fail within the member's request timeout instead of piling up, the member's
//! memory stays bounded, and the cluster serves normally once the quorum returns.

use std::time::{Duration, Instant};

use kahuna_proto::v1::kv_client::KvClient;
use kahuna_proto::v1::{
    txn_op, Durability, NextRequest, RequestId, StatusRequest, TryLockRequest, TxnGet, TxnOp, TxnRequest, TxnSet,
};
use kahuna_testkit::*;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT_MS: u64 = 2_000;
const FLOOD: usize = 2_000;
/// Connections the flood is spread over (each allows 1,024 concurrent streams).
const CONNECTIONS: usize = 4;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// 2,000 concurrent requests without a client deadline (half writes, half
/// linearizable reads) against a leader whose followers are paused: every one fails
/// with a typed error within the request timeout (plus scheduling slack), the leader's
/// RSS grows by a bounded amount, and after the followers resume the cluster serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_without_quorum_fails_within_the_request_timeout_and_the_cluster_recovers() {
    let timeout = REQUEST_TIMEOUT_MS.to_string();
    let mut c = Cluster::start(3, "rocksdb", &["--request-timeout-ms", &timeout]).await;
    let leader = c.wait_leader(WAIT).await;
    put(&c, leader, "before", "v").await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let rss_before = c.rss_bytes(leader).expect("leader's RSS");

    for f in &followers {
        c.signal(*f, "-STOP");
    }
    let clients: Vec<KvClient<_>> = (0..CONNECTIONS).map(|_| KvClient::new(c.channel(leader))).collect();
    let value = "x".repeat(1024);
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let mut kv = clients[i % CONNECTIONS].clone();
        let req = set_req(&format!("flood/{i}"), &value);
        calls.spawn(async move {
            let t = Instant::now();
            let result = if i % 2 == 0 {
                kv.set(req).await.map(|_| ())
            } else {
                kv.get(get_req("before")).await.map(|_| ())
            };
            (i, t.elapsed(), result)
        });
    }
    let mut peak_rss = 0u64;
    let mut failed = Vec::with_capacity(FLOOD);
    let sampler = async {
        loop {
            if let Some(rss) = c.rss_bytes(leader) {
                peak_rss = peak_rss.max(rss);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let collect = async {
        while let Some(done) = calls.join_next().await {
            failed.push(done.expect("flood task"));
        }
    };
    tokio::select! {
        () = collect => {}
        () = sampler => unreachable!(),
        () = tokio::time::sleep(Duration::from_secs(60)) => panic!("the flood did not finish within 60 s"),
    }
    let all_done = started.elapsed();

    let mut slowest = Duration::ZERO;
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for (i, took, result) in &failed {
        let status = match result {
            Ok(()) => panic!("request {i} succeeded without a quorum"),
            Err(s) => s,
        };
        assert!(
            matches!(status.code(), Code::Unavailable | Code::ResourceExhausted),
            "request {i}: {status:?}"
        );
        let kind = status
            .metadata()
            .get("kahuna-error")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("request {i} failed without a kahuna-error kind: {status:?}"))
            .to_owned();
        *kinds.entry(kind).or_default() += 1;
        slowest = slowest.max(*took);
    }
    // Slack for a debug build on two cores: 2,000 requests are decoded and answered.
    let bound = Duration::from_millis(REQUEST_TIMEOUT_MS) + Duration::from_secs(5);
    assert!(slowest < bound, "slowest failure took {slowest:?}; bound {bound:?}");
    let growth = peak_rss.saturating_sub(rss_before);
    println!(
        "FLOOD {FLOOD} requests without quorum: all failed in {all_done:?}, slowest {slowest:?} \
         (request timeout {REQUEST_TIMEOUT_MS} ms), kinds {kinds:?}; leader RSS {:.1} MiB before, \
         peak {:.1} MiB (+{:.1} MiB)",
        mib(rss_before),
        mib(peak_rss),
        mib(growth)
    );
    assert!(growth < 256 << 20, "the leader's RSS grew by {:.1} MiB", mib(growth));

    for f in &followers {
        c.signal(*f, "-CONT");
    }
    let recovered = Instant::now();
    retry(WAIT, || async {
        let mut kv = c.kv(leader).await;
        kv.set(set_req("after", "v")).await
    })
    .await;
    assert_eq!(get(&c, leader, "after").await, Some(b"v".to_vec()));
    assert_eq!(get(&c, leader, "before").await, Some(b"v".to_vec()));
    println!(
        "FLOOD recovery: serving writes again {:?} after the followers resumed",
        recovered.elapsed()
    );
}

fn request_id(client: &str, id: u64) -> Option<RequestId> {
    Some(RequestId {
        client_id: client.as_bytes().to_vec(),
        request_id: id,
    })
}

/// Issue 18's dedupe attack, scaled down: transactions of 127 gets of a 256 KiB key,
/// each from its own client id. The dedupe table keeps none of those answers (before,
/// every member kept all of them: 32 MiB each), so the leader's RSS stays put; a
/// retry is told the transaction was applied (ALREADY_APPLIED) and is not applied
/// again; a retried set still gets its whole answer back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_not_kept_for_retries_and_a_retry_is_told_it_was_applied() {
    let c = Cluster::start(1, "memory", &[]).await;
    let leader = c.wait_leader(WAIT).await;
    let mut kv = KvClient::new(c.channel(leader)).max_decoding_message_size(usize::MAX);
    let value = vec![b'v'; 256 * 1024];
    let mut set = set_req("big", "");
    set.value = value.clone();
    set.request_id = request_id("setter", 1);
    let first = kv.set(set.clone()).await.expect("set").into_inner();
    let again = kv.set(set).await.expect("retried set").into_inner();
    assert_eq!(first.kv.as_ref().map(|k| &k.value), Some(&value));
    assert_eq!(
        again.kv, first.kv,
        "a retried set gets its first answer, value included"
    );

    let txn = |client: &str| TxnRequest {
        then: (0..127)
            .map(|_| TxnOp {
                op: Some(txn_op::Op::Get(TxnGet { key: b"big".to_vec() })),
            })
            .chain(std::iter::once(TxnOp {
                op: Some(txn_op::Op::Set(TxnSet {
                    key: format!("count/{client}").into_bytes(),
                    value: b"1".to_vec(),
                    ..TxnSet::default()
                })),
            }))
            .collect(),
        request_id: request_id(client, 1),
        ..TxnRequest::default()
    };
    // Warm up allocator pools with one transaction, then measure twenty.
    kv.txn(txn("warm")).await.expect("txn");
    let rss_before = c.rss_bytes(leader).expect("RSS");
    for i in 0..20 {
        let r = kv.txn(txn(&format!("c{i}"))).await.expect("txn").into_inner();
        assert_eq!(r.results.len(), 128);
        assert_eq!(r.results[0].kv.as_ref().map(|k| k.value.len()), Some(value.len()));
    }
    let rss_after = c.rss_bytes(leader).expect("RSS");
    let growth = rss_after.saturating_sub(rss_before);
    println!(
        "DEDUPE 20 transactions of 127 gets of a 256 KiB key (32 MiB answers): leader RSS {:.1} MiB before, \
         {:.1} MiB after (+{:.1} MiB; keeping the answers would add 635 MiB)",
        mib(rss_before),
        mib(rss_after),
        mib(growth)
    );
    assert!(growth < 128 << 20, "RSS grew by {:.1} MiB", mib(growth));

    let retry = kv.txn(txn("c3")).await.expect_err("a retry of a large answer");
    assert_eq!(retry.code(), Code::AlreadyExists, "{retry:?}");
    assert_eq!(
        retry.metadata().get("kahuna-error").and_then(|v| v.to_str().ok()),
        Some("ALREADY_APPLIED")
    );
    assert!(retry.message().contains("applied"), "{}", retry.message());
    // Applied once: the transaction's own set is at version 1, not 2.
    let count = kv.get(get_req("count/c3")).await.expect("get").into_inner();
    assert_eq!(count.kv.map(|k| k.version), Some(1));
}

fn kind(s: &tonic::Status) -> &str {
    s.metadata()
        .get("kahuna-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn assert_full(r: Result<impl std::fmt::Debug, tonic::Status>, flag: &str) {
    let s = r.expect_err("past the cap");
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert_eq!(kind(&s), "RESOURCE_EXHAUSTED");
    assert!(s.message().contains(flag), "{}", s.message());
}

/// Keys, locks, sequences and ephemeral entries are capped: what would add one past
/// its cap is refused with RESOURCE_EXHAUSTED naming the flag, changing what exists is
/// not, removing makes room again, and `cluster status` reports the counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_capped_and_reported() {
    let c = Cluster::start(
        1,
        "memory",
        &[
            "--max-keys",
            "3",
            "--max-locks",
            "2",
            "--max-sequences",
            "2",
            "--max-ephemeral-entries",
            "2",
        ],
    )
    .await;
    let leader = c.wait_leader(WAIT).await;
    let mut kv = c.kv(leader).await;
    for k in ["a", "b", "c"] {
        kv.set(set_req(k, "1")).await.expect("under the cap");
    }
    assert_full(kv.set(set_req("d", "1")).await, "--max-keys");
    kv.set(set_req("a", "2")).await.expect("overwriting an existing key");
    let creates = TxnRequest {
        then: vec![TxnOp {
            op: Some(txn_op::Op::Set(TxnSet {
                key: b"d".to_vec(),
                value: b"1".to_vec(),
                ..TxnSet::default()
            })),
        }],
        ..TxnRequest::default()
    };
    assert_full(kv.txn(creates.clone()).await, "--max-keys");
    kv.delete(kahuna_proto::v1::DeleteRequest {
        key: b"c".to_vec(),
        ..Default::default()
    })
    .await
    .expect("delete");
    kv.txn(creates).await.expect("room again after a delete");

    let mut locks = c.locks(leader).await;
    let lock = |resource: &str, durability: Durability| TryLockRequest {
        resource: resource.as_bytes().to_vec(),
        owner: b"me".to_vec(),
        ttl_ms: 10_000,
        durability: durability as i32,
        ..Default::default()
    };
    for r in ["l1", "l2"] {
        assert!(
            locks
                .try_lock(lock(r, Durability::Persistent))
                .await
                .expect("lock")
                .into_inner()
                .acquired
        );
    }
    assert_full(locks.try_lock(lock("l3", Durability::Persistent)).await, "--max-locks");
    locks
        .try_lock(lock("l1", Durability::Persistent))
        .await
        .expect("relocking a held lock");

    let mut seqs = c.sequences(leader).await;
    let next = |name: &str| NextRequest {
        name: name.as_bytes().to_vec(),
        count: 1,
        ..Default::default()
    };
    seqs.next(next("s1")).await.expect("s1");
    seqs.next(next("s2")).await.expect("s2");
    assert_full(seqs.next(next("s3")).await, "--max-sequences");
    seqs.next(next("s1")).await.expect("an existing sequence");

    // Ephemeral locks wait out the new leader's grace period before the first grant.
    retry(WAIT, || async {
        let mut locks = c.locks(leader).await;
        match locks.try_lock(lock("e1", Durability::Ephemeral)).await {
            Ok(r) if r.get_ref().acquired => Ok(()),
            Ok(_) => Err(tonic::Status::unavailable("not granted yet")),
            Err(e) => Err(e),
        }
    })
    .await;
    let mut eset = set_req("e/key", "1");
    eset.durability = Durability::Ephemeral as i32;
    eset.ttl_ms = 10_000;
    kv.set(eset.clone()).await.expect("an ephemeral key");
    eset.key = b"e/other".to_vec();
    assert_full(kv.set(eset).await, "--max-ephemeral-entries");
    assert_full(
        locks.try_lock(lock("e2", Durability::Ephemeral)).await,
        "--max-ephemeral-entries",
    );

    let usage = c
        .admin(leader)
        .await
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .usage
        .expect("usage");
    assert_eq!((usage.keys, usage.max_keys), (3, 3));
    assert_eq!((usage.locks, usage.max_locks), (2, 2));
    assert_eq!((usage.sequences, usage.max_sequences), (2, 2));
    assert_eq!((usage.ephemeral_entries, usage.max_ephemeral_entries), (2, 2));
    assert!(usage.history_bytes > 0 && usage.max_history_bytes > usage.history_bytes);
}

/// The client port holds at most --max-connections open: one more is closed as it is
/// accepted (the caller sees the connection fail), and a closed connection frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_a_closed_one_frees_its_slot() {
    let c = Cluster::start(1, "memory", &["--max-connections", "3"]).await;
    let leader = c.wait_leader(WAIT).await;
    // The harness's own status probes may still hold slots for a moment after they
    // close: each connection within the cap is tried until it is served.
    let mut open = Vec::new();
    for i in 0..3 {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut kv = KvClient::new(c.channel(leader));
            match kv.set(set_req(&format!("conn/{i}"), "v")).await {
                Ok(_) => {
                    open.push(kv);
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "connection {i} within the cap: {e:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut extra = KvClient::new(c.channel(leader));
    let refused = extra.get(get_req("conn/0")).await.expect_err("a fourth connection");
    // The connection is closed under the request: a transport error, which the core
    // client retries like any lost connection.
    assert!(
        matches!(refused.code(), Code::Unavailable | Code::Unknown | Code::Cancelled),
        "{refused:?}"
    );
    assert!(refused.metadata().get("kahuna-error").is_none(), "{refused:?}");
    // Still served: the connections inside the cap.
    open[0]
        .get(get_req("conn/0"))
        .await
        .expect("an open connection keeps working");
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    while let Err(e) = KvClient::new(c.channel(leader)).get(get_req("conn/1")).await {
        assert!(
            Instant::now() < deadline,
            "no slot freed after a connection closed: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("CONNECTIONS refused past 3, served again after one closed");
}
