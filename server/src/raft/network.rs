//! Outgoing Raft RPCs: openraft's messages, bincode-encoded, over the `Peer` gRPC
//! service of the target member.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kahuna_proto::tls::TlsConnector;
use kahuna_proto::v1::peer_client::PeerClient;
use kahuna_proto::v1::{InfoRequest, InfoResponse, PeerMessage};
use kahuna_proto::ErrorKind;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::cluster_id::{CheckError, ClusterIdentity, CLUSTER_ID_KEY, NODE_ID_KEY};
use super::peer_input;
use crate::poison::Recover;
use crate::types::{NodeId, TypeConfig};

/// Largest peer message: a batch of appended entries or a snapshot chunk.
pub const MAX_PEER_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// How this member connects to the others' ports: plain HTTP/2, or (with
/// `--peer-tls-*`) TLS presenting its peer certificate and trusting only the peer CA.
#[derive(Clone, Default)]
pub struct PeerTransport {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl PeerTransport {
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self { tls }
    }

    /// A lazily connecting channel to `addr` (host:port).
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        Ok(match &self.tls {
            None => endpoint.connect_lazy(),
            Some(config) => endpoint.connect_with_connector_lazy(TlsConnector::new(config.clone(), CONNECT_TIMEOUT)),
        })
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

fn peer_client(channel: Channel) -> PeerClient<Channel> {
    PeerClient::new(channel)
        .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
}

/// Asks the member at `peer_addr` who it is (its id and client address).
pub async fn peer_info(
    transport: &PeerTransport,
    peer_addr: &str,
    timeout: Duration,
) -> Result<InfoResponse, tonic::Status> {
    let ch = transport
        .channel(peer_addr)
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut req = tonic::Request::new(InfoRequest {});
    req.set_timeout(timeout);
    Ok(peer_client(ch).info(req).await?.into_inner())
}

/// When each member last answered a replication or heartbeat message of this member
/// (as leader) or a hand-off message: openraft 0.9's metrics carry the matched index
/// per member but no heartbeat times, and `cluster status` reports whether a member
/// still answers.
#[derive(Default)]
pub struct PeerAcks {
    last: Mutex<HashMap<NodeId, Instant>>,
}

impl PeerAcks {
    fn record(&self, id: NodeId) {
        self.last.lock().recover().insert(id, Instant::now());
    }

    /// How long ago member `id` last answered; `None` if it never has.
    pub fn since(&self, id: NodeId) -> Option<Duration> {
        self.last.lock().recover().get(&id).map(Instant::elapsed)
    }
}

/// Hands out connections to members. openraft asks for a new client for every
/// replication stream and every read-index round; they all share one HTTP/2
/// channel per address instead of opening a TCP connection each time.
#[derive(Clone)]
pub struct PeerNetwork {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// This member's id and cluster id, sent with every message.
    node_id: NodeId,
    identity: Arc<ClusterIdentity>,
    transport: PeerTransport,
    acks: Arc<PeerAcks>,
}

/// Marks an outgoing peer message with the sender's node id and cluster id.
pub fn stamp(metadata: &mut MetadataMap, node_id: NodeId, identity: &ClusterIdentity) {
    metadata.insert(NODE_ID_KEY, MetadataValue::from(node_id));
    if let Some(v) = identity.id().and_then(|id| MetadataValue::try_from(id.as_str()).ok()) {
        metadata.insert(CLUSTER_ID_KEY, v);
    }
}

/// The cluster id in a peer message's or reply's metadata, if any.
pub fn cluster_id_of(metadata: &MetadataMap) -> Option<&str> {
    metadata.get(CLUSTER_ID_KEY).and_then(|v| v.to_str().ok())
}

impl PeerNetwork {
    pub fn new(node_id: NodeId, identity: Arc<ClusterIdentity>, transport: PeerTransport) -> Self {
        Self {
            channels: Arc::default(),
            node_id,
            identity,
            transport,
            acks: Arc::default(),
        }
    }

    pub fn transport(&self) -> &PeerTransport {
        &self.transport
    }

    /// When each member last answered an append-entries message.
    pub fn acks(&self) -> &PeerAcks {
        &self.acks
    }

    fn channel(&self, addr: &str) -> Result<Channel, String> {
        let mut map = self.channels.lock().recover();
        if let Some(ch) = map.get(addr) {
            return Ok(ch.clone());
        }
        let ch = self.transport.channel(addr).map_err(|e| e.to_string())?;
        map.insert(addr.to_owned(), ch.clone());
        Ok(ch)
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerConnection {
            target,
            addr: node.addr.clone(),
            client: self.channel(&node.addr).map(peer_client),
            node_id: self.node_id,
            identity: self.identity.clone(),
            acks: self.acks.clone(),
        }
    }
}

pub struct PeerConnection {
    target: NodeId,
    addr: String,
    client: Result<PeerClient<Channel>, String>,
    node_id: NodeId,
    identity: Arc<ClusterIdentity>,
    acks: Arc<PeerAcks>,
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = self
            .client
            .as_mut()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&TransportError(e.clone()))))?;
        let data = bincode::serialize(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(PeerMessage { data });
        request.set_timeout(option.hard_ttl());
        stamp(request.metadata_mut(), self.node_id, &self.identity);
        let reply = match rpc {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = reply.map_err(|status| {
            let mismatch = status
                .metadata()
                .get(crate::errors::ERROR_KEY)
                .is_some_and(|v| v.as_bytes() == ErrorKind::Membership.name().as_bytes());
            if mismatch && self.identity.should_log() {
                tracing::error!(
                    target_node = self.target,
                    addr = %self.addr,
                    "member {} at {} refused this member's Raft message: {}",
                    self.target,
                    self.addr,
                    status.message()
                );
            }
            let e = TransportError(format!("{:?}: {}", status.code(), status.message()));
            if status.code() == tonic::Code::Unavailable {
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                RPCError::Network(NetworkError::new(&e))
            }
        })?;
        // The reply tells a member that knows no cluster id yet which cluster it is in.
        if let Err(e) = self.identity.check(cluster_id_of(reply.metadata())) {
            if matches!(e, CheckError::Mismatch(_)) && self.identity.should_log() {
                tracing::error!(
                    target_node = self.target,
                    addr = %self.addr,
                    "ignoring the reply of member {} at {}: {e}; is --initial-cluster or a member's address wrong?",
                    self.target,
                    self.addr
                );
            }
            return Err(RPCError::Network(NetworkError::new(&TransportError(e.to_string()))));
        }
        let result: Result<Resp, E> =
            bincode::deserialize(&reply.into_inner().data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    // A reply is checked against the term of the request it answers (see peer_input).
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let term = rpc.vote.leader_id().term;
        let resp = self.call(Rpc::Append, &rpc, &option).await?;
        peer_input::append_entries_reply(&resp, term).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // Any well-formed answer, a refusal included, shows the member is up.
        self.acks.record(self.target);
        Ok(resp)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        let term = rpc.vote.leader_id().term;
        let resp = self.call(Rpc::Snapshot, &rpc, &option).await?;
        peer_input::install_snapshot_reply(&resp, term).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        Ok(resp)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let term = rpc.vote.leader_id().term;
        let resp = self.call(Rpc::Vote, &rpc, &option).await?;
        peer_input::vote_reply(&resp, term).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        Ok(resp)
    }
}
