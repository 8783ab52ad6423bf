//! The `Kv` service.

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::kv_client::KvClient;
use kahuna_proto::v1::kv_server::Kv;
use tonic::{Code, Request, Response, Status};

use super::errors::{internal, invalid, status};
use super::limits;
use super::{forward_unless_leader, Api};
use crate::sm::{self, Conditions, DeleteOp, EventKind, Op, Reply, SetOp};

fn to_pb(kv: sm::KeyValue) -> pb::KeyValue {
    pb::KeyValue {
        key: kv.key,
        value: kv.value,
        mod_revision: kv.mod_revision,
        create_revision: kv.create_revision,
        version: kv.version,
        expires_at_ms: kv.expires_at_ms,
    }
}

fn conditions(
    if_not_exists: bool,
    if_exists: bool,
    compare_value: Option<Vec<u8>>,
    compare_revision: Option<u64>,
) -> Result<Conditions, Status> {
    if if_not_exists && if_exists {
        return Err(invalid("if_not_exists and if_exists cannot both be set"));
    }
    if let Some(v) = &compare_value {
        limits::value(v)?;
    }
    Ok(Conditions {
        if_not_exists,
        if_exists,
        compare_value,
        compare_revision,
    })
}

fn unexpected(reply: Reply) -> Status {
    internal(format!("state machine gave an unexpected answer: {reply:?}"))
}

#[tonic::async_trait]
impl Kv for Api {
    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::SetResponse>, Status> {
        forward_unless_leader!(self, req, KvClient, set);
        let r = req.into_inner();
        limits::key(&r.key)?;
        limits::value(&r.value)?;
        limits::key_ttl(r.ttl_ms)?;
        let op = Op::Set(SetOp {
            key: r.key,
            value: r.value,
            ttl_ms: r.ttl_ms,
            conditions: conditions(r.if_not_exists, r.if_exists, r.compare_value, r.compare_revision)?,
        });
        match self.propose(op, limits::request_id(r.request_id.as_ref())?).await? {
            (Reply::Write { succeeded, kv }, header) => Ok(Response::new(pb::SetResponse {
                header: Some(header),
                succeeded,
                kv: kv.map(to_pb),
            })),
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        if Api::needs_leader(req.get_ref().consistency) {
            forward_unless_leader!(self, req, KvClient, get);
        }
        let r = req.into_inner();
        limits::key(&r.key)?;
        let (kv, header) = self
            .read(r.consistency, |st, now| {
                if r.revision == 0 {
                    return Ok(st.sm.kv.get(now, &r.key));
                }
                let applied = st.revision();
                if r.revision > applied {
                    return Err(status(
                        Code::OutOfRange,
                        "FUTURE_REVISION",
                        format!("revision {} is ahead of the latest revision {applied}", r.revision),
                    ));
                }
                st.sm.kv.get_at(applied, now, &r.key, r.revision).map_err(
                    |sm::HistoryError::Compacted { retained_from }| {
                        status(
                            Code::OutOfRange,
                            "COMPACTED",
                            format!(
                                "revision {} is no longer retained; the oldest retained revision is {retained_from}",
                                r.revision
                            ),
                        )
                    },
                )
            })
            .await?;
        Ok(Response::new(pb::GetResponse {
            header: Some(header),
            kv: kv.map(to_pb),
        }))
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        forward_unless_leader!(self, req, KvClient, delete);
        let r = req.into_inner();
        limits::key(&r.key)?;
        let op = Op::Delete(DeleteOp {
            key: r.key,
            conditions: conditions(false, false, r.compare_value, r.compare_revision)?,
        });
        match self.propose(op, limits::request_id(r.request_id.as_ref())?).await? {
            (Reply::Delete { succeeded, deleted, kv }, header) => Ok(Response::new(pb::DeleteResponse {
                header: Some(header),
                succeeded,
                deleted,
                kv: kv.map(to_pb),
            })),
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn extend(&self, req: Request<pb::ExtendRequest>) -> Result<Response<pb::ExtendResponse>, Status> {
        forward_unless_leader!(self, req, KvClient, extend);
        let r = req.into_inner();
        limits::key(&r.key)?;
        limits::key_ttl(r.ttl_ms)?;
        let op = Op::Extend {
            key: r.key,
            ttl_ms: r.ttl_ms,
        };
        match self.propose(op, limits::request_id(r.request_id.as_ref())?).await? {
            (Reply::Write { succeeded, kv }, header) => Ok(Response::new(pb::ExtendResponse {
                header: Some(header),
                succeeded,
                kv: kv.map(to_pb),
            })),
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn exists(&self, req: Request<pb::ExistsRequest>) -> Result<Response<pb::ExistsResponse>, Status> {
        if Api::needs_leader(req.get_ref().consistency) {
            forward_unless_leader!(self, req, KvClient, exists);
        }
        let r = req.into_inner();
        limits::key(&r.key)?;
        let (kv, header) = self
            .read(r.consistency, |st, now| Ok(st.sm.kv.get(now, &r.key)))
            .await?;
        Ok(Response::new(pb::ExistsResponse {
            header: Some(header),
            exists: kv.is_some(),
            mod_revision: kv.map_or(0, |k| k.mod_revision),
        }))
    }

    async fn scan(&self, req: Request<pb::ScanRequest>) -> Result<Response<pb::ScanResponse>, Status> {
        if Api::needs_leader(req.get_ref().consistency) {
            forward_unless_leader!(self, req, KvClient, scan);
        }
        let r = req.into_inner();
        limits::text("prefix", &r.prefix, limits::MAX_KEY_BYTES, true)?;
        let limit = limits::page("limit", r.limit, limits::DEFAULT_SCAN_LIMIT, limits::MAX_SCAN_LIMIT)?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            limits::key(&r.page_token)?;
            if !r.page_token.starts_with(&r.prefix) {
                return Err(invalid("page_token does not belong to a scan of this prefix"));
            }
            Some(r.page_token.as_slice())
        };
        let ((kvs, more), header) = self
            .read(r.consistency, |st, now| {
                Ok(st
                    .sm
                    .kv
                    .scan(now, &r.prefix, after, limit, limits::MAX_PAGE_BYTES, r.keys_only))
            })
            .await?;
        let next_page_token = if more {
            kvs.last().map(|k| k.key.clone()).unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::ScanResponse {
            header: Some(header),
            kvs: kvs.into_iter().map(to_pb).collect(),
            next_page_token,
        }))
    }

    async fn history(&self, req: Request<pb::HistoryRequest>) -> Result<Response<pb::HistoryResponse>, Status> {
        if Api::needs_leader(req.get_ref().consistency) {
            forward_unless_leader!(self, req, KvClient, history);
        }
        let r = req.into_inner();
        limits::key(&r.key)?;
        let limit = limits::page(
            "limit",
            r.limit,
            limits::DEFAULT_HISTORY_LIMIT,
            limits::MAX_HISTORY_LIMIT,
        )?;
        let ((events, retained_from_revision), header) = self
            .read(r.consistency, |st, _| {
                Ok((
                    st.sm.kv.history(&r.key, limit, limits::MAX_PAGE_BYTES),
                    sm::retained_from(st.revision()),
                ))
            })
            .await?;
        let events = events
            .into_iter()
            .map(|e| pb::KeyEvent {
                kind: match e.kind {
                    EventKind::Put => pb::EventKind::Put,
                    EventKind::Delete => pb::EventKind::Delete,
                    EventKind::Expire => pb::EventKind::Expire,
                } as i32,
                kv: Some(to_pb(e.kv)),
                revision: e.revision,
            })
            .collect();
        Ok(Response::new(pb::HistoryResponse {
            header: Some(header),
            events,
            retained_from_revision,
        }))
    }
}
