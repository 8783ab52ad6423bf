//! Authentication and roles with real processes: a 3-node cluster started with
//! `--auth-tokens` refuses a missing or unknown token (UNAUTHENTICATED), a readonly
//! token that writes and a prefix-restricted token outside its prefix
//! (PERMISSION_DENIED), lets each role do what it may through any member (a
//! follower forwards the caller's token, not its own), and reloads the grants on
//! SIGHUP.

use std::time::Duration;

use kahuna_client::{Client, ClientOptions, Error, LockOptions};
use kahuna_testkit::{Access, Cluster};

mod common;

fn sha256_hex(token: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(token.as_bytes())?;
            child.wait_with_output()
        })
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("hash")
        .to_owned()
}

async fn client(c: &Cluster, token: Option<&str>) -> Client {
    common::init_logging();
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        token: token.map(str::to_owned),
        ..ClientOptions::default()
    };
    Client::connect_lazy(common::endpoints(c), options).expect("client")
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_roles_are_enforced_on_every_member() {
    let dir = tempfile::tempdir().expect("dir");
    let grants = dir.path().join("tokens");
    std::fs::write(
        &grants,
        format!(
            "# CREDENTIAL ROLE [PREFIX]\nsha256:{} admin\nsha256:{} readwrite billing/\nsha256:{} readonly\n",
            sha256_hex("root-token"),
            sha256_hex("billing-token"),
            sha256_hex("reader-token")
        ),
    )
    .expect("write grants");
    let grants_arg = grants.display().to_string();
    let access = Access {
        tls: None,
        token: Some("root-token".into()),
    };
    let mut c = Cluster::start_with(3, "rocksdb", &["--auth-tokens", &grants_arg], access).await;

    let admin = client(&c, Some("root-token")).await;
    admin.set("billing/a", "1").await.expect("admin writes");
    admin.status().await.expect("admin reads the status");
    admin.trigger_snapshot().await.expect("admin takes a snapshot");

    let billing = client(&c, Some("billing-token")).await;
    billing
        .set("billing/b", "2")
        .await
        .expect("readwrite inside its prefix");
    let lock = billing
        .lock("billing/lock", LockOptions::default())
        .await
        .expect("lock inside its prefix");
    assert!(lock.is_acquired());
    assert!(matches!(
        billing.set("orders/x", "1").await,
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(billing.get("orders/x").await, Err(Error::PermissionDenied(_))));
    assert!(matches!(
        billing.trigger_snapshot().await,
        Err(Error::PermissionDenied(_))
    ));

    let reader = client(&c, Some("reader-token")).await;
    assert_eq!(
        reader
            .get("billing/a")
            .await
            .expect("readonly reads")
            .map(|kv| kv.value),
        Some(b"1".to_vec())
    );
    match reader.set("billing/a", "evil").await {
        Err(Error::PermissionDenied(m)) => assert!(m.contains("readonly"), "{m}"),
        other => panic!("a readonly write: {other:?}"),
    }
    assert!(matches!(
        reader.next("ids", 1, None).await,
        Err(Error::PermissionDenied(_))
    ));

    assert!(matches!(
        client(&c, None).await.get("billing/a").await,
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(
        client(&c, Some("guess")).await.get("billing/a").await,
        Err(Error::Unauthenticated(_))
    ));

    // Through each member alone: followers forward the caller's token.
    for m in &c.members {
        let options = |token: &str| ClientOptions {
            timeout: Duration::from_secs(5),
            token: Some(token.to_owned()),
            discover_members: false,
            ..ClientOptions::default()
        };
        let ok = Client::connect_lazy([m.client_addr.clone()], options("billing-token")).expect("client");
        ok.set(&format!("billing/via/{}", m.id), "x")
            .await
            .expect("forwarded with the caller's token");
        let ro = Client::connect_lazy([m.client_addr.clone()], options("reader-token")).expect("client");
        assert!(matches!(
            ro.set("billing/z", "x").await,
            Err(Error::PermissionDenied(_))
        ));
    }

    // SIGHUP reloads the grants: the reader becomes readwrite everywhere.
    std::fs::write(
        &grants,
        format!(
            "sha256:{} admin\nsha256:{} readwrite\n",
            sha256_hex("root-token"),
            sha256_hex("reader-token")
        ),
    )
    .expect("rewrite grants");
    for id in 1..=3 {
        c.signal(id, "-HUP");
    }
    common::eventually(Duration::from_secs(30), "not every member reloaded the grants", || {
        (1..=3).all(|id| c.log(id).contains("auth grants reloaded"))
    })
    .await;
    reader
        .set("anything", "ok")
        .await
        .expect("write after the grant changed");
    assert!(matches!(billing.get("billing/a").await, Err(Error::Unauthenticated(_))));
    drop(lock);
}
