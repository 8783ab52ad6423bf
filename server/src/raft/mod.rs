//! Raft plumbing: openraft types, the peer network (both directions) and the node.

pub mod network;
pub mod node;
pub mod peer_service;
pub mod proposer;
pub mod read_index;
pub mod types;
