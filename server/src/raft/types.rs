//! The openraft type configuration shared by storage, network and API.

use std::io::Cursor;

use crate::sm::{Command, Reply};

openraft::declare_raft_types!(
    /// Kahuna's Raft types: commands are [`Command`]s, answers are [`Reply`]s, members
    /// are known by their peer address.
    pub TypeConfig:
        D = Command,
        R = Reply,
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
