//! The key/value API through gRPC against a real single-node server: conditional
//! writes, revisions, expiry, scans, history, routing and the input limits.

use std::time::Duration;

use kahuna_proto::v1::kv_client::KvClient;
use kahuna_proto::v1::*;
use kahuna_testkit::*;
use tonic::transport::Channel;
use tonic::Code;

async fn single() -> (Cluster, KvClient<Channel>) {
    let c = Cluster::start(1, "rocksdb", &[]).await;
    let kv = c.kv(1).await;
    (c, kv)
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_writes_answer_with_current_value() {
    let (_c, mut kv) = single().await;
    let first = kv.set(set_req("cas", "1")).await.expect("set").into_inner();
    let first_kv = first.kv.expect("kv");
    assert_eq!((first_kv.version, first_kv.create_revision), (1, first_kv.mod_revision));
    assert_eq!(first.header.expect("header").revision, first_kv.mod_revision);

    let failed = kv
        .set(SetRequest {
            compare_value: Some(b"2".to_vec()),
            ..set_req("cas", "3")
        })
        .await
        .expect("compare failure is an answer")
        .into_inner();
    assert!(!failed.succeeded);
    assert_eq!(failed.kv.expect("current").value, b"1");

    let ok = kv
        .set(SetRequest {
            compare_revision: Some(first_kv.mod_revision),
            ..set_req("cas", "4")
        })
        .await
        .expect("set")
        .into_inner();
    assert!(ok.succeeded);
    let ok_kv = ok.kv.expect("kv");
    assert_eq!(ok_kv.version, 2);
    assert_eq!(ok_kv.create_revision, first_kv.mod_revision);
    assert!(ok_kv.mod_revision > first_kv.mod_revision);

    let stale = kv
        .set(SetRequest {
            compare_revision: Some(first_kv.mod_revision),
            ..set_req("cas", "5")
        })
        .await
        .expect("set")
        .into_inner();
    assert!(!stale.succeeded);

    let not_new = kv
        .set(SetRequest {
            if_not_exists: true,
            ..set_req("cas", "6")
        })
        .await
        .expect("set")
        .into_inner();
    assert!(!not_new.succeeded);
    let missing = kv
        .set(SetRequest {
            if_exists: true,
            ..set_req("nope", "6")
        })
        .await
        .expect("set")
        .into_inner();
    assert!(!missing.succeeded);
    assert!(missing.kv.is_none());

    let del = kv
        .delete(DeleteRequest {
            key: "cas".into(),
            compare_value: Some(b"wrong".to_vec()),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert!(!del.succeeded && !del.deleted);
    let del = kv
        .delete(DeleteRequest {
            key: "cas".into(),
            compare_value: Some(b"4".to_vec()),
            ..Default::default()
        })
        .await
        .expect("delete")
        .into_inner();
    assert!(del.succeeded && del.deleted);
    assert!(kv.get(get_req("cas")).await.expect("get").into_inner().kv.is_none());

    // The old value is still readable at its revision.
    let at = kv
        .get(GetRequest {
            key: "cas".into(),
            revision: ok_kv.mod_revision,
            ..Default::default()
        })
        .await
        .expect("get at revision")
        .into_inner();
    assert_eq!(at.kv.expect("old value").value, b"4");

    let hist = kv
        .history(HistoryRequest {
            key: "cas".into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    let kinds: Vec<i32> = hist.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::Put as i32, EventKind::Put as i32, EventKind::Delete as i32]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_keys_vanish_and_are_swept() {
    let (_c, mut kv) = single().await;
    kv.set(SetRequest {
        ttl_ms: 2000,
        ..set_req("ttl", "v")
    })
    .await
    .expect("set");
    assert!(
        kv.exists(ExistsRequest {
            key: "ttl".into(),
            ..Default::default()
        })
        .await
        .expect("exists")
        .into_inner()
        .exists
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(kv.get(get_req("ttl")).await.expect("get").into_inner().kv.is_none());

    // Extend keeps a key alive; extending a missing key fails as an answer.
    kv.set(SetRequest {
        ttl_ms: 3000,
        ..set_req("ttl2", "v")
    })
    .await
    .expect("set");
    let ext = kv
        .extend(ExtendRequest {
            key: "ttl2".into(),
            ttl_ms: 20_000,
            ..Default::default()
        })
        .await
        .expect("extend")
        .into_inner();
    assert!(ext.succeeded);
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert!(kv.get(get_req("ttl2")).await.expect("get").into_inner().kv.is_some());
    let ext = kv
        .extend(ExtendRequest {
            key: "ttl".into(),
            ttl_ms: 5000,
            ..Default::default()
        })
        .await
        .expect("extend")
        .into_inner();
    assert!(!ext.succeeded);

    // The leader's sweep records the expiry in the key's history.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let h = kv
            .history(HistoryRequest {
                key: "ttl".into(),
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner();
        if h.events.last().map(|e| e.kind) == Some(EventKind::Expire as i32) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "expired key never swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_pages_through_a_prefix() {
    let (_c, mut kv) = single().await;
    for i in 0..25 {
        kv.set(set_req(&format!("scan/{i:02}"), "v")).await.expect("set");
    }
    kv.set(set_req("scanner", "not in prefix")).await.expect("set");
    let mut token = Vec::new();
    let mut seen = Vec::new();
    loop {
        let page = kv
            .scan(ScanRequest {
                prefix: "scan/".into(),
                limit: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("scan")
            .into_inner();
        assert!(page.kvs.len() <= 10);
        seen.extend(page.kvs.into_iter().map(|k| String::from_utf8(k.key).expect("utf8")));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("scan/{i:02}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_invalid_argument_and_harms_nothing() {
    let (_c, mut kv) = single().await;
    kv.set(set_req("keep", "safe")).await.expect("set");

    let cases: Vec<(SetRequest, &str)> = vec![
        (set_req("", "v"), "empty"),
        (set_req(&"k".repeat(4097), "v"), "4096"),
        (
            SetRequest {
                key: vec![0xff, 0xfe],
                ..set_req("x", "v")
            },
            "UTF-8",
        ),
        (
            SetRequest {
                value: vec![0; 1024 * 1024 + 1],
                ..set_req("keep", "v")
            },
            "1048576",
        ),
        (
            SetRequest {
                ttl_ms: 366 * 24 * 3600 * 1000,
                ..set_req("keep", "v")
            },
            "365 days",
        ),
        (
            SetRequest {
                if_exists: true,
                if_not_exists: true,
                ..set_req("keep", "v")
            },
            "both",
        ),
        (
            SetRequest {
                request_id: Some(RequestId {
                    client_id: vec![0xc3, 0x28],
                    request_id: 1,
                }),
                ..set_req("keep", "v")
            },
            "client_id",
        ),
    ];
    for (req, needle) in cases {
        let err = kv.set(req).await.expect_err("must be rejected");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(error_kind(&err), "INVALID_ARGUMENT");
        assert!(
            err.message().contains(needle),
            "message {:?} should mention {needle:?}",
            err.message()
        );
    }

    let err = kv
        .get(GetRequest {
            key: "keep".into(),
            consistency: 7,
            ..Default::default()
        })
        .await
        .expect_err("unknown enum");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("consistency"));

    let err = kv
        .scan(ScanRequest {
            limit: 1001,
            ..Default::default()
        })
        .await
        .expect_err("page too large");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("1000"));

    let err = kv
        .get(GetRequest {
            key: "keep".into(),
            revision: 1_000_000,
            ..Default::default()
        })
        .await
        .expect_err("future revision");
    assert_eq!(err.code(), Code::OutOfRange);

    // A request past the size limit is refused before it is decoded.
    let err = kv
        .set(SetRequest {
            value: vec![0; 3 * 1024 * 1024],
            ..set_req("keep", "v")
        })
        .await
        .expect_err("request too large");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("2097152"), "{}", err.message());

    let got = kv
        .get(get_req("keep"))
        .await
        .expect("get")
        .into_inner()
        .kv
        .expect("kept");
    assert_eq!((got.value.as_slice(), got.version), (b"safe".as_slice(), 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn follower_answers_not_leader_to_a_forwarded_request() {
    let c = Cluster::start(3, "memory", &[]).await;
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    let follower = (1..=3).find(|i| *i != leader).expect("follower");
    // Make sure the follower knows the leader before asking.
    put(&c, leader, "k", "v").await;
    let leader_addr = c.members[(leader - 1) as usize].client_addr.clone();
    let mut kv = c.kv(follower).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut req = tonic::Request::new(set_req("k", "v2"));
        req.metadata_mut()
            .insert("kahuna-forwarded", "1".parse().expect("metadata"));
        let err = kv.set(req).await.expect_err("a follower does not serve writes");
        assert_eq!(err.code(), Code::Unavailable);
        let hint = err
            .metadata()
            .get("kahuna-leader")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The hint is there when the follower could learn the leader's client address
        // (a peer call that a loaded machine can time out): then it is the leader's.
        if error_kind(&err) == "NOT_LEADER" && hint.is_some() {
            assert_eq!(hint, Some(leader_addr));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "follower never named the leader: {err:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Concurrent writes are packed into shared log entries; each must still get its own
/// revision, and a read at that revision must see exactly that write.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_get_distinct_revisions() {
    let (_c, kv) = single().await;
    let writers = (0..64).map(|i| {
        let mut kv = kv.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            for round in 0..10 {
                let value = format!("{i}-{round}");
                let resp = kv.set(set_req("shared", &value)).await.expect("set").into_inner();
                let rev = resp.kv.expect("kv").mod_revision;
                assert_eq!(resp.header.expect("header").revision, rev);
                out.push((rev, value));
            }
            out
        })
    });
    let mut all = Vec::new();
    for w in futures::future::join_all(writers).await {
        all.extend(w.expect("writer"));
    }
    all.sort();
    let revisions: std::collections::BTreeSet<u64> = all.iter().map(|(r, _)| *r).collect();
    assert_eq!(revisions.len(), 640, "every write has its own revision");
    let mut kv = kv.clone();
    for (rev, value) in all.iter().step_by(37) {
        let got = kv
            .get(GetRequest {
                key: "shared".into(),
                revision: *rev,
                ..Default::default()
            })
            .await
            .expect("get at revision")
            .into_inner();
        let got = got.kv.expect("key at its revision");
        assert_eq!((got.mod_revision, got.value.as_slice()), (*rev, value.as_bytes()));
    }
    // The last write (highest revision) is what a read sees now.
    let last = all.last().expect("writes");
    let now = kv
        .get(get_req("shared"))
        .await
        .expect("get")
        .into_inner()
        .kv
        .expect("kv");
    assert_eq!(now.value, last.1.as_bytes());
    let version = now.version;
    assert_eq!(version, 640);
}
