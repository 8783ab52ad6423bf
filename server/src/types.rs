//! The openraft type configuration shared by storage, network and API.

use std::io::Cursor;

use crate::sm::{Batch, Outcome};

openraft::declare_raft_types!(
    /// Kahuna's Raft types: an entry is a [`Batch`] of commands, its answer one
    /// [`Outcome`] per command; members are known by their peer address.
    pub TypeConfig:
        D = Batch,
        R = Vec<Outcome>,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Membership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type Raft = openraft::Raft<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, openraft::BasicNode>;
