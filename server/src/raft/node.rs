//! A running member: its Raft instance, state machine, clock, and what it knows of
//! the other members (their client addresses, learned over the peer port).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use kahuna_proto::v1::ResponseHeader;
use openraft::{BasicNode, ServerState};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::Status;

use super::network::{peer_info, PeerNetwork, PeerTransport};
use super::proposer::Proposer;
use super::read_index::ReadIndex;
use crate::capacity::{Caps, WatchSlots};
use crate::clock::Clock;
use crate::ephemeral::EphemeralTier;
use crate::errors::internal;
use crate::poison::Recover;
use crate::store::{Applied, StateMachineStore};
use crate::types::{NodeId, Raft};

/// Settings the API needs from the configuration.
pub struct Limits {
    /// Test mode: serve linearizable reads locally, without a read-index.
    pub unsafe_local_reads: bool,
    pub max_ephemeral_ttl: Duration,
    pub idempotency_window: Duration,
    /// Followers forward client requests to the leader (see `Node::forward`).
    pub forward: bool,
    /// Longest a request waits in this member for a quorum (a commit or a read barrier).
    pub request_timeout: Duration,
    /// How many keys, locks, sequences and ephemeral entries the cluster may hold.
    pub caps: Caps,
    /// Watches this member serves at once (`--max-watches`).
    pub max_watches: usize,
}

pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    /// Cluster time (see `clock`), shared with the state-machine store that advances it.
    pub clock: Arc<Clock>,
    pub client_addr: String,
    pub storage: &'static str,
    pub read_index: std::sync::Arc<ReadIndex>,
    pub proposer: Proposer,
    pub ephemeral: EphemeralTier,
    pub idempotency_window: Duration,
    pub unsafe_local_reads: bool,
    pub request_timeout: Duration,
    pub caps: Caps,
    pub watches: WatchSlots,
    /// Cancelled when the member begins to shut down (ends open watches).
    pub stopping: CancellationToken,
    /// node id -> (peer address it was learned for, client address).
    client_addrs: Mutex<HashMap<NodeId, (String, String)>>,
    /// client address -> channel, for forwarding to the leader.
    channels: Mutex<HashMap<String, Channel>>,
    /// False once this member has stopped serving the ephemeral tier (before it hands
    /// its leadership over on shutdown). Ephemeral operations run under the read lock.
    ephemeral_open: RwLock<bool>,
    /// Whether a follower forwards client requests to the leader (plain client port)
    /// or answers NOT_LEADER with the leader's address (TLS: a member holds no client
    /// credentials to speak for the caller, and the core client follows the redirect).
    forward: bool,
    /// How this member reaches the others' peer ports.
    transport: PeerTransport,
    /// Raft's network, for the leadership hand-off and the members' last answers.
    pub network: PeerNetwork,
    /// Held while a leadership hand-off runs, so two never interleave.
    pub handoff: tokio::sync::Mutex<()>,
    /// When a leader's append-entries message last reached this member (see
    /// `raft::removal`).
    pub contact: Arc<Contact>,
}

/// When this member last heard from a leader.
pub struct Contact(Mutex<Instant>);

impl Default for Contact {
    fn default() -> Self {
        Self(Mutex::new(Instant::now()))
    }
}

impl Contact {
    pub fn touch(&self) {
        *self.0.lock().recover() = Instant::now();
    }

    pub fn since(&self) -> Duration {
        self.0.lock().recover().elapsed()
    }
}

/// Where a client request should be served.
pub enum Route {
    /// This member is the leader.
    Local,
    /// Forward to the leader's client address over this channel.
    Forward(Channel),
}

impl Node {
    pub fn new(
        id: NodeId,
        raft: Raft,
        sm: StateMachineStore,
        client_addr: String,
        storage: &'static str,
        limits: Limits,
        network: PeerNetwork,
    ) -> Self {
        Self {
            id,
            read_index: ReadIndex::new(raft.clone(), limits.request_timeout),
            proposer: Proposer::start(raft.clone()),
            raft,
            clock: sm.clock(),
            sm,
            client_addr,
            storage,
            ephemeral: EphemeralTier::new(limits.max_ephemeral_ttl),
            idempotency_window: limits.idempotency_window,
            unsafe_local_reads: limits.unsafe_local_reads,
            request_timeout: limits.request_timeout,
            caps: limits.caps,
            watches: WatchSlots::new(limits.max_watches),
            stopping: CancellationToken::new(),
            client_addrs: Mutex::default(),
            channels: Mutex::default(),
            ephemeral_open: RwLock::new(true),
            forward: limits.forward,
            transport: network.transport().clone(),
            network,
            handoff: tokio::sync::Mutex::new(()),
            contact: Arc::default(),
        }
    }

    /// Admits one ephemeral operation: `None` once the tier is closed. Hold the guard
    /// for the whole operation (it must not span an await).
    pub fn enter_ephemeral(&self) -> Option<RwLockReadGuard<'_, bool>> {
        let guard = self.ephemeral_open.read().recover();
        (*guard).then_some(guard)
    }

    /// Stops the ephemeral tier; returns once no ephemeral operation runs.
    pub fn close_ephemeral(&self) {
        self.set_ephemeral(false);
    }

    /// Serves the ephemeral tier again after a leadership transfer (see
    /// `raft::handoff::transfer`); never once the member is stopping.
    pub fn reopen_ephemeral(&self) {
        if !self.stopping.is_cancelled() {
            self.set_ephemeral(true);
        }
    }

    fn set_ephemeral(&self, value: bool) {
        *self.ephemeral_open.write().recover() = value;
    }

    /// The applied state, read-locked: hold it only across synchronous work. An error
    /// only if the state machine's lock is poisoned (see `poison`).
    pub fn state(&self) -> Result<RwLockReadGuard<'_, Applied>, Status> {
        self.sm.read().map_err(|e| internal(e.to_string()))
    }

    pub fn header(&self) -> ResponseHeader {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        ResponseHeader {
            revision: self.sm.revision(),
            term: m.current_term,
            leader_id: m.current_leader.unwrap_or(0),
            member_id: self.id,
        }
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// The members of the current configuration: id, peer address, voter or not.
    pub fn members(&self) -> Vec<(NodeId, String, bool)> {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let nodes: BTreeMap<NodeId, BasicNode> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        nodes
            .into_iter()
            .map(|(id, n)| (id, n.addr, voters.contains(&id)))
            .collect()
    }

    /// The client address of member `id`, asking it over its peer port when not known.
    pub async fn client_addr_of(&self, id: NodeId) -> Option<String> {
        if id == self.id {
            return Some(self.client_addr.clone());
        }
        let peer_addr = self.members().into_iter().find(|(m, _, _)| *m == id)?.1;
        if let Some((p, c)) = self.client_addrs.lock().recover().get(&id) {
            if *p == peer_addr {
                return Some(c.clone());
            }
        }
        let info = peer_info(&self.transport, &peer_addr, Duration::from_secs(2))
            .await
            .ok()?;
        if info.node_id != id {
            tracing::warn!(
                id,
                peer_addr,
                answered = info.node_id,
                "peer address answers as another node"
            );
            return None;
        }
        self.client_addrs
            .lock()
            .recover()
            .insert(id, (peer_addr, info.client_addr.clone()));
        Some(info.client_addr)
    }

    /// The leader's client address, if there is a leader and it can be reached.
    pub async fn leader_client_addr(&self) -> Option<String> {
        self.client_addr_of(self.leader()?).await
    }

    /// A channel for forwarding to the leader at `client_addr`; `None` when this member
    /// does not forward.
    pub fn channel_to(&self, client_addr: &str) -> Option<Channel> {
        if !self.forward {
            return None;
        }
        let mut map = self.channels.lock().recover();
        if let Some(ch) = map.get(client_addr) {
            return Some(ch.clone());
        }
        let ch = PeerTransport::default().channel(client_addr).ok()?;
        map.insert(client_addr.to_owned(), ch.clone());
        Some(ch)
    }
}
