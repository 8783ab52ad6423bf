//! Batches and ranges against a real 3-member cluster: several keys read at one
//! revision, written and deleted atomically at one revision, range scans in pages,
//! and the bounds of each.

mod common;

use kahuna_client::{Durability, Error, GetOptions, ScanOptions};
use kahuna_proto::v1 as pb;
use kahuna_testkit::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_keys_at_one_revision_and_ranges_in_pages() {
    let cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::client(&cluster).await;

    // Written together: one revision for all.
    let items: Vec<(String, String)> = (0..20).map(|i| (format!("r/{i:02}"), format!("v{i}"))).collect();
    let pairs: Vec<(&str, &[u8])> = items.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    let revision = client.set_many(&pairs).await.expect("set_many");
    let got = client
        .get_many(&["r/03", "missing", "r/17"], GetOptions::default())
        .await
        .expect("get_many");
    assert_eq!(got.kvs.len(), 2, "a missing key is left out");
    assert_eq!(got.kvs[0].key, "r/03", "in the order asked");
    assert_eq!(
        got.get("r/17").map(|kv| kv.value_str().into_owned()),
        Some("v17".into())
    );
    assert!(
        got.kvs.iter().all(|kv| kv.mod_revision == revision),
        "one revision for the batch"
    );
    assert!(got.revision >= revision);

    // [r/05, r/15) in pages of 4: ten keys, in order, none outside.
    let mut options = ScanOptions {
        limit: 4,
        ..ScanOptions::default()
    };
    let mut keys = Vec::new();
    let mut pages = 0;
    loop {
        let page = client
            .scan_range("r/05", "r/15", options.clone())
            .await
            .expect("scan_range");
        pages += 1;
        keys.extend(page.kvs.into_iter().map(|kv| kv.key));
        match page.next_page_token {
            Some(t) => options.page_token = Some(t),
            None => break,
        }
    }
    let expected: Vec<String> = (5..15).map(|i| format!("r/{i:02}")).collect();
    assert_eq!(keys, expected);
    assert!(pages >= 3, "{pages} pages of at most 4");
    // An open end runs to the last key.
    let tail = client
        .scan_range_all("r/18", "", ScanOptions::default())
        .await
        .expect("open range");
    assert_eq!(
        tail.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
        ["r/18", "r/19"]
    );

    // Deleted together: those that existed are counted.
    let deleted = client
        .delete_many(&["r/00", "r/01", "missing"])
        .await
        .expect("delete_many");
    assert_eq!(deleted, 2);
    let left = client
        .get_many(&["r/00", "r/01", "r/02"], GetOptions::default())
        .await
        .expect("get_many");
    assert_eq!(left.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["r/02"]);

    // The ephemeral tier answers get_many too.
    let ephemeral = GetOptions {
        durability: Durability::Ephemeral,
        ..GetOptions::default()
    };
    assert!(client
        .get_many(&["r/02"], ephemeral)
        .await
        .expect("ephemeral")
        .kvs
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_and_range_bounds_are_typed_errors() {
    let cluster = Cluster::start(1, "memory", &[]).await;
    let client = common::client(&cluster).await;
    let mut kv = cluster.kv(1).await;
    let too_many = pb::GetManyRequest {
        keys: (0..1001).map(|i| format!("k{i}").into_bytes()).collect(),
        ..Default::default()
    };
    for (result, says) in [
        (kv.get_many(too_many).await.map(|_| ()), "it must have 1 to 1000"),
        (
            kv.get_many(pb::GetManyRequest::default()).await.map(|_| ()),
            "keys has 0 entries",
        ),
        (
            kv.scan(pb::ScanRequest {
                prefix: b"p".to_vec(),
                range_start: b"a".to_vec(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
            "not both",
        ),
        (
            kv.scan(pb::ScanRequest {
                range_start: b"b".to_vec(),
                range_end: b"a".to_vec(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
            "range_end must come after range_start",
        ),
        (
            kv.scan(pb::ScanRequest {
                range_start: b"a".to_vec(),
                range_end: b"c".to_vec(),
                page_token: b"d".to_vec(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
            "page_token does not belong",
        ),
    ] {
        let s = result.expect_err("refused");
        assert_eq!(s.code(), tonic::Code::InvalidArgument, "{}", s.message());
        assert!(s.message().contains(says), "{}", s.message());
    }
    // An answer past 3 MiB is refused, not truncated: ask for fewer keys.
    let big = vec![b'x'; 1 << 20];
    let keys: Vec<String> = (0..4).map(|i| format!("big/{i}")).collect();
    for k in &keys {
        client.set(k, big.as_slice()).await.expect("set 1 MiB");
    }
    let names: Vec<&str> = keys.iter().map(String::as_str).collect();
    let e = client
        .get_many(&names, GetOptions::default())
        .await
        .expect_err("too large");
    assert!(matches!(e, Error::ResourceExhausted(_)), "{e:?}");
    assert_eq!(
        client
            .get_many(&names[..2], GetOptions::default())
            .await
            .expect("two")
            .kvs
            .len(),
        2
    );
    // A batch past the transaction limit is refused as a whole.
    let pairs: Vec<(String, &str)> = (0..129).map(|i| (format!("t/{i}"), "v")).collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let e = client.set_many(&pairs).await.expect_err("129 writes");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(
        client.get("t/0").await.expect("get").is_none(),
        "nothing of it was applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_atomic_and_whole_through_a_leader_kill() {
    let mut cluster = Cluster::start(3, "memory", &[]).await;
    let client = common::patient_client(&cluster).await;
    let batch = |b: usize| -> Vec<(String, String)> {
        (0..100)
            .map(|i| (format!("f/{b}/{i:03}"), format!("v{b}.{i}")))
            .collect()
    };
    let first = batch(1);
    let pairs: Vec<(&str, &[u8])> = first.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    let r1 = client.set_many(&pairs).await.expect("first batch");
    let leader = cluster.wait_leader(std::time::Duration::from_secs(30)).await;
    cluster.kill(leader);
    // Sent while there is no leader: retried with its request id until one takes it.
    let second = batch(2);
    let pairs: Vec<(&str, &[u8])> = second.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    let r2 = client
        .set_many(&pairs)
        .await
        .expect("second batch through the failover");
    assert!(r2 > r1);
    for (b, revision) in [(1, r1), (2, r2)] {
        let keys: Vec<String> = batch(b).into_iter().map(|(k, _)| k).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let got = client.get_many(&keys, GetOptions::default()).await.expect("get_many");
        assert_eq!(got.kvs.len(), 100, "batch {b} is whole");
        assert!(
            got.kvs.iter().all(|kv| kv.mod_revision == revision && kv.version == 1),
            "batch {b} written once, at one revision"
        );
    }
    let all = client
        .scan_range_all(
            "f/",
            "f0",
            ScanOptions {
                limit: 32,
                ..ScanOptions::default()
            },
        )
        .await
        .expect("range");
    let keys: Vec<String> = all.iter().map(|kv| kv.key.clone()).collect();
    let mut expected: Vec<String> = batch(1).into_iter().chain(batch(2)).map(|(k, _)| k).collect();
    expected.sort();
    assert_eq!(keys, expected, "every key once, in order, across pages");
}
