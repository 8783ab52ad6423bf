//! The `Sequences` service.

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::sequences_client::SequencesClient;
use kahuna_proto::v1::sequences_server::Sequences;
use kahuna_proto::ErrorKind;
use tonic::{Request, Response, Status};

use super::limits;
use super::{forward_unless_leader, Api};
use crate::capacity::Item;
use crate::errors::{internal, overloaded, status};
use crate::sm::sequences::MAX_KEYS_PER_SEQUENCE;
use crate::sm::{Op, Reply, SeqRefusal};

#[tonic::async_trait]
impl Sequences for Api {
    async fn next(&self, req: Request<pb::NextRequest>) -> Result<Response<pb::NextResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, SequencesClient, next);
        let r = req.into_inner();
        let name = limits::text("name", &r.name, limits::MAX_SEQUENCE_NAME_BYTES, false)?.to_owned();
        limits::sequence_count(r.count)?;
        let key = if r.idempotency_key.is_empty() {
            None
        } else {
            Some(
                limits::text(
                    "idempotency_key",
                    &r.idempotency_key,
                    limits::MAX_IDEMPOTENCY_KEY_BYTES,
                    false,
                )?
                .to_owned(),
            )
        };
        self.admit(Item::Sequences, |sm| {
            (sm.sequences.len(), usize::from(!sm.sequences.contains(&name)))
        })?;
        let op = Op::SeqNext {
            name: name.clone(),
            count: r.count,
            key,
            window_ms: self.node.idempotency_window.as_millis() as u64,
        };
        let p = self
            .propose(op, None, limits::request_id(r.request_id.as_ref())?)
            .await?;
        match p.reply {
            Reply::Seq(Ok(range)) => Ok(Response::new(pb::NextResponse {
                header: Some(p.header),
                first: range.first,
                count: range.count,
                replayed: range.replayed,
            })),
            Reply::Seq(Err(SeqRefusal::Exhausted)) => Err(status(
                ErrorKind::SequenceExhausted,
                format!("sequence {name:?} cannot hand out {} more identifiers", r.count),
            )),
            Reply::Seq(Err(SeqRefusal::KeysFull { free_at_ms })) => {
                let retry_after_ms = free_at_ms.saturating_sub(p.time_ms).max(1);
                Err(overloaded(
                    format!(
                        "sequence {name:?} already remembers {MAX_KEYS_PER_SEQUENCE} idempotency keys inside \
                         their window; a new key can be remembered in {retry_after_ms} ms (or reserve without a key)"
                    ),
                    retry_after_ms,
                ))
            }
            other => Err(internal(format!("state machine gave an unexpected answer: {other:?}"))),
        }
    }

    async fn peek(&self, req: Request<pb::PeekRequest>) -> Result<Response<pb::PeekResponse>, Status> {
        self.authorize(&req)?;
        if self.needs_leader(req.get_ref().consistency) {
            forward_unless_leader!(self, req, SequencesClient, peek);
        }
        let r = req.into_inner();
        let name = limits::text("name", &r.name, limits::MAX_SEQUENCE_NAME_BYTES, false)?;
        let (next, header) = self.read(r.consistency, |st, _| Ok(st.sm.sequences.peek(name))).await?;
        Ok(Response::new(pb::PeekResponse {
            header: Some(header),
            next,
        }))
    }
}
