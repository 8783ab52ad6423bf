//! Incoming Raft RPCs on the peer port, handed to the local openraft instance.

use kahuna_proto::v1::peer_server::Peer;
use kahuna_proto::v1::{InfoRequest, InfoResponse, PeerMessage};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::types::Raft;

pub struct PeerService {
    raft: Raft,
    info: InfoResponse,
}

impl PeerService {
    pub fn new(raft: Raft, info: InfoResponse) -> Self {
        Self { raft, info }
    }
}

fn decode<T: DeserializeOwned>(req: Request<PeerMessage>) -> Result<T, Status> {
    bincode::deserialize(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable peer message: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Response<PeerMessage>, Status> {
    let data = bincode::serialize(value).map_err(|e| Status::internal(format!("cannot encode peer reply: {e}")))?;
    Ok(Response::new(PeerMessage { data }))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, req: Request<PeerMessage>) -> Result<Response<PeerMessage>, Status> {
        encode(&self.raft.append_entries(decode(req)?).await)
    }

    async fn vote(&self, req: Request<PeerMessage>) -> Result<Response<PeerMessage>, Status> {
        encode(&self.raft.vote(decode(req)?).await)
    }

    async fn install_snapshot(&self, req: Request<PeerMessage>) -> Result<Response<PeerMessage>, Status> {
        encode(&self.raft.install_snapshot(decode(req)?).await)
    }

    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(self.info.clone()))
    }
}
