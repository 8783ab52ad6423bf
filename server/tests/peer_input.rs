//! Malformed and absurd Raft messages sent to a live member's peer port, as a process
//! holding no member's identity but the cluster id would send them: each is refused
//! with INVALID_ARGUMENT, nothing of it is adopted, and the cluster keeps serving.

use std::time::Duration;

use kahuna_proto::v1::peer_client::PeerClient;
use kahuna_proto::v1::PeerMessage;
use kahuna_server::types::TypeConfig;
use kahuna_testkit::*;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, SnapshotMeta, StoredMembership, Vote};
use tonic::transport::Channel;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

struct Sender {
    client: PeerClient<Channel>,
    cluster_id: String,
}

impl Sender {
    async fn to(c: &Cluster, id: u64) -> Sender {
        let m = &c.members[(id - 1) as usize];
        let cluster_id = std::fs::read_to_string(m.data_dir.join("cluster-id"))
            .expect("cluster-id file")
            .trim()
            .to_owned();
        let client = PeerClient::new(channel(&m.peer_addr));
        Sender { client, cluster_id }
    }

    /// Sends `data` as the given RPC and returns the refusal (the test fails if the
    /// member accepts it).
    async fn refused(&mut self, rpc: &str, what: &str, data: Vec<u8>) -> tonic::Status {
        let mut req = tonic::Request::new(PeerMessage { data });
        req.metadata_mut()
            .insert("kahuna-cluster-id", self.cluster_id.parse().expect("metadata"));
        req.metadata_mut()
            .insert("kahuna-node-id", "99".parse().expect("metadata"));
        let r = match rpc {
            "append" => self.client.append_entries(req).await,
            "vote" => self.client.vote(req).await,
            "snapshot" => self.client.install_snapshot(req).await,
            _ => unreachable!(),
        };
        match r {
            Ok(_) => panic!("{what}: accepted"),
            Err(s) => {
                assert_eq!(s.code(), Code::InvalidArgument, "{what}: {s:?}");
                s
            }
        }
    }
}

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn append(vote: Vote<u64>, prev: Option<LogId<u64>>, entries: Vec<LogId<u64>>) -> Vec<u8> {
    let req: AppendEntriesRequest<TypeConfig> = AppendEntriesRequest {
        vote,
        prev_log_id: prev,
        entries: entries
            .into_iter()
            .map(|log_id| Entry {
                log_id,
                payload: EntryPayload::Blank,
            })
            .collect(),
        leader_commit: None,
    };
    bincode::serialize(&req).expect("encode")
}

fn snapshot(id: &str, offset: u64, data: Vec<u8>) -> Vec<u8> {
    let req: InstallSnapshotRequest<TypeConfig> = InstallSnapshotRequest {
        vote: Vote::new_committed(1, 1),
        meta: SnapshotMeta {
            last_log_id: Some(log_id(1, 5)),
            last_membership: StoredMembership::default(),
            snapshot_id: id.into(),
        },
        offset,
        data,
        done: false,
    };
    bincode::serialize(&req).expect("encode")
}

#[tokio::test(flavor = "multi_thread")]
async fn absurd_raft_messages_are_refused_and_the_cluster_keeps_serving() {
    let c = Cluster::start(3, "rocksdb", &[]).await;
    let leader = c.wait_leader(WAIT).await;
    put(&c, leader, "before", "1").await;
    let term = c.status(leader).await.expect("status").term;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let mut s = Sender::to(&c, follower).await;

    // The 27-byte message of the report: an empty append-entries whose vote has term
    // u64::MAX, which overflowed openraft's `term + 1` on two members.
    let max_vote = append(Vote::new_committed(u64::MAX, 2), None, Vec::new());
    assert_eq!(max_vote.len(), 27, "the reported message");
    let e = s.refused("append", "vote term u64::MAX", max_vote).await;
    assert!(e.message().contains("ahead of this member's term"), "{e:?}");
    s.refused("vote", "vote request term u64::MAX", {
        bincode::serialize(&VoteRequest::<u64>::new(Vote::new(u64::MAX, 2), None)).expect("encode")
    })
    .await;
    // Log ids past the sender's vote, or at the end of the index range.
    s.refused(
        "append",
        "entry from a later term than the vote",
        append(
            Vote::new_committed(term, 2),
            Some(log_id(term, 1)),
            vec![log_id(term + 7, 2)],
        ),
    )
    .await;
    s.refused(
        "append",
        "prev_log_id at the last index",
        append(Vote::new_committed(term, 2), Some(log_id(term, u64::MAX)), Vec::new()),
    )
    .await;
    // Snapshot chunks that would make the member allocate far past what arrived.
    s.refused("snapshot", "a chunk at 1 TiB", snapshot("s1", 1 << 40, vec![1]))
        .await;
    s.refused("snapshot", "a chunk at u64::MAX", snapshot("s2", u64::MAX, vec![1; 16]))
        .await;
    // Bytes that do not decode.
    let e = s.refused("append", "garbage", vec![0xff; 40]).await;
    assert!(e.message().contains("undecodable"), "{e:?}");

    // Nothing was adopted: every member is up, none took any of the terms the absurd
    // messages carried (u64::MAX, or `term + 7` in an entry), and all of them agree on
    // one leader in one term. (An ordinary election on a loaded machine may move the
    // term by one or two; that is not adoption.)
    let deadline = std::time::Instant::now() + WAIT;
    let leader = loop {
        let mut seen = Vec::new();
        for id in 1..=3 {
            let st = c.status(id).await.expect("every member answers");
            assert!(st.term < term + 7, "member {id} took term {} (was {term})", st.term);
            seen.push((st.term, st.leader_id));
        }
        if seen[0].1 != 0 && seen.iter().all(|x| *x == seen[0]) {
            break seen[0].1;
        }
        assert!(std::time::Instant::now() < deadline, "members disagree: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    put(&c, leader, "after", "2").await;
    for id in 1..=3 {
        assert!(!c.log(id).contains("panicked"), "member {id} panicked:\n{}", c.log(id));
    }
    assert_eq!(get(&c, leader, "before").await, Some(b"1".to_vec()));
    assert_eq!(get(&c, leader, "after").await, Some(b"2".to_vec()));
}
