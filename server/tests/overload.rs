//! Overload with real server processes: requests that cannot be served (the quorum is
//! gone) fail within the member's request timeout instead of piling up, the member's
//! memory stays bounded, and the cluster serves normally once the quorum returns.

use std::time::{Duration, Instant};

use kahuna_proto::v1::kv_client::KvClient;
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
