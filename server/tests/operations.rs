//! The operations surface against real server processes: the Prometheus endpoint
//! parsed by a Prometheus text-format parser, `/livez` and `/readyz`, and the
//! standard gRPC health service, on a member that knows a leader and on one that
//! does not (yet).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kahuna_proto::v1::{AddLearnerRequest, SetRequest};
use kahuna_testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const WAIT: Duration = Duration::from_secs(30);

/// `GET path` on `addr`: the status code and the body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the metrics port");
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
    (status, body.to_owned())
}

/// One sample of a scrape: name, labels, value.
type Sample = (String, HashMap<String, String>, f64);

/// The samples of a scrape (the format itself is checked with Prometheus's own
/// parser by the Python suite, python/tests/test_operations.py); and the number of
/// families declared with `# TYPE`.
async fn scrape(addr: &str) -> (Vec<Sample>, usize) {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let families = body.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("NAME VALUE");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("label=\"value\"");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            (name.to_owned(), labels, value.parse().expect("a number"))
        })
        .collect();
    (samples, families)
}

/// The value of `name` whose labels include `labels` (for a histogram, pass its
/// `_count`).
fn value(s: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
}

async fn health(client_addr: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{client_addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .expect("health check");
    ServingStatus::try_from(answer.into_inner().status).expect("a known status")
}

async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < WAIT, "{what} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut c = Cluster::start(1, "rocksdb", &["--metrics-listen", &metrics]).await;
    let mut kv = c.kv(1).await;
    for i in 0..20 {
        kv.set(SetRequest {
            key: format!("ops/{i}").into_bytes(),
            value: b"v".to_vec(),
            ..SetRequest::default()
        })
        .await
        .expect("set");
    }
    let bad = kv
        .set(SetRequest::default())
        .await
        .expect_err("an empty key is refused");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let (s, families) = scrape(&metrics).await;
    let sets = value(
        &s,
        "kahuna_grpc_request_duration_seconds_count",
        &[("rpc", "kahuna.v1.Kv.Set"), ("code", "OK")],
    );
    assert!(sets.is_some_and(|n| n >= 20.0), "20 sets counted: {sets:?}");
    let refused = value(
        &s,
        "kahuna_grpc_request_duration_seconds_count",
        &[("rpc", "kahuna.v1.Kv.Set"), ("code", "INVALID_ARGUMENT")],
    );
    assert_eq!(refused, Some(1.0));
    let one = |name: &str| value(&s, name, &[]).unwrap_or_else(|| panic!("{name} missing"));
    assert_eq!(one("kahuna_raft_is_leader"), 1.0);
    assert!(one("kahuna_raft_term") >= 1.0);
    assert!(one("kahuna_keys") >= 20.0);
    assert!(one("kahuna_raft_applied_index") >= 20.0);
    assert!(one("kahuna_log_append_duration_seconds_count") >= 1.0, "fsyncs counted");
    assert!(one("kahuna_proposal_commands_count") >= 1.0);
    assert!(one("kahuna_leader_changes_total") >= 1.0);
    assert!(one("kahuna_process_resident_memory_bytes") > 1e6);
    assert!(families >= 25, "{families} families");

    assert_eq!(get(&metrics, "/livez").await.0, 200);
    assert_eq!(get(&metrics, "/readyz").await.0, 200);
    assert_eq!(get(&metrics, "/nothing").await.0, 404);
    assert_eq!(health(&c.members[0].client_addr).await, ServingStatus::Serving);

    // A member started with --join knows no leader until it is added: not ready.
    let joining_metrics = format!("127.0.0.1:{}", free_port());
    let new = c.spawn_joining_with(&["--metrics-listen", &joining_metrics]);
    let new_client = c.members[(new - 1) as usize].client_addr.clone();
    eventually("the joining member's metrics port answers", || {
        let addr = joining_metrics.clone();
        async move { tokio::net::TcpStream::connect(&addr).await.is_ok() }
    })
    .await;
    assert_eq!(get(&joining_metrics, "/livez").await.0, 200);
    assert_eq!(get(&joining_metrics, "/readyz").await.0, 503);
    assert_eq!(health(&new_client).await, ServingStatus::NotServing);
    let peer_addr = c.members[(new - 1) as usize].peer_addr.clone();
    let admin = c.admin(1).await;
    retry(WAIT, || {
        let mut a = admin.clone();
        let peer_addr = peer_addr.clone();
        async move {
            a.add_learner(AddLearnerRequest {
                node_id: new,
                peer_addr,
                blocking: true,
            })
            .await
        }
    })
    .await;
    eventually("the added member is ready", || {
        let addr = joining_metrics.clone();
        async move { get(&addr, "/readyz").await.0 == 200 }
    })
    .await;
    eventually("the added member serves", || {
        let addr = new_client.clone();
        async move { health(&addr).await == ServingStatus::Serving }
    })
    .await;
    c.kill(new);
}
