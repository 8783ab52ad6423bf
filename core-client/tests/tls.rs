//! TLS end to end with real processes and certificates made in the test: a 3-node
//! cluster with TLS (client certificates required) on the client port and mutual TLS
//! on the peer port, reached through `https://` endpoints; every wrong credential is
//! refused; a member holding another CA's peer certificate cannot join; certificates
//! rotated by SIGHUP keep existing clients connected.

use std::path::Path;
use std::time::Duration;

use kahuna_client::{Client, ClientOptions, ClientTls, Error, LockOptions, ServerTrust};
use kahuna_testkit::pki::{Ca, Issued};
use kahuna_testkit::{Access, Cluster};

mod common;

const WAIT: Duration = Duration::from_secs(30);

struct Pki {
    client_ca: Ca,
    server: Issued,
    client: Issued,
    peer_ca: Ca,
    peer: Issued,
}

impl Pki {
    /// Trust in the cluster's client-port certificates.
    fn ca(&self) -> ServerTrust {
        ServerTrust::Ca(self.client_ca.cert_pem().into_bytes())
    }

    /// The right CA and the right client certificate.
    fn client_tls(&self) -> ClientTls {
        tls(self.ca(), Some(&self.client))
    }
}

fn pki(dir: &Path) -> Pki {
    let client_ca = Ca::new(dir, "client-ca");
    let peer_ca = Ca::new(dir, "peer-ca");
    Pki {
        server: client_ca.issue("server", &["127.0.0.1", "localhost"]),
        client: client_ca.issue("client", &["billing-worker"]),
        peer: peer_ca.issue("peer", &["127.0.0.1"]),
        client_ca,
        peer_ca,
    }
}

fn server_args(p: &Pki) -> Vec<String> {
    let path = |x: &Path| x.display().to_string();
    vec![
        "--tls-cert".into(),
        path(&p.server.cert),
        "--tls-key".into(),
        path(&p.server.key),
        "--tls-client-ca".into(),
        path(&p.client_ca.cert_path()),
        "--peer-tls-cert".into(),
        path(&p.peer.cert),
        "--peer-tls-key".into(),
        path(&p.peer.key),
        "--peer-tls-ca".into(),
        path(&p.peer_ca.cert_path()),
    ]
}

fn tls(trust: ServerTrust, identity: Option<&Issued>) -> ClientTls {
    ClientTls {
        trust,
        identity: identity.map(|i| (i.cert_pem.clone().into_bytes(), i.key_pem.clone().into_bytes())),
    }
}

fn https(c: &Cluster) -> Vec<String> {
    c.members.iter().map(|m| format!("https://{}", m.client_addr)).collect()
}

async fn connect(c: &Cluster, tls: ClientTls) -> Result<Client, Error> {
    common::init_logging();
    let options = ClientOptions {
        timeout: Duration::from_secs(5),
        tls: Some(tls),
        ..ClientOptions::default()
    };
    Client::connect(https(c), options).await
}

async fn start(dir: &Path) -> (Cluster, Pki) {
    let p = pki(dir);
    let c = start_cluster(&p, &[], &p.client).await;
    (c, p)
}

/// A 3-node cluster with `p`'s certificates and `extra` flags; the harness presents
/// `harness_identity` as its client certificate.
async fn start_cluster(p: &Pki, extra: &[String], harness_identity: &Issued) -> Cluster {
    let mut args = server_args(p);
    args.extend_from_slice(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let harness = tls(p.ca(), Some(harness_identity)).config().expect("harness TLS");
    let access = Access {
        tls: Some(harness),
        token: None,
    };
    Cluster::start_with(3, "rocksdb", &args, access).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_cluster_serves_https_clients_and_refuses_wrong_credentials() {
    let dir = tempfile::tempdir().expect("dir");
    let (c, p) = start(dir.path()).await;

    // The right CA and a client certificate: everything works, through any member
    // (followers redirect to the leader rather than forward).
    let client = connect(&c, p.client_tls()).await.expect("connect over TLS");
    client.set("tls/k", "v").await.expect("set over TLS");
    assert_eq!(
        client.get("tls/k").await.expect("get").map(|kv| kv.value),
        Some(b"v".to_vec())
    );
    let lock = client
        .lock(
            "jobs/invoice-2048",
            LockOptions {
                ttl: Duration::from_secs(30),
                ..LockOptions::default()
            },
        )
        .await
        .expect("lock");
    assert!(lock.is_acquired());
    assert!(lock.fencing_token().is_some_and(|t| t > 0));
    for m in &c.members {
        let one = Client::connect(
            [format!("https://{}", m.client_addr)],
            ClientOptions {
                tls: Some(p.client_tls()),
                discover_members: false,
                ..ClientOptions::default()
            },
        )
        .await
        .expect("connect to one member");
        assert_eq!(
            one.get("tls/k").await.expect("get via member").map(|kv| kv.value),
            Some(b"v".to_vec())
        );
    }

    // A pinned server certificate, and (development) no verification at all.
    let pin = kahuna_client::parse_pin(&p.server.fingerprint_hex()).expect("pin");
    let pinned = connect(&c, tls(ServerTrust::Pinned(vec![pin]), Some(&p.client)))
        .await
        .expect("pinned");
    pinned.get("tls/k").await.expect("get with a pin");
    let insecure = connect(&c, tls(ServerTrust::InsecureAnyCertificate, Some(&p.client)))
        .await
        .expect("insecure");
    insecure.get("tls/k").await.expect("get without verification");

    // Refusals: each fails to connect (the handshake never completes).
    let other_ca = Ca::new(&dir.path().join("other"), "other-ca");
    let stranger = other_ca.issue("stranger", &["billing-worker"]);
    let expired = p.client_ca.issue_expired("expired", &["billing-worker"]);
    let cases: Vec<(&str, ClientTls)> = vec![
        (
            "a CA that did not sign the server",
            tls(ServerTrust::Ca(other_ca.cert_pem().into_bytes()), Some(&p.client)),
        ),
        (
            "the wrong pin",
            tls(ServerTrust::Pinned(vec![[7u8; 32]]), Some(&p.client)),
        ),
        ("no client certificate", tls(p.ca(), None)),
        ("a client certificate from another CA", tls(p.ca(), Some(&stranger))),
        ("an expired client certificate", tls(p.ca(), Some(&expired))),
    ];
    for (what, t) in cases {
        match connect(&c, t).await {
            Ok(cl) => {
                // Client certificates are checked after the client's side of the
                // handshake finished: the first request is what fails.
                let r = cl.get("tls/k").await;
                assert!(r.is_err(), "{what}: a request went through");
            }
            Err(e) => assert!(
                matches!(e, Error::Unavailable(_) | Error::Timeout { .. }),
                "{what}: {e:?}"
            ),
        }
    }
    // Plain HTTP/2 to a TLS port gets nowhere either.
    let plain = Client::connect(
        c.members.iter().map(|m| m.client_addr.clone()),
        ClientOptions {
            timeout: Duration::from_secs(3),
            ..ClientOptions::default()
        },
    )
    .await;
    assert!(plain.is_err(), "plain text reached a TLS port");
    drop(lock);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_with_another_peer_ca_cannot_join() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut c, p) = start(dir.path()).await;
    let client = connect(&c, p.client_tls()).await.expect("connect");
    client.set("before", "1").await.expect("set");

    // Member 4 has a client-port certificate the cluster trusts but a peer certificate
    // from another CA: the leader cannot replicate to it, nor can it reach anyone.
    let rogue_ca = Ca::new(&dir.path().join("rogue"), "rogue-ca");
    let rogue = rogue_ca.issue("rogue-peer", &["127.0.0.1"]);
    let id = c.spawn_joining_with(&[
        "--tls-cert",
        &p.server.cert.display().to_string(),
        "--tls-key",
        &p.server.key.display().to_string(),
        "--peer-tls-cert",
        &rogue.cert.display().to_string(),
        "--peer-tls-key",
        &rogue.key.display().to_string(),
        "--peer-tls-ca",
        &rogue_ca.cert_path().display().to_string(),
    ]);
    let peer_addr = c.members[(id - 1) as usize].peer_addr.clone();
    // Adding it as a learner is accepted (non-blocking), but it never catches up.
    let _ = client.add_learner(id, &peer_addr).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leader = c.wait_leader(WAIT).await;
    let status = c.status(leader).await.expect("leader status");
    let applied = c.status(id).await.map(|s| s.applied_index).unwrap_or(0);
    assert_eq!(applied, 0, "the rogue member received the log");
    assert!(status.term < 100, "the cluster was disturbed: term {}", status.term);
    client.set("after", "2").await.expect("the cluster keeps serving");
    assert!(
        c.log(leader).contains("TLS") || c.log(id).contains("TLS"),
        "no TLS refusal logged:\n{}",
        c.log(id)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_rotated_by_sighup_keep_clients_connected() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut c, p) = start(dir.path()).await;
    let old = connect(&c, p.client_tls()).await.expect("connect");
    old.set("rot/1", "a").await.expect("set");

    // New server certificates from a new CA, written over the files in use.
    let next_ca = Ca::new(&dir.path().join("next"), "next-ca");
    let next = next_ca.issue("server-next", &["127.0.0.1", "localhost"]);
    std::fs::copy(&next.cert, &p.server.cert).expect("replace cert");
    std::fs::copy(&next.key, &p.server.key).expect("replace key");
    for id in 1..=3 {
        c.signal(id, "-HUP");
    }
    common::eventually(WAIT, "not every member reloaded", || {
        (1..=3).all(|id| c.log(id).contains("TLS certificates reloaded"))
    })
    .await;

    // The client connected before keeps working on its connections.
    for i in 0..20 {
        old.set(&format!("rot/old/{i}"), "x")
            .await
            .expect("existing connection after rotation");
    }
    // New connections see the new certificate: trusted through the new CA only.
    let fresh = connect(
        &c,
        tls(ServerTrust::Ca(next_ca.cert_pem().into_bytes()), Some(&p.client)),
    )
    .await
    .expect("connect with the new CA");
    assert_eq!(
        fresh.get("rot/1").await.expect("get").map(|kv| kv.value),
        Some(b"a".to_vec())
    );
    let stale = connect(&c, p.client_tls()).await;
    assert!(stale.is_err(), "a new connection still got the old certificate");
    // A broken file on the next SIGHUP keeps the certificates in use.
    std::fs::write(&p.server.key, "not a key").expect("break key");
    c.signal(1, "-HUP");
    common::eventually(WAIT, "the failed reload was not reported", || {
        c.log(1).contains("NOT reloaded")
    })
    .await;
    fresh
        .set("rot/2", "b")
        .await
        .expect("still serving after a failed reload");
}

/// `cert-sha256:` grants: a client certificate the handshake verified is a credential
/// of its own (no token), and another certificate from the same CA is not.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_fingerprint_is_a_credential() {
    let dir = tempfile::tempdir().expect("dir");
    let p = pki(dir.path());
    let other = p.client_ca.issue("other-client", &["reporting"]);
    let grants = dir.path().join("grants");
    std::fs::write(
        &grants,
        format!(
            "cert-sha256:{} readwrite billing/\ncert-sha256:{} readonly\n",
            p.client.fingerprint_hex(),
            p.server.fingerprint_hex()
        ),
    )
    .expect("grants");
    // The harness presents the server's certificate: a readonly grant is enough for
    // the status calls it makes.
    let extra = ["--auth-tokens".to_owned(), grants.display().to_string()];
    let c = start_cluster(&p, &extra, &p.server).await;

    let billing = connect(&c, p.client_tls())
        .await
        .expect("connect with the granted certificate");
    billing
        .set("billing/a", "1")
        .await
        .expect("a write inside the certificate's prefix");
    assert!(
        matches!(billing.set("orders/a", "1").await, Err(Error::PermissionDenied(_))),
        "outside the prefix"
    );

    let reader = connect(&c, tls(p.ca(), Some(&p.server)))
        .await
        .expect("connect as reader");
    assert!(reader.get("billing/a").await.expect("readonly reads").is_some());
    assert!(matches!(
        reader.set("billing/b", "1").await,
        Err(Error::PermissionDenied(_))
    ));

    // Same CA, so the handshake succeeds, but no grant names this certificate.
    let stranger = connect(&c, tls(p.ca(), Some(&other))).await;
    let refused = match stranger {
        Err(e) => e,
        Ok(client) => client
            .get("billing/a")
            .await
            .expect_err("an ungranted certificate reads nothing"),
    };
    assert!(matches!(refused, Error::Unauthenticated(_)), "got {refused:?}");
    drop(c);
}
