//! Starts a member: storage, Raft, the peer and client ports, the sweeper.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kahuna_proto::v1::cluster_server::ClusterServer;
use kahuna_proto::v1::kv_server::KvServer;
use kahuna_proto::v1::locks_server::LocksServer;
use kahuna_proto::v1::peer_server::PeerServer;
use kahuna_proto::v1::sequences_server::SequencesServer;
use kahuna_proto::v1::InfoResponse;
use openraft::error::{InitializeError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, Vote};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::api::limits::MAX_REQUEST_BYTES;
use crate::api::Api;
use crate::config::Config;
use crate::raft::network::{PeerNetwork, MAX_PEER_MESSAGE_BYTES};
use crate::raft::node::{Limits, Node};
use crate::raft::peer_service::PeerService;
use crate::raft::types::Raft;
use crate::{store, sweeper};

/// Starts a fresh ephemeral tier as soon as the term changes, and its grace period
/// as soon as this member leads in it.
async fn watch_term(node: Arc<Node>) {
    let mut metrics = node.raft.metrics();
    loop {
        let (term, leading) = {
            let m = metrics.borrow_and_update();
            (m.current_term, m.state == openraft::ServerState::Leader)
        };
        node.ephemeral.observe_term(term, leading);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn resolve(what: &str, addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("{what} {addr:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("{what} {addr:?} resolves to no address"))
}

/// Runs the member until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    config.check()?;
    if config.test_unsafe_local_reads {
        tracing::warn!("--test-unsafe-local-reads: reads are NOT linearizable (test mode)");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let (mut log_store, sm_store) = store::open(config.storage, &config.data_dir).with_context(|| {
        format!(
            "cannot open {:?} storage in {}",
            config.storage,
            config.data_dir.display()
        )
    })?;
    let storage_name = match config.storage {
        store::StorageKind::Rocksdb => "rocksdb",
        store::StorageKind::Sqlite => "sqlite",
        store::StorageKind::Memory => "memory",
    };
    // openraft 0.9 restarts a member whose saved vote is a committed vote for itself
    // as leader at once, in the same term. Lease extension on a new leader's first
    // entry and the ephemeral tier (fresh tokens, grace period) both key on a new
    // term, so such a restart would skip them: a leader restarted with a clock that
    // jumped ahead expired live leases, and its ephemeral tier handed out tokens it had
    // already granted. Saving the vote uncommitted (still for itself, so it cannot vote
    // for anyone else in that term) makes a restarted leader stand for election in a
    // new term instead.
    let vote = log_store.read_vote().await.context("cannot read the saved vote")?;
    if let Some(v) = vote.filter(|v| v.committed && v.leader_id.voted_for() == Some(config.node_id)) {
        log_store
            .save_vote(&Vote::new(v.leader_id.term, config.node_id))
            .await
            .context("cannot save the vote")?;
        tracing::info!(
            term = v.leader_id.term,
            "was leader before the restart; standing for election in a new term"
        );
    }
    let raft = Raft::new(
        config.node_id,
        Arc::new(config.raft_config()?),
        PeerNetwork::default(),
        log_store,
        sm_store.clone(),
    )
    .await?;
    let node = Arc::new(Node::new(
        config.node_id,
        raft.clone(),
        sm_store,
        config.client_addr(),
        storage_name,
        Limits {
            unsafe_local_reads: config.test_unsafe_local_reads,
            max_ephemeral_ttl: Duration::from_millis(config.max_ephemeral_ttl_ms),
            idempotency_window: Duration::from_millis(config.idempotency_window_ms),
        },
    ));
    tokio::spawn(watch_term(node.clone()));

    // Bind both ports before anything else so a taken port fails the start at once.
    let peer_incoming = TcpIncoming::bind(resolve("--peer-listen", &config.peer_listen)?)
        .with_context(|| format!("cannot listen on {}", config.peer_listen))?
        .with_nodelay(Some(true));
    let client_incoming = TcpIncoming::bind(resolve("--listen", &config.listen)?)
        .with_context(|| format!("cannot listen on {}", config.listen))?
        .with_nodelay(Some(true));

    let info = InfoResponse {
        node_id: config.node_id,
        client_addr: config.client_addr(),
        peer_addr: config.peer_listen.clone(),
    };
    let peer = PeerServer::new(PeerService::new(raft.clone(), info))
        .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES);
    let peer_server = tokio::spawn(Server::builder().add_service(peer).serve_with_incoming(peer_incoming));

    let api = Api::new(node.clone());
    let client_server = tokio::spawn(
        Server::builder()
            .layer(tower::util::MapResponseLayer::new(crate::api::oversize::relabel))
            .add_service(KvServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(ClusterServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(LocksServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
            .add_service(SequencesServer::new(api).max_decoding_message_size(MAX_REQUEST_BYTES))
            .serve_with_incoming(client_incoming),
    );

    if !config.join {
        let members: std::collections::BTreeMap<u64, BasicNode> = config
            .initial_members()?
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        match raft.initialize(members).await {
            Ok(()) => tracing::info!("initialized a new cluster"),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::info!("already part of a cluster; --initial-cluster ignored")
            }
            Err(e) => return Err(e).context("cannot initialize the cluster"),
        }
    }
    tokio::spawn(sweeper::run(node.clone()));
    tracing::info!(
        node_id = config.node_id,
        listen = %config.listen,
        peer_listen = %config.peer_listen,
        storage = storage_name,
        "kahuna-server started"
    );

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        r = peer_server => anyhow::bail!("peer server stopped: {r:?}"),
        r = client_server => anyhow::bail!("client server stopped: {r:?}"),
    }
    raft.shutdown()
        .await
        .map_err(|e| anyhow::anyhow!("raft shutdown: {e}"))?;
    Ok(())
}
