//! Starts a member: storage, Raft, the peer and client ports, the sweeper.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kahuna_proto::tls::{ClientTls, ServerTrust};
use kahuna_proto::v1::cluster_server::ClusterServer;
use kahuna_proto::v1::kv_server::KvServer;
use kahuna_proto::v1::locks_server::LocksServer;
use kahuna_proto::v1::maintenance_server::MaintenanceServer;
use kahuna_proto::v1::peer_server::PeerServer;
use kahuna_proto::v1::rate_limits_server::RateLimitsServer;
use kahuna_proto::v1::sequences_server::SequencesServer;
use kahuna_proto::v1::InfoResponse;
use openraft::error::{InitializeError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::BasicNode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use crate::api::limits::MAX_REQUEST_BYTES;
use crate::api::maintenance::MaintenanceService;
use crate::api::Api;
use crate::auth::Auth;
use crate::config::Config;
use crate::connections;
use crate::errors::{shutting_down, RaftFailure};
use crate::raft::cluster_id::{ClusterIdentity, Stored};
use crate::raft::handoff::hand_off_on_shutdown;
use crate::raft::network::{peer_info, PeerNetwork, PeerTransport, MAX_PEER_MESSAGE_BYTES};
use crate::raft::node::{Limits, Node};
use crate::raft::peer_service::PeerService;
use crate::tls::{self, Reloadable};
use crate::types::{NodeId, Raft};
use crate::{store, sweeper};

/// How long in-flight client requests may take to finish on shutdown.
const DRAIN: Duration = Duration::from_secs(5);
/// Connections the peer port holds open at once: members keep one or two each.
const MAX_PEER_CONNECTIONS: usize = 256;
/// How long the Raft core may take to stop on shutdown.
const RAFT_STOP: Duration = Duration::from_secs(5);
/// How long each named member gets to answer the start-up probe.
const PROBE: Duration = Duration::from_secs(3);

/// Starts a fresh ephemeral tier as soon as the term changes, and its grace period
/// as soon as this member leads in it.
/// Also counts leader changes for the metrics, and keeps the gRPC health status.
async fn watch_term(node: Arc<Node>, health: tonic_health::server::HealthReporter) {
    let mut metrics = node.raft.metrics();
    let mut leader = None;
    let mut serving = None;
    loop {
        let (term, leading, now_leader) = {
            let m = metrics.borrow_and_update();
            (
                m.current_term,
                m.state == openraft::ServerState::Leader,
                m.current_leader,
            )
        };
        node.ephemeral.observe_term(term, leading, std::time::Instant::now());
        if now_leader != leader {
            leader = now_leader;
            crate::metrics::registry()
                .leader_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let ready = crate::http::ready(&node);
        if serving != Some(ready) {
            serving = Some(ready);
            let status = if ready {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
        }
        // A member shutting down stops being ready at once, not at the next change.
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() {
                return;
            },
            () = node.stopping.cancelled(), if serving == Some(true) => {}
        }
    }
}

fn resolve(what: &str, addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("{what} {addr:?} is not HOST:PORT"))?
        .next()
        .with_context(|| format!("{what} {addr:?} resolves to no address"))
}

/// Resolves when the Raft core has stopped for any reason other than a shutdown
/// this process asked for: a storage error, a panic inside the core.
async fn core_stopped(raft: Raft) -> anyhow::Error {
    let mut metrics = raft.metrics();
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            return anyhow::anyhow!("{fatal}");
        }
        if metrics.changed().await.is_err() {
            return anyhow::anyhow!("its task ended (a panic inside the core)");
        }
    }
}

/// A member named in `--initial-cluster` that already belongs to a formed cluster (a
/// leader committed an entry there), as it answered the start-up probe.
struct Formed {
    id: NodeId,
    addr: String,
    info: InfoResponse,
}

/// Asks the other members named in `--initial-cluster` whether they already form a
/// cluster; returns those that do.
async fn probe(transport: &PeerTransport, members: &BTreeMap<NodeId, String>, me: NodeId) -> Vec<Formed> {
    let asks = members
        .iter()
        .filter(|(id, _)| **id != me)
        .map(|(id, addr)| async move {
            match peer_info(transport, addr, PROBE).await {
                Ok(info) if info.applied_index > 0 => Some(Formed {
                    id: *id,
                    addr: addr.clone(),
                    info,
                }),
                _ => None,
            }
        });
    futures::future::join_all(asks).await.into_iter().flatten().collect()
}

/// Decides from the data directory and the flags whether this member founds a cluster
/// (the members to initialize with), waits to be contacted by one, or must refuse to
/// start because either would split a cluster.
async fn plan_start(
    config: &Config,
    identity: &ClusterIdentity,
    transport: &PeerTransport,
    fresh: bool,
) -> anyhow::Result<Option<BTreeMap<NodeId, BasicNode>>> {
    let id = config.node_id;
    let dir = config.data_dir.display();
    let add_hint = format!(
        "add it through any member of that cluster: `kahuna cluster add-learner {id} {}`, then `kahuna cluster \
         promote {id}`",
        config.peer_listen
    );
    if config.join {
        identity.mark_joining()?;
        return Ok(None);
    }
    let memory = config.storage == store::StorageKind::Memory;
    match identity.stored() {
        Stored::Joining if fresh => anyhow::bail!(
            "refusing to start: the data directory {dir} was started with --join and no cluster has added it \
             yet; without --join this member would found a cluster of its own. Start it with --join again and \
             {add_hint}."
        ),
        // A memory member that was a cluster of one: nothing of that cluster survives
        // anywhere, so it starts a new one (as before cluster ids existed).
        Stored::Id(cluster) if fresh && memory && config.initial_members()?.keys().eq([id].iter()) => {
            let new = identity.found()?;
            tracing::info!(
                old_cluster_id = %cluster,
                cluster_id = %new,
                "memory storage keeps nothing across restarts and this member was a cluster of one: founding \
                 cluster {new}"
            );
            let members = config.initial_members()?;
            Ok(Some(
                members.into_iter().map(|(id, addr)| (id, BasicNode { addr })).collect(),
            ))
        }
        Stored::Id(cluster) if fresh && memory => {
            tracing::info!(
                cluster_id = %cluster,
                "memory storage keeps nothing across restarts: waiting, empty, for cluster {cluster} to \
                 replicate to this member (as with --join)"
            );
            Ok(None)
        }
        Stored::Id(cluster) if fresh => anyhow::bail!(
            "refusing to start: the data directory {dir} belongs to cluster {cluster} but holds no Raft log or \
             vote (its state was lost); founding a cluster here would split that cluster. Remove this member \
             from it (`kahuna cluster remove {id}`), then start it with --join and {add_hint}."
        ),
        // A member with its log and vote: openraft carries on where it stopped.
        Stored::Joining | Stored::Id(_) => Ok(None),
        Stored::Nothing if !fresh => Ok(None),
        Stored::Nothing => {
            let members = config.initial_members()?;
            let formed = probe(transport, &members, id).await;
            if let Some(first) = formed.first() {
                let cluster = if first.info.cluster_id.is_empty() {
                    "(id not known yet)"
                } else {
                    first.info.cluster_id.as_str()
                };
                let named: Vec<String> = formed.iter().map(|f| format!("{} ({})", f.id, f.addr)).collect();
                let lost_data = formed.iter().any(|f| f.info.replicated_to.contains(&id));
                let founding_member = formed.iter().any(|f| f.info.members.contains(&id));
                // A founding member started after the others formed the cluster (a
                // container scheduled late): it is in their membership and no leader has
                // replicated to it, so it waits, empty, for the leader to bring it up to
                // date, as a --join member would. One that a leader has replicated to has
                // lost its data: a voter rejoining empty could help elect a leader that
                // lacks entries it had acknowledged, so it is refused.
                if founding_member && !lost_data {
                    tracing::info!(
                        cluster_id = %cluster,
                        "member(s) {} already form cluster {cluster}, whose membership includes this member: \
                         waiting, empty, for its leader to bring this member up to date",
                        named.join(", ")
                    );
                    return Ok(None);
                }
                let why = if lost_data {
                    "this member lost its data: a leader of that cluster has replicated entries to it"
                } else {
                    "this member is not in that cluster's membership"
                };
                anyhow::bail!(
                    "refusing to start: the data directory {dir} is empty, but member(s) {} named in \
                     --initial-cluster already form cluster {cluster} and {why}; founding a cluster here would \
                     start a second one. If it is a member that lost its data, remove it first (`kahuna cluster \
                     remove {id}`), then start it with --join and {add_hint}; a new member: --join, then \
                     {add_hint}. To found a new cluster, name only members that belong to none.",
                    named.join(", ")
                );
            }
            // The lowest founding id generates the cluster id; the others learn it from
            // the first peer message that carries it.
            if members.keys().next() == Some(&id) {
                let cluster = identity.found()?;
                tracing::info!(cluster_id = %cluster, "founding cluster {cluster}");
            }
            Ok(Some(
                members.into_iter().map(|(id, addr)| (id, BasicNode { addr })).collect(),
            ))
        }
    }
}

async fn signalled() -> anyhow::Result<&'static str> {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = sigterm.recv() => "SIGTERM",
    })
}

/// Runs the member until SIGINT or SIGTERM (then hands leadership over and returns
/// `Ok`), or until its Raft core stops on its own (an error).
pub async fn run(config: Config) -> anyhow::Result<()> {
    config.check()?;
    if config.test_unsafe_local_reads {
        tracing::warn!("--test-unsafe-local-reads: reads are NOT linearizable (test mode)");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let identity = Arc::new(ClusterIdentity::load(&config.data_dir)?);
    let (mut log_store, mut sm_store) = store::open(config.storage, &config.data_dir).with_context(|| {
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
    if let Some(file) = &config.restore {
        let members = config.initial_members()?;
        let Some(peer_addr) = members.get(&config.node_id).filter(|_| members.len() == 1) else {
            anyhow::bail!(
                "--restore seeds a cluster of this member alone, but --initial-cluster names {} members: start                  the others empty with --join and add them (`kahuna cluster add-learner`) once it runs",
                members.len()
            );
        };
        crate::backup::restore(
            file,
            config.node_id,
            peer_addr,
            &config.data_dir,
            &identity,
            &mut log_store,
            &mut sm_store,
        )
        .await?;
    }
    let vote = log_store.read_vote().await.context("cannot read the saved vote")?;
    let fresh = vote.is_none()
        && log_store
            .get_log_state()
            .await
            .context("cannot read the log")?
            .last_log_id
            .is_none();
    let client_tls = config.client_tls().map(|f| Reloadable::load("client", f)).transpose()?;
    let peer_tls = config.peer_tls().map(|f| Reloadable::load("peer", f)).transpose()?;
    let auth = config.auth_tokens.as_deref().map(Auth::load).transpose()?;
    let transport = PeerTransport::new(peer_client_tls(&config)?);
    let bootstrap = plan_start(&config, &identity, &transport, fresh).await?;
    crate::raft::restart_vote::stand_for_election_again(&mut log_store, config.node_id).await?;
    let network = PeerNetwork::new(config.node_id, identity.clone(), transport.clone());
    let raft = Raft::new(
        config.node_id,
        Arc::new(config.raft_config()?),
        network.clone(),
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
            forward: client_tls.is_none(),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            max_watches: config.max_watches,
            caps: crate::capacity::Caps {
                keys: config.max_keys,
                locks: config.max_locks,
                sequences: config.max_sequences,
                ephemeral: config.max_ephemeral_entries,
                lock_waiters: config.max_lock_waiters,
                rate_limiters: config.max_rate_limiters,
            },
        },
        network.clone(),
    ));
    let (health, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(watch_term(node.clone(), health));

    // Bind the ports before anything else so a taken port fails the start at once.
    let peer_listener = bind("--peer-listen", &config.peer_listen)?;
    let client_listener = bind("--listen", &config.listen)?;
    let metrics_listener = config
        .metrics_listen
        .as_deref()
        .map(|addr| bind("--metrics-listen", addr))
        .transpose()?;
    tokio::spawn(reload_on_sighup(
        [client_tls.clone(), peer_tls.clone()].into_iter().flatten().collect(),
        auth.clone(),
    ));

    let info = InfoResponse {
        node_id: config.node_id,
        client_addr: config.client_addr(),
        peer_addr: config.peer_listen.clone(),
        ..InfoResponse::default()
    };
    let (stop_peer, peer_stopping) = watch::channel(false);
    let (stop_clients, clients_stopping) = watch::channel(false);
    let peer = PeerServer::new(PeerService::new(
        raft.clone(),
        info,
        identity.clone(),
        node.sm.clone(),
        node.contact.clone(),
    ))
    .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES);
    let peer_router = Server::builder().add_service(peer);
    let mut peer_server = match peer_tls {
        None => tokio::spawn(peer_router.serve_with_incoming_shutdown(
            connections::limit(plain(peer_listener), MAX_PEER_CONNECTIONS, "--peer-listen"),
            stopped(peer_stopping),
        )),
        Some(tls) => tokio::spawn(peer_router.serve_with_incoming_shutdown(
            connections::limit(tls::incoming(peer_listener, tls), MAX_PEER_CONNECTIONS, "--peer-listen"),
            stopped(peer_stopping),
        )),
    };

    let api = Api::new(node.clone(), auth.clone());
    let client_router = Server::builder()
        .max_concurrent_streams(Some(config.max_streams_per_connection))
        // Outermost, so every response carries the request's id.
        .layer(crate::around::Around(crate::logging::RequestIds::new(config.node_id)))
        .layer(tower::util::MapResponseLayer::new(crate::api::oversize::relabel))
        .layer(tower::util::option_layer(
            metrics_listener
                .as_ref()
                .map(|_| crate::around::Around(crate::metrics::Measure)),
        ))
        .add_service(health_service)
        .add_service(KvServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(ClusterServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(LocksServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(SequencesServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST_BYTES))
        .add_service(MaintenanceServer::new(MaintenanceService::new(
            api.clone(),
            identity.clone(),
        )))
        .add_service(RateLimitsServer::new(api).max_decoding_message_size(MAX_REQUEST_BYTES));
    let max_connections = config.max_connections as usize;
    let mut client_server = match client_tls {
        None => tokio::spawn(client_router.serve_with_incoming_shutdown(
            connections::limit(plain(client_listener), max_connections, "--listen"),
            stopped(clients_stopping),
        )),
        Some(tls) => tokio::spawn(client_router.serve_with_incoming_shutdown(
            connections::limit(tls::incoming(client_listener, tls), max_connections, "--listen"),
            stopped(clients_stopping),
        )),
    };

    if let Some(members) = bootstrap {
        match raft.initialize(members).await {
            Ok(()) => tracing::info!("initialized a new cluster"),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::info!("already part of a cluster; --initial-cluster ignored")
            }
            Err(e) => return Err(e).context("cannot initialize the cluster"),
        }
    }
    tokio::spawn(sweeper::run(node.clone()));
    tokio::spawn(crate::raft::replicated::run(node.clone()));
    if let Some(listener) = metrics_listener {
        tokio::spawn(crate::http::serve(listener, node.clone(), node.stopping.clone()));
    }
    tracing::info!(
        node_id = config.node_id,
        listen = %config.listen,
        peer_listen = %config.peer_listen,
        storage = storage_name,
        "kahuna-server started"
    );

    let reason = tokio::select! {
        r = signalled() => r?,
        () = crate::raft::removal::removed(node.clone(), identity.clone()) => "removed from the cluster",
        e = core_stopped(raft.clone()) => anyhow::bail!(
            "the Raft core stopped: {e}. This member cannot serve and exits; check the data directory {} \
             (disk full? damaged files?) and the log above, then restart it",
            config.data_dir.display()
        ),
        r = &mut peer_server => anyhow::bail!("peer server stopped: {r:?}"),
        r = &mut client_server => anyhow::bail!("client server stopped: {r:?}"),
    };
    tracing::info!("{reason}: shutting down");
    shut_down(&config, &node).await;
    // In-flight client requests finish (or were answered NOT_LEADER above); no new ones.
    let _ = stop_clients.send(true);
    if tokio::time::timeout(DRAIN, &mut client_server).await.is_err() {
        tracing::warn!("client requests still running after {DRAIN:?}; stopping anyway");
    }
    match tokio::time::timeout(RAFT_STOP, raft.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("raft shutdown: {e}"),
        Err(_) => tracing::warn!("raft did not stop within {RAFT_STOP:?}"),
    }
    let _ = stop_peer.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), &mut peer_server).await;
    tracing::info!("stopped");
    Ok(())
}

/// Binds a port (before anything else, so a taken port fails the start at once).
fn bind(flag: &str, addr: &str) -> anyhow::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(resolve(flag, addr)?)
        .with_context(|| format!("{flag}: cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener)?)
}

fn plain(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The client side of the peer port's mutual TLS: this member's peer certificate,
/// trusting only the peer CA.
fn peer_client_tls(config: &Config) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    let Some(files) = config.peer_tls() else {
        return Ok(None);
    };
    let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let ca = files.client_ca.as_deref().map(read).transpose()?.unwrap_or_default();
    let tls = ClientTls {
        trust: ServerTrust::Ca(ca),
        identity: Some((read(&files.cert)?, read(&files.key)?)),
    };
    Ok(Some(tls.config().map_err(|e| anyhow::anyhow!("peer TLS: {e}"))?))
}

/// Reads every port's certificates and the auth grants again on each SIGHUP; a reload
/// that fails keeps what is in use and says why.
async fn reload_on_sighup(ports: Vec<Arc<Reloadable>>, auth: Option<Arc<Auth>>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot watch SIGHUP: certificates are not reloaded");
        return;
    };
    while hup.recv().await.is_some() {
        for port in &ports {
            match port.reload() {
                Ok(()) => tracing::info!(port = port.what(), "SIGHUP: TLS certificates reloaded"),
                Err(e) => tracing::error!(
                    port = port.what(),
                    "SIGHUP: TLS certificates NOT reloaded, the old ones stay: {e:#}"
                ),
            }
        }
        if let Some(auth) = &auth {
            match auth.reload() {
                Ok(n) => tracing::info!("SIGHUP: auth grants reloaded ({n})"),
                Err(e) => tracing::error!("SIGHUP: auth grants NOT reloaded, the old ones stay: {e:#}"),
            }
        }
    }
}

/// Resolves once `flag` turns true (or its sender is gone).
async fn stopped(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

/// The member stops serving: a leader hands its leadership to an up-to-date follower
/// first, so the cluster does not wait for an election timeout.
async fn shut_down(config: &Config, node: &Node) {
    // Watches are streams that would hold the client port open past the drain: end
    // them now, telling each client where to resume.
    node.stopping.cancel();
    if !node.is_leader() {
        node.close_ephemeral();
        node.proposer.close(RaftFailure::Status(shutting_down()));
        return;
    }
    let catch_up = Duration::from_millis(config.election_timeout_ms);
    let rpc = Duration::from_millis((config.election_timeout_ms / 2).max(100));
    let started = std::time::Instant::now();
    match hand_off_on_shutdown(node, catch_up, rpc).await {
        Ok(successor) => {
            tracing::info!(
                successor,
                took_ms = started.elapsed().as_millis() as u64,
                "leadership handed over to member {successor}"
            );
            // Waiting and later writes are sent to the new leader.
            node.proposer.close(RaftFailure::NotLeader);
        }
        Err(e) => {
            tracing::warn!(
                "leadership not handed over ({e}); the other members elect a leader after an election timeout"
            );
            node.close_ephemeral();
            node.proposer.close(RaftFailure::Status(shutting_down()));
        }
    }
}
