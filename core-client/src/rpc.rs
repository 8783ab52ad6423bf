//! The shapes of a call: which gRPC method each request goes to (one table), and one
//! helper per shape that sends a request through [`Client::call`]'s retries and
//! deadlines: a unary request, a unary request whose every attempt is fresh, and a
//! server stream opened with its first message. Which failures are retried stays with
//! its table in [`crate::retry`].

use std::future::Future;
use std::time::{Duration, Instant};

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::cluster_client::ClusterClient;
use kahuna_proto::v1::kv_client::KvClient;
use kahuna_proto::v1::locks_client::LocksClient;
use kahuna_proto::v1::rate_limits_client::RateLimitsClient;
use kahuna_proto::v1::sequences_client::SequencesClient;
use tonic::{Response, Status, Streaming};

use crate::client::{request, Client, HasHeader, Transport};
use crate::error::Result;
use crate::retry::Safety;

/// A unary request: the method it is sent to, and its name in traces.
pub(crate) trait Unary: Clone + Send + Sync + 'static {
    type Reply: HasHeader + Send;
    /// The call's name in traces and logs.
    const WHAT: &'static str;
    /// One attempt at `channel`, which the server gives up after `timeout`.
    fn send(
        self,
        channel: Transport,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<Self::Reply>, Status>> + Send;
}

macro_rules! unary {
    ($($what:literal: $req:ident => $service:ident::$method:ident -> $reply:ident;)*) => {
        $(impl Unary for pb::$req {
            type Reply = pb::$reply;
            const WHAT: &'static str = $what;
            fn send(
                self,
                channel: Transport,
                timeout: Duration,
            ) -> impl Future<Output = Result<Response<pb::$reply>, Status>> + Send {
                async move { $service::new(channel).$method(request(self, timeout)).await }
            }
        })*
    };
}

unary! {
    "kv.get": GetRequest => KvClient::get -> GetResponse;
    "kv.get_many": GetManyRequest => KvClient::get_many -> GetManyResponse;
    "kv.set": SetRequest => KvClient::set -> SetResponse;
    "kv.delete": DeleteRequest => KvClient::delete -> DeleteResponse;
    "kv.extend": ExtendRequest => KvClient::extend -> ExtendResponse;
    "kv.exists": ExistsRequest => KvClient::exists -> ExistsResponse;
    "kv.scan": ScanRequest => KvClient::scan -> ScanResponse;
    "kv.history": HistoryRequest => KvClient::history -> HistoryResponse;
    "kv.txn": TxnRequest => KvClient::txn -> TxnResponse;
    "lock.try_lock": TryLockRequest => LocksClient::try_lock -> TryLockResponse;
    "lock.extend": ExtendLockRequest => LocksClient::extend -> ExtendLockResponse;
    "lock.unlock": UnlockRequest => LocksClient::unlock -> UnlockResponse;
    "lock.get": GetLockRequest => LocksClient::get_lock -> GetLockResponse;
    "election.proclaim": ProclaimRequest => LocksClient::proclaim -> ProclaimResponse;
    "seq.next": NextRequest => SequencesClient::next -> NextResponse;
    "seq.peek": PeekRequest => SequencesClient::peek -> PeekResponse;
    "rate.check": RateCheckRequest => RateLimitsClient::check -> RateCheckResponse;
    "cluster.status": StatusRequest => ClusterClient::status -> StatusResponse;
    "cluster.add_learner": AddLearnerRequest => ClusterClient::add_learner -> MembershipResponse;
    "cluster.change_membership": ChangeMembershipRequest => ClusterClient::change_membership -> MembershipResponse;
    "cluster.remove_member": RemoveMemberRequest => ClusterClient::remove_member -> MembershipResponse;
    "cluster.transfer_leader": TransferLeaderRequest => ClusterClient::transfer_leader -> TransferLeaderResponse;
    "cluster.trigger_snapshot": TriggerSnapshotRequest => ClusterClient::trigger_snapshot -> TriggerSnapshotResponse;
}

/// Requests that are idempotent for their owner (try-lock, extend-lock): every attempt
/// carries a request id of its own rather than a deduplicated replay of the first.
pub(crate) trait Fresh: Unary {
    fn with_request_id(self, id: pb::RequestId) -> Self;
}

impl Fresh for pb::TryLockRequest {
    fn with_request_id(self, id: pb::RequestId) -> Self {
        pb::TryLockRequest {
            request_id: Some(id),
            ..self
        }
    }
}

impl Fresh for pb::ExtendLockRequest {
    fn with_request_id(self, id: pb::RequestId) -> Self {
        pb::ExtendLockRequest {
            request_id: Some(id),
            ..self
        }
    }
}

/// An open server stream and its first message.
pub(crate) struct Opened<T> {
    pub first: T,
    pub stream: Streaming<T>,
}

impl<T: HasHeader> HasHeader for Opened<T> {
    fn header(&self) -> Option<&pb::ResponseHeader> {
        self.first.header()
    }
}

impl Client {
    /// Sends `msg` (the same request on every attempt) and returns the reply.
    pub(crate) async fn unary<R: Unary>(&self, safety: Safety, msg: R) -> Result<R::Reply> {
        self.call(R::WHAT, safety, |channel, timeout| msg.clone().send(channel, timeout))
            .await
    }

    /// Sends `msg` with a fresh request id on every attempt; returns the answer and when
    /// the attempt that answered was sent, which is where a lease it grants or renews is
    /// measured from (a deduplicated replay would carry a lease that started at an
    /// earlier, unknown time).
    pub(crate) async fn unary_fresh<R: Fresh>(&self, msg: &R) -> (Result<R::Reply>, Instant) {
        let mut sent = Instant::now();
        let answer = self
            .call(R::WHAT, Safety::Idempotent, |channel, timeout| {
                sent = Instant::now();
                msg.clone().with_request_id(self.request_id()).send(channel, timeout)
            })
            .await;
        (answer, sent)
    }

    /// Opens a server stream with `open(channel, msg)` and waits for its first message,
    /// which must pass `began` (else the attempt failed with `ended`); retried like any
    /// read. The request has no deadline, since the stream lives as long as its reader
    /// keeps it; the attempt's timeout bounds only the wait for the first message.
    pub(crate) async fn open_stream<M, T, F, Fut>(
        &self,
        what: &'static str,
        msg: &M,
        open: F,
        began: fn(&T) -> bool,
        ended: &'static str,
    ) -> Result<Opened<T>>
    where
        M: Clone,
        T: HasHeader,
        F: Fn(Transport, M) -> Fut,
        Fut: Future<Output = Result<Response<Streaming<T>>, Status>>,
    {
        self.call(what, Safety::Idempotent, |channel, _| {
            let opening = open(channel, msg.clone());
            async move {
                let mut stream = opening.await?.into_inner();
                match stream.message().await? {
                    Some(first) if began(&first) => Ok(Response::new(Opened { first, stream })),
                    _ => Err(Status::unavailable(ended)),
                }
            }
        })
        .await
    }
}
