//! The operations surface against real server processes: the Prometheus endpoint
//! parsed by a Prometheus text-format parser, `/livez` and `/readyz`, and the
//! standard gRPC health service, on a member that knows a leader and on one that
//! does not (yet); JSON logs, request ids across a forward, and log levels changed
//! at run time through `/log-level`.

use std::collections::HashMap;
use std::time::Duration;

use kahuna_proto::v1::SetRequest;
use kahuna_testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const WAIT: Duration = Duration::from_secs(30);

/// `GET path` on `addr`: the status code and the body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, "").await
}

/// `PUT path` with `body` on `addr`: the status code and the body.
async fn put(addr: &str, path: &str, body: &str) -> (u16, String) {
    http(addr, "PUT", path, body).await
}

async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the metrics port");
    let length = if method == "GET" {
        String::new()
    } else {
        format!("content-length: {}\r\n", body.len())
    };
    s.write_all(format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{length}\r\n{body}").as_bytes())
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
    eventually("the joining member's metrics port answers", WAIT, || {
        let addr = joining_metrics.clone();
        async move { tokio::net::TcpStream::connect(&addr).await.is_ok() }
    })
    .await;
    assert_eq!(get(&joining_metrics, "/livez").await.0, 200);
    assert_eq!(get(&joining_metrics, "/readyz").await.0, 503);
    assert_eq!(health(&new_client).await, ServingStatus::NotServing);
    c.add_learner(1, new).await;
    eventually("the added member is ready", WAIT, || {
        let addr = joining_metrics.clone();
        async move { get(&addr, "/readyz").await.0 == 200 }
    })
    .await;
    eventually("the added member serves", WAIT, || {
        let addr = new_client.clone();
        async move { health(&addr).await == ServingStatus::Serving }
    })
    .await;
    c.kill(new);
}

/// The messages member `id` logged inside the request span whose `request_id` is
/// `request_id`; panics on a log line that is not a JSON object with a level and a
/// message.
fn logged_for(c: &Cluster, id: u64, request_id: &str) -> Vec<String> {
    let mut messages = Vec::new();
    for line in c.log(id).lines().filter(|l| !l.is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("member {id} logged a line that is not JSON ({e}): {line}"));
        assert!(event["level"].is_string(), "no level: {line}");
        assert!(event["message"].is_string(), "no message: {line}");
        assert!(event["timestamp"].is_string(), "no timestamp: {line}");
        let spans = event["spans"].as_array().map(Vec::as_slice).unwrap_or_default();
        if spans.iter().any(|s| s["request_id"] == request_id) {
            messages.push(event["message"].as_str().unwrap_or_default().to_owned());
        }
    }
    messages
}

fn response_id(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("x-request-id")
        .expect("the response carries x-request-id")
        .to_str()
        .expect("an ASCII request id")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_request_ids_and_run_time_log_levels() {
    let mut c = Cluster::start(3, "rocksdb", &["--log-format", "json"]).await;
    // Every member gets an operations port of its own: restart them with one.
    let ops: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    for id in 1..=3 {
        c.kill(id);
    }
    for id in 1..=3u64 {
        c.spawn_with(id, &["--metrics-listen", &ops[(id - 1) as usize]], true);
    }
    let leader = c.wait_leader(WAIT).await;
    let follower = if leader == 1 { 2 } else { 1 };
    let ops_of = |id: u64| ops[(id - 1) as usize].clone();
    eventually("the follower knows the leader", WAIT, || {
        let addr = ops_of(follower);
        async move { tokio::net::TcpStream::connect(&addr).await.is_ok() && get(&addr, "/readyz").await.0 == 200 }
    })
    .await;

    // A bad directive is refused and changes nothing.
    let (status, before) = get(&ops_of(follower), "/log-level").await;
    assert_eq!(status, 200);
    assert!(!before.trim().is_empty(), "the filter in force: {before:?}");
    let (status, why) = put(&ops_of(follower), "/log-level", "info,kahuna_server=loud").await;
    assert_eq!(status, 400, "{why}");
    assert!(why.contains("invalid filter directive"), "{why}");
    assert_eq!(get(&ops_of(follower), "/log-level").await, (200, before.clone()));
    assert_eq!(put(&ops_of(follower), "/log-level", "").await.0, 400);
    assert_eq!(get(&ops_of(follower), "/log-level").await, (200, before));

    // Debug for this crate, on every member (leadership may move).
    for id in 1..=3 {
        let (status, now) = put(&ops_of(id), "/log-level", "info,kahuna_server=debug,openraft=warn").await;
        assert_eq!(status, 200, "{now}");
        assert!(now.contains("kahuna_server=debug"), "{now}");
        assert_eq!(get(&ops_of(id), "/log-level").await, (200, now));
    }

    // A client's id: back in the response, and in the logs of the member that
    // received the request (forwarding it) and of the leader (proposing it).
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos();
    let given = format!("ops-test-{}-{nanos}", std::process::id());
    let kv = c.kv(follower).await;
    let answer = retry(WAIT, || {
        let mut kv = kv.clone();
        let mut req = tonic::Request::new(set_req("logs/a", "v"));
        req.metadata_mut()
            .insert("x-request-id", given.parse().expect("a header value"));
        async move { kv.set(req).await }
    })
    .await;
    assert_eq!(response_id(answer.metadata()), given);
    eventually("both members log the request under its id", WAIT, || {
        let (received, forwarded, proposed) = (1..=3).fold((0, 0, 0), |(r, f, p), id| {
            let m = logged_for(&c, id, &given);
            let count = |what: &str| m.iter().filter(|msg| msg.as_str() == what).count();
            (
                r + count("request received"),
                f + count("forwarding to the leader"),
                p + count("proposing"),
            )
        });
        async move { received >= 2 && forwarded >= 1 && proposed >= 1 }
    })
    .await;
    assert!(
        logged_for(&c, follower, &given)
            .iter()
            .any(|m| m == "forwarding to the leader"),
        "the follower forwarded it: {:?}",
        logged_for(&c, follower, &given)
    );

    // Without an id (or with one that is not kept), the member that received the
    // request makes one, and the leader logs it too.
    let mut kv = c.kv(follower).await;
    let answer = kv.set(set_req("logs/b", "v")).await.expect("set");
    let made = response_id(answer.metadata());
    assert!(made.starts_with(&format!("{follower}-")), "{made}");
    assert!(made.len() <= 128, "{made}");
    eventually("the leader logs the generated id", WAIT, || {
        let n = logged_for(&c, leader, &made).len();
        async move { n > 0 }
    })
    .await;
    let too_long = "x".repeat(129);
    let mut req = tonic::Request::new(set_req("logs/c", "v"));
    req.metadata_mut()
        .insert("x-request-id", too_long.parse().expect("a header value"));
    let answer = kv.set(req).await.expect("set");
    let replaced = response_id(answer.metadata());
    assert!(
        replaced != too_long && replaced.starts_with(&format!("{follower}-")),
        "{replaced}"
    );
    assert_ne!(replaced, made);

    // An error carries the id too.
    let mut req = tonic::Request::new(SetRequest::default());
    req.metadata_mut()
        .insert("x-request-id", "ops-test-error".parse().expect("a header value"));
    let refused = kv.set(req).await.expect_err("an empty key is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(response_id(refused.metadata()), "ops-test-error");

    // Every line every member logged is JSON with a level and a message.
    for id in 1..=3 {
        logged_for(&c, id, "");
    }
}
