//! Kahuna server: a Raft-replicated coordination service.
//!
//! Layout: [`api`] (client gRPC services), [`raft`] (openraft types, peer network,
//! node), [`sm`] (the deterministic state machine), [`store`] (log and snapshot
//! storage on RocksDB, SQLite or memory).

pub mod api;
pub mod around;
pub mod auth;
pub mod backup;
pub mod capacity;
pub mod clock;
pub mod config;
pub mod connections;
pub mod ephemeral;
pub mod errors;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod poison;
pub mod raft;
pub mod scrape;
pub mod server;
pub mod sm;
pub mod store;
pub mod sweeper;
pub mod tls;
pub mod types;
