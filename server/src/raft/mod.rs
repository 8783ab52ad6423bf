//! Raft plumbing: openraft types, the peer network (both directions), the node, the
//! cluster id, the leadership hand-off and a removed member's stop.

pub mod cluster_id;
pub mod handoff;
pub mod network;
pub mod node;
pub mod peer_input;
pub mod peer_service;
pub mod proposer;
pub mod read_index;
pub mod removal;
pub mod replicated;
pub mod restart_vote;
