//! Replication and durability with real server processes, for every storage engine:
//! SIGKILL and restart, reads through another member, leader failover, catch-up
//! through a snapshot.

use std::time::Duration;

use kahuna_proto::v1::{MemberRole, StatusResponse, TriggerSnapshotRequest};
use kahuna_testkit::*;

const WAIT: Duration = Duration::from_secs(30);

async fn single_node_keeps_acknowledged_writes_across_sigkill(storage: &str) {
    let mut c = Cluster::start(1, storage, &[]).await;
    for i in 0..100 {
        put(&c, 1, &format!("k/{i}"), &format!("v{i}")).await;
    }
    c.kill(1);
    c.spawn(1);
    c.wait_leader(WAIT).await;
    let durable = storage != "memory";
    for i in 0..100 {
        let got = get(&c, 1, &format!("k/{i}")).await;
        if durable {
            assert_eq!(
                got,
                Some(format!("v{i}").into_bytes()),
                "k/{i} lost after SIGKILL on {storage}"
            );
        } else {
            assert_eq!(got, None, "memory storage cannot survive a restart");
        }
    }
}

async fn write_through_one_member_read_through_another(storage: &str) {
    let c = Cluster::start(3, storage, &[]).await;
    let leader = c.wait_leader(WAIT).await;
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let other = (1..=3)
        .find(|i| *i != leader && *i != follower)
        .expect("another follower");
    // Written through a follower (forwarded to the leader), read through the other.
    put(&c, follower, "shared", "from-follower").await;
    assert_eq!(get(&c, other, "shared").await, Some(b"from-follower".to_vec()));
    put(&c, leader, "shared2", "from-leader").await;
    assert_eq!(get(&c, follower, "shared2").await, Some(b"from-leader".to_vec()));
    // A stale read on a follower sees the write once it has applied it.
    let kv = c.kv(other).await;
    eventually("the follower applies the write", WAIT, || {
        let mut kv = kv.clone();
        async move {
            let got = kv.get(stale_get_req("shared2")).await.expect("stale read").into_inner();
            if got.kv.is_some() {
                assert_eq!(got.header.expect("header").member_id, other);
            }
            got.kv.is_some()
        }
    })
    .await;
}

async fn leader_kill_elects_new_leader_and_keeps_writes(storage: &str) {
    let mut c = Cluster::start(3, storage, &[]).await;
    let leader = c.wait_leader(WAIT).await;
    for i in 0..50 {
        put(&c, leader, &format!("before/{i}"), "x").await;
    }
    c.kill(leader);
    let survivor = c.running()[0];
    let new_leader = c.wait_leader(WAIT).await;
    assert_ne!(new_leader, leader);
    for i in 0..50 {
        assert_eq!(get(&c, survivor, &format!("before/{i}")).await, Some(b"x".to_vec()));
    }
    put(&c, survivor, "after", "y").await;
    // The old leader comes back as a follower and catches up.
    c.spawn(leader);
    c.wait_applied(leader, "after", "the restarted member").await;
    // Durable engines kept the old member's own log; memory got it all from the leader.
    assert_eq!(get(&c, leader, "before/7").await, Some(b"x".to_vec()));
}

async fn lagging_member_catches_up_through_a_snapshot(storage: &str) {
    let mut c = Cluster::start(3, storage, &["--snapshot-threshold", "50"]).await;
    let leader = c.wait_leader(WAIT).await;
    let lagging = (1..=3).find(|i| *i != leader).expect("a follower");
    c.kill(lagging);
    for i in 0..200 {
        put(&c, leader, &format!("snap/{i}"), &format!("{i}")).await;
    }
    let mut admin = c.admin(leader).await;
    admin
        .trigger_snapshot(TriggerSnapshotRequest {})
        .await
        .expect("snapshot");
    // Wait until the leader has a snapshot and has purged the log the lagging member needs.
    c.wait_status(leader, "the leader builds a snapshot", |s| s.snapshot_index >= 150)
        .await;
    c.spawn(lagging);
    c.wait_applied(lagging, "snap/199", "the lagging member").await;
    let status = c.status(lagging).await.expect("status");
    assert!(status.snapshot_index > 0, "lagging member caught up without a snapshot");
    for i in [0, 57, 123, 199] {
        let mut kv = c.kv(lagging).await;
        let got = kv
            .get(stale_get_req(&format!("snap/{i}")))
            .await
            .expect("read")
            .into_inner();
        assert_eq!(got.kv.map(|k| k.value), Some(format!("{i}").into_bytes()));
    }
    // And it survives its own restart from snapshot plus log.
    if storage != "memory" {
        c.kill(lagging);
        c.spawn(lagging);
        c.wait_applied(lagging, "snap/150", "the member restarted from its snapshot")
            .await;
    }
}

async fn a_joined_member_becomes_a_voter(storage: &str) {
    let mut c = Cluster::start(3, storage, &[]).await;
    put(&c, 1, "before-join", "x").await;
    let new = c.spawn_joining();
    let added = c.add_learner(1, new).await;
    let learner = added.members.iter().find(|m| m.id == new).expect("learner listed");
    assert_eq!(learner.role, MemberRole::Learner as i32);
    let changed = c.change_voters(1, &[1, 2, 3, new]).await;
    let voter = changed.members.iter().find(|m| m.id == new).expect("voter listed");
    assert_eq!(voter.role, MemberRole::Voter as i32);
    // Members learn the new member's client address over its peer port.
    let expected = c.members[(new - 1) as usize].client_addr.clone();
    let learned = |s: &StatusResponse| {
        let seen = s.members.iter().find(|m| m.id == new);
        seen.is_some_and(|m| m.client_addr == expected)
    };
    c.wait_status(1, "the members learn the new member's client address", learned)
        .await;
    // The new member serves reads and writes, and has the old data.
    assert_eq!(get(&c, new, "before-join").await, Some(b"x".to_vec()));
    put(&c, new, "after-join", "y").await;
    assert_eq!(get(&c, 2, "after-join").await, Some(b"y".to_vec()));
}

macro_rules! for_each_storage {
    ($($name:ident),*) => {
        mod rocksdb { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name("rocksdb").await } )* }
        mod sqlite { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name("sqlite").await } )* }
        mod memory { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name("memory").await } )* }
    };
}

for_each_storage!(
    single_node_keeps_acknowledged_writes_across_sigkill,
    write_through_one_member_read_through_another,
    leader_kill_elects_new_leader_and_keeps_writes,
    lagging_member_catches_up_through_a_snapshot,
    a_joined_member_becomes_a_voter
);
