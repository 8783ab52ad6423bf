//! A member's life cycle with real processes: a Raft core that stops on a storage
//! fault ends the process with an error; start-up mistakes that would found a second
//! cluster are refused with a message saying what to do; Raft messages from another
//! cluster are refused.

use std::future::ready;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kahuna_proto::v1::peer_client::PeerClient;
use kahuna_proto::v1::{AddLearnerRequest, InfoRequest};
use kahuna_testkit::*;

const WAIT: Duration = Duration::from_secs(30);

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A tmpfs mounted on a directory, unmounted (lazily, so a process still inside
/// cannot block it) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn cluster_id_file(c: &Cluster, id: u64) -> String {
    let dir = &c.members[(id - 1) as usize].data_dir;
    std::fs::read_to_string(dir.join("cluster-id"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Waits for member `id` to exit with an error (`not_refused` is the failure when it
/// keeps running) and returns its log.
async fn refused(c: &mut Cluster, id: u64, not_refused: &str) -> String {
    let exit = c.wait_exit(id, WAIT).await.unwrap_or_else(|| panic!("{not_refused}"));
    assert!(!exit.success(), "exit status: {exit:?}");
    c.log(id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_stops_the_member_with_an_error() {
    if !is_root() {
        eprintln!("SKIPPED a_full_disk_stops_the_member_with_an_error: mounting a tmpfs needs root");
        return;
    }
    let mut c = Cluster::start(1, "rocksdb", &[]).await;
    // Restart the member on an empty 24 MiB tmpfs.
    c.kill(1);
    let dir = c.members[0].data_dir.clone();
    std::fs::remove_dir_all(&dir).expect("remove data dir");
    let _tmpfs = Tmpfs::mount(&dir, "24m");
    c.spawn(1);
    c.wait_leader(WAIT).await;
    put(&c, 1, "before", "x").await;

    // Writes of 256 KiB until the disk is full and one fails.
    let value = "v".repeat(256 * 1024);
    let mut kv = c.kv(1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut failed = None;
    for i in 0.. {
        assert!(Instant::now() < deadline, "24 MiB never filled up");
        let mut req = tonic::Request::new(set_req(&format!("fill/{i}"), &value));
        req.set_timeout(Duration::from_secs(10));
        if let Err(e) = kv.set(req).await {
            failed = Some(e);
            break;
        }
    }
    let exit = c
        .wait_exit(1, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("the member kept running after a failed write ({failed:?})"));
    assert_eq!(exit.code(), Some(1), "exit status: {exit:?}");
    let log = c.log(1);
    assert!(
        log.contains("the Raft core stopped") && log.contains("No space left on device"),
        "no clear message in the log:\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_data_dir_does_not_found_a_second_cluster() {
    let mut c = Cluster::start(3, "rocksdb", &[]).await;
    let leader = c.wait_leader(WAIT).await;
    put(&c, leader, "k", "v").await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let cluster = cluster_id_file(&c, leader);
    assert_eq!(cluster.len(), 32, "the leader stores no cluster id: {cluster:?}");
    eventually("a follower learns the cluster id", WAIT, || {
        ready(cluster_id_file(&c, follower) == cluster)
    })
    .await;

    // The follower loses its data directory and is started as before: refused.
    c.kill(follower);
    std::fs::remove_dir_all(&c.members[(follower - 1) as usize].data_dir).expect("remove data dir");
    c.spawn(follower);
    let log = refused(
        &mut c,
        follower,
        "an empty member founding a cluster beside a live one was not refused",
    )
    .await;
    assert!(
        log.contains(&format!("already form cluster {cluster}")) && log.contains("--join"),
        "the refusal does not say what happened and what to do:\n{log}"
    );

    // Doing what the message says: --join, and the leader catches it up.
    c.spawn_with(follower, &["--join"], true);
    c.wait_applied(follower, "k", "the member started with --join").await;
    assert_eq!(cluster_id_file(&c, follower), cluster);
}

/// Only the leader of the moment sees replication progress, and a leader elected after
/// a member died never replicated to it: the members replicated to are recorded through
/// the log, so a member that lost its data is refused whichever member answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_that_lost_its_data_is_refused_after_the_leader_changed() {
    let mut c = Cluster::start(3, "rocksdb", &[]).await;
    let leader = c.wait_leader(WAIT).await;
    put(&c, leader, "k", "v").await;
    let lost = (1..=3).find(|i| *i != leader).expect("a follower");
    let other = (1..=3).find(|i| *i != leader && *i != lost).expect("another follower");
    let peer = PeerClient::new(channel(&c.members[(other - 1) as usize].peer_addr));
    eventually(
        &format!("member {other} learns that {lost} was replicated to"),
        WAIT,
        || {
            let mut peer = peer.clone();
            async move {
                let info = peer.info(InfoRequest {}).await.expect("peer info").into_inner();
                info.replicated_to.contains(&lost)
            }
        },
    )
    .await;

    // The member dies, then the leader restarts: the next leader (a new term) has never
    // replicated to it.
    c.kill(lost);
    c.kill(leader);
    c.spawn(leader);
    c.wait_leader(WAIT).await;
    std::fs::remove_dir_all(&c.members[(lost - 1) as usize].data_dir).expect("remove data dir");
    c.spawn(lost);
    let log = refused(&mut c, lost, "a member that lost its data was let back in empty").await;
    assert!(
        log.contains("this member lost its data") && log.contains("--join"),
        "the refusal does not say what happened and what to do:\n{log}"
    );
}

/// A founding member started after the others formed the cluster (a container
/// scheduled late) is in their membership and was never replicated to: it starts
/// empty and the leader brings it up to date, without --join.
#[tokio::test(flavor = "multi_thread")]
async fn a_founding_member_started_late_catches_up() {
    let mut c = Cluster::start_except(3, "rocksdb", &[], Access::default(), &[3]).await;
    let leader = c.wait_leader(WAIT).await;
    put(&c, leader, "k", "v").await;
    c.spawn(3);
    c.wait_applied(3, "k", "the late member").await;
    let cluster = cluster_id_file(&c, leader);
    eventually("the late member learns the cluster id", WAIT, || {
        ready(cluster_id_file(&c, 3) == cluster)
    })
    .await;
    assert!(
        c.log(3).contains("whose membership includes this member"),
        "the late member does not say why it waits:\n{}",
        c.log(3)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_added_later_is_not_restarted_as_a_new_cluster() {
    let mut c = Cluster::start(3, "rocksdb", &[]).await;
    put(&c, 1, "k", "v").await;
    let new = c.spawn_joining();
    eventually("the joining member marks its data dir", WAIT, || {
        ready(cluster_id_file(&c, new) == "joining")
    })
    .await;

    // Restarted without --join before any member added it: refused.
    c.kill(new);
    c.spawn_with(new, &[], false);
    let log = refused(
        &mut c,
        new,
        "a --join member restarted without --join founded a cluster of its own",
    )
    .await;
    assert!(
        log.contains("was started with --join") && log.contains(&format!("kahuna cluster add-learner {new}")),
        "the refusal does not say what to do:\n{log}"
    );

    // Started with --join again and added: a voter of the cluster.
    c.spawn_with(new, &["--join"], false);
    c.add_learner(1, new).await;
    c.change_voters(1, &[1, 2, 3, new]).await;
    c.wait_applied(new, "k", "the added member").await;
    assert_eq!(cluster_id_file(&c, new), cluster_id_file(&c, 1));

    // Restarted without --join once it holds the cluster's log: it stays a member of
    // that cluster (no cluster of its own), and writes through it reach the others.
    c.kill(new);
    c.spawn_with(new, &[], false);
    put(&c, new, "after-restart", "y").await;
    c.wait_applied(1, "after-restart", "a founding member").await;
    let status = c.status(new).await.expect("status");
    assert_ne!(status.leader_id, 0);
    assert!(status.members.len() == 4, "members seen: {:?}", status.members);
}

#[tokio::test(flavor = "multi_thread")]
async fn raft_messages_from_another_cluster_are_refused() {
    let c = Cluster::start(3, "rocksdb", &[]).await;
    let other = Cluster::start(1, "rocksdb", &[]).await;
    put(&other, 1, "mine", "kept").await;
    let leader = c.wait_leader(WAIT).await;
    // A member of another cluster is added by mistake (its peer address as member 4).
    let mistake = AddLearnerRequest {
        node_id: 4,
        peer_addr: other.members[0].peer_addr.clone(),
        blocking: false,
    };
    let added = retry_call(WAIT, &c.admin(leader).await, &mistake, |mut a, r| async move {
        a.add_learner(r).await
    })
    .await
    .into_inner()
    .members
    .len();
    let deadline = Instant::now() + WAIT;
    while !other.log(1).contains("Raft message refused") {
        if Instant::now() >= deadline {
            let (a, b) = (c.log(leader), other.log(1));
            panic!(
                "the other cluster's member never logged the refusal (add-learner: {added:?})\nleader:\n{}\nother:\n{}",
                &a[a.len().saturating_sub(3000)..],
                &b[b.len().saturating_sub(3000)..]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually("the leader logs the refusal", WAIT, || {
        ready(c.log(leader).contains("refused this member's Raft message"))
    })
    .await;
    // The other cluster is untouched: still its own leader, its data intact.
    let s = other.status(1).await.expect("status");
    assert_eq!((s.state.as_str(), s.leader_id), ("leader", 1));
    assert_eq!(get(&other, 1, "mine").await, Some(b"kept".to_vec()));
    assert_ne!(cluster_id_file(&c, leader), cluster_id_file(&other, 1));
}
