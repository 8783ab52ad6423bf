//! The `Kv` service.

use kahuna_proto::v1 as pb;
use kahuna_proto::v1::kv_client::KvClient;
use kahuna_proto::v1::kv_server::Kv;
use kahuna_proto::v1::Durability;
use kahuna_proto::ErrorKind;
use tonic::{Request, Response, Status};

use super::limits;
use super::{forward_unless_leader, Api};
use crate::capacity::Item;
use crate::errors::{self, internal, invalid, status};
use crate::sm::txn::{CmpOp, Compare, Step, Target, Txn};
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

/// The keys a scan covers: a prefix, or a range `[range_start, range_end)`.
fn scanned(r: &pb::ScanRequest) -> Result<sm::Keys, Status> {
    limits::text("prefix", &r.prefix, limits::MAX_KEY_BYTES, true)?;
    limits::text("range_start", &r.range_start, limits::MAX_KEY_BYTES, true)?;
    limits::text("range_end", &r.range_end, limits::MAX_KEY_BYTES, true)?;
    if r.range_start.is_empty() && r.range_end.is_empty() {
        return Ok(sm::Keys::Prefix(r.prefix.clone()));
    }
    if !r.prefix.is_empty() {
        return Err(invalid(
            "a scan takes a prefix or a range (range_start, range_end), not both",
        ));
    }
    if !r.range_end.is_empty() && r.range_end <= r.range_start {
        return Err(invalid(
            "range_end must come after range_start: the range is [range_start, range_end)",
        ));
    }
    Ok(sm::Keys::Range {
        start: r.range_start.clone(),
        end: r.range_end.clone(),
    })
}

/// Keys one GetMany may ask for.
pub const MAX_GET_MANY_KEYS: usize = 1000;

/// The keys of `keys` that exist, in order, within the page budget.
fn get_many(kv: &sm::KvStore, now: u64, keys: &[Vec<u8>]) -> Result<Vec<pb::KeyValue>, Status> {
    let mut out = Vec::new();
    let mut bytes = 0;
    for key in keys {
        if let Some(found) = kv.get(now, key) {
            bytes += found.key.len() + found.value.len() + sm::ENTRY_OVERHEAD_BYTES;
            if bytes > limits::MAX_PAGE_BYTES {
                return Err(errors::full(format!(
                    "the answer would hold more than {} bytes of keys and values (the limit of one answer); \
                     ask for fewer keys",
                    limits::MAX_PAGE_BYTES
                )));
            }
            out.push(to_pb(found));
        }
    }
    Ok(out)
}

pub(super) fn event_to_pb(e: sm::Event) -> pb::KeyEvent {
    pb::KeyEvent {
        kind: match e.kind {
            EventKind::Put => pb::EventKind::Put,
            EventKind::Delete => pb::EventKind::Delete,
            EventKind::Expire => pb::EventKind::Expire,
        } as i32,
        kv: Some(to_pb(e.kv)),
        revision: e.revision,
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

fn durability(raw: i32) -> Result<Durability, Status> {
    limits::enumeration::<Durability>("durability", raw)
}

impl Api {
    /// An ephemeral key's TTL: required, and at most `--max-ephemeral-ttl-ms`, the
    /// longest a new leader has to wait out after a failover.
    fn ephemeral_key_ttl(&self, ttl_ms: u64) -> Result<(), Status> {
        let max = self.node.ephemeral.max_ttl().as_millis() as u64;
        limits::bounded_ttl(ttl_ms, max, "ephemeral keys")
    }

    /// Ephemeral keys live only on the leader: every request for one goes there.
    fn kv_needs_leader(&self, consistency: i32, durability: i32) -> bool {
        self.needs_leader(consistency) || durability == Durability::Ephemeral as i32
    }
}

fn write_response(reply: Reply) -> Result<(bool, Option<pb::KeyValue>), Status> {
    match reply {
        Reply::Write { succeeded, kv } => Ok((succeeded, kv.map(to_pb))),
        other => Err(unexpected(other)),
    }
}

fn txn_step(op: pb::TxnOp) -> Result<Step, Status> {
    use pb::txn_op::Op as O;
    Ok(match op.op {
        Some(O::Set(s)) => {
            limits::key(&s.key)?;
            limits::value(&s.value)?;
            limits::key_ttl(s.ttl_ms)?;
            Step::Set {
                key: s.key,
                value: s.value,
                ttl_ms: s.ttl_ms,
            }
        }
        Some(O::Delete(d)) => {
            limits::key(&d.key)?;
            Step::Delete { key: d.key }
        }
        Some(O::Get(g)) => {
            limits::key(&g.key)?;
            Step::Get { key: g.key }
        }
        Some(O::Extend(e)) => {
            limits::key(&e.key)?;
            limits::key_ttl(e.ttl_ms)?;
            Step::Extend {
                key: e.key,
                ttl_ms: e.ttl_ms,
            }
        }
        None => return Err(invalid("a transaction operation names no operation")),
    })
}

fn txn_compare(c: pb::Compare) -> Result<Compare, Status> {
    let target = match limits::enumeration::<pb::CompareTarget>("compare.target", c.target)? {
        pb::CompareTarget::Value => Target::Value,
        pb::CompareTarget::ModRevision => Target::ModRevision,
        pb::CompareTarget::CreateRevision => Target::CreateRevision,
        pb::CompareTarget::Version => Target::Version,
        pb::CompareTarget::Exists => Target::Exists,
        pb::CompareTarget::LockToken => Target::LockToken,
    };
    if target == Target::LockToken {
        limits::resource("compare.key", &c.key)?;
    } else {
        limits::key(&c.key)?;
    }
    limits::value(&c.value)?;
    let op = match limits::enumeration::<pb::CompareOp>("compare.op", c.op)? {
        pb::CompareOp::Equal => CmpOp::Equal,
        pb::CompareOp::NotEqual => CmpOp::NotEqual,
        pb::CompareOp::Greater => CmpOp::Greater,
        pb::CompareOp::Less => CmpOp::Less,
    };
    Ok(Compare {
        key: c.key,
        target,
        op,
        value: c.value,
        number: c.number,
    })
}

#[tonic::async_trait]
impl Kv for Api {
    type WatchStream = super::watch::WatchStream;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<Self::WatchStream>, Status> {
        self.open_watch(req).await
    }

    async fn set(&self, req: Request<pb::SetRequest>) -> Result<Response<pb::SetResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, KvClient, set);
        let r = req.into_inner();
        limits::key(&r.key)?;
        limits::value(&r.value)?;
        limits::key_ttl(r.ttl_ms)?;
        let tier = durability(r.durability)?;
        let op = SetOp {
            key: r.key,
            value: r.value,
            ttl_ms: r.ttl_ms,
            conditions: conditions(r.if_not_exists, r.if_exists, r.compare_value, r.compare_revision)?,
        };
        let (reply, header) = match tier {
            Durability::Persistent => {
                let fence = self.log_fence(r.fence.as_ref())?;
                let request = limits::request_id(r.request_id.as_ref())?;
                self.admit(Item::Keys, |sm| (sm.kv.len(), usize::from(!sm.kv.contains(&op.key))))?;
                let p = self.propose(Op::Set(op), fence, request).await?;
                (p.reply, p.header)
            }
            Durability::Ephemeral => {
                self.ephemeral_key_ttl(op.ttl_ms)?;
                self.admit_ephemeral(|t| !t.kv.contains(&op.key))?;
                self.ephemeral_write(r.fence.as_ref(), |kv, rev, now| kv.set(rev, now, &op))
                    .await?
            }
        };
        let (succeeded, kv) = write_response(reply)?;
        Ok(Response::new(pb::SetResponse {
            header: Some(header),
            succeeded,
            kv,
        }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.authorize(&req)?;
        if self.kv_needs_leader(req.get_ref().consistency, req.get_ref().durability) {
            forward_unless_leader!(self, req, KvClient, get);
        }
        let r = req.into_inner();
        limits::key(&r.key)?;
        if durability(r.durability)? == Durability::Ephemeral {
            if r.revision != 0 {
                return Err(invalid("reads at a revision are for persistent keys only"));
            }
            let (kv, header, _) = self.ephemeral(|tier, now| tier.kv.get(now, &r.key)).await?;
            return Ok(Response::new(pb::GetResponse {
                header: Some(header),
                kv: kv.map(to_pb),
            }));
        }
        let (kv, header) = self
            .read(r.consistency, |st, now| {
                if r.revision == 0 {
                    return Ok(st.sm.kv.get(now, &r.key));
                }
                let applied = st.revision();
                if r.revision > applied {
                    return Err(status(
                        ErrorKind::FutureRevision,
                        format!("revision {} is ahead of the latest revision {applied}", r.revision),
                    ));
                }
                st.sm.kv.get_at(applied, now, &r.key, r.revision).map_err(
                    |sm::HistoryError::Compacted { retained_from }| {
                        status(
                            ErrorKind::Compacted,
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

    async fn get_many(&self, req: Request<pb::GetManyRequest>) -> Result<Response<pb::GetManyResponse>, Status> {
        self.authorize(&req)?;
        if self.kv_needs_leader(req.get_ref().consistency, req.get_ref().durability) {
            forward_unless_leader!(self, req, KvClient, get_many);
        }
        let r = req.into_inner();
        if r.keys.is_empty() || r.keys.len() > MAX_GET_MANY_KEYS {
            return Err(invalid(format!(
                "keys has {} entries; it must have 1 to {MAX_GET_MANY_KEYS}",
                r.keys.len()
            )));
        }
        for key in &r.keys {
            limits::key(key)?;
        }
        let (kvs, header) = match durability(r.durability)? {
            Durability::Persistent => {
                self.read(r.consistency, |st, now| get_many(&st.sm.kv, now, &r.keys))
                    .await?
            }
            Durability::Ephemeral => {
                let (kvs, header, _) = self.ephemeral(|tier, now| get_many(&tier.kv, now, &r.keys)).await?;
                (kvs?, header)
            }
        };
        Ok(Response::new(pb::GetManyResponse {
            header: Some(header),
            kvs,
        }))
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, KvClient, delete);
        let r = req.into_inner();
        limits::key(&r.key)?;
        let op = DeleteOp {
            key: r.key,
            conditions: conditions(false, false, r.compare_value, r.compare_revision)?,
        };
        let (reply, header) = match durability(r.durability)? {
            Durability::Persistent => {
                let fence = self.log_fence(r.fence.as_ref())?;
                let request = limits::request_id(r.request_id.as_ref())?;
                let p = self.propose(Op::Delete(op), fence, request).await?;
                (p.reply, p.header)
            }
            Durability::Ephemeral => {
                self.ephemeral_write(r.fence.as_ref(), |kv, rev, now| kv.delete(rev, now, &op))
                    .await?
            }
        };
        match reply {
            Reply::Delete { succeeded, deleted, kv } => Ok(Response::new(pb::DeleteResponse {
                header: Some(header),
                succeeded,
                deleted,
                kv: kv.map(to_pb),
            })),
            other => Err(unexpected(other)),
        }
    }

    async fn extend(&self, req: Request<pb::ExtendRequest>) -> Result<Response<pb::ExtendResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, KvClient, extend);
        let r = req.into_inner();
        limits::key(&r.key)?;
        limits::key_ttl(r.ttl_ms)?;
        let (reply, header) = match durability(r.durability)? {
            Durability::Persistent => {
                let op = Op::Extend {
                    key: r.key,
                    ttl_ms: r.ttl_ms,
                };
                let p = self
                    .propose(op, None, limits::request_id(r.request_id.as_ref())?)
                    .await?;
                (p.reply, p.header)
            }
            Durability::Ephemeral => {
                self.ephemeral_key_ttl(r.ttl_ms)?;
                let (reply, header, _) = self
                    .ephemeral(|tier, now| tier.kv.extend(now, &r.key, r.ttl_ms))
                    .await?;
                (reply, header)
            }
        };
        let (succeeded, kv) = write_response(reply)?;
        Ok(Response::new(pb::ExtendResponse {
            header: Some(header),
            succeeded,
            kv,
        }))
    }

    async fn exists(&self, req: Request<pb::ExistsRequest>) -> Result<Response<pb::ExistsResponse>, Status> {
        self.authorize(&req)?;
        if self.kv_needs_leader(req.get_ref().consistency, req.get_ref().durability) {
            forward_unless_leader!(self, req, KvClient, exists);
        }
        let r = req.into_inner();
        limits::key(&r.key)?;
        let (kv, header) = match durability(r.durability)? {
            Durability::Persistent => {
                self.read(r.consistency, |st, now| Ok(st.sm.kv.get(now, &r.key)))
                    .await?
            }
            Durability::Ephemeral => {
                let (kv, header, _) = self.ephemeral(|tier, now| tier.kv.get(now, &r.key)).await?;
                (kv, header)
            }
        };
        Ok(Response::new(pb::ExistsResponse {
            header: Some(header),
            exists: kv.is_some(),
            mod_revision: kv.map_or(0, |k| k.mod_revision),
        }))
    }

    async fn scan(&self, req: Request<pb::ScanRequest>) -> Result<Response<pb::ScanResponse>, Status> {
        self.authorize(&req)?;
        if self.kv_needs_leader(req.get_ref().consistency, req.get_ref().durability) {
            forward_unless_leader!(self, req, KvClient, scan);
        }
        let r = req.into_inner();
        let keys = scanned(&r)?;
        let limit = limits::page("limit", r.limit, limits::DEFAULT_SCAN_LIMIT, limits::MAX_SCAN_LIMIT)?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            limits::key(&r.page_token)?;
            if !keys.covers(&r.page_token) {
                return Err(invalid("page_token does not belong to a scan of this prefix or range"));
            }
            Some(r.page_token.as_slice())
        };
        let scan = |kv: &sm::KvStore, now| kv.scan(now, &keys, after, limit, limits::MAX_PAGE_BYTES, r.keys_only);
        let ((kvs, next), header) = match durability(r.durability)? {
            Durability::Persistent => self.read(r.consistency, |st, now| Ok(scan(&st.sm.kv, now))).await?,
            Durability::Ephemeral => {
                let (page, header, _) = self.ephemeral(|tier, now| scan(&tier.kv, now)).await?;
                (page, header)
            }
        };
        let next_page_token = next.unwrap_or_default();
        Ok(Response::new(pb::ScanResponse {
            header: Some(header),
            kvs: kvs.into_iter().map(to_pb).collect(),
            next_page_token,
        }))
    }
    async fn history(&self, req: Request<pb::HistoryRequest>) -> Result<Response<pb::HistoryResponse>, Status> {
        self.authorize(&req)?;
        if self.needs_leader(req.get_ref().consistency) {
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
                    st.sm.kv.retained_from(st.revision()),
                ))
            })
            .await?;
        let events = events.into_iter().map(event_to_pb).collect();
        Ok(Response::new(pb::HistoryResponse {
            header: Some(header),
            events,
            retained_from_revision,
        }))
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        self.authorize(&req)?;
        forward_unless_leader!(self, req, KvClient, txn);
        let r = req.into_inner();
        let ops = r.compare.len() + r.then.len() + r.otherwise.len();
        if ops > limits::MAX_TXN_OPS {
            return Err(invalid(format!(
                "transaction has {ops} compares and operations; the limit is {}",
                limits::MAX_TXN_OPS
            )));
        }
        let txn = Txn {
            compares: r.compare.into_iter().map(txn_compare).collect::<Result<_, _>>()?,
            then: r.then.into_iter().map(txn_step).collect::<Result<_, _>>()?,
            otherwise: r.otherwise.into_iter().map(txn_step).collect::<Result<_, _>>()?,
        };
        let fence = self.log_fence(r.fence.as_ref())?;
        self.admit(Item::Keys, |sm| (sm.kv.len(), txn.new_keys(&sm.kv)))?;
        let p = self
            .propose(Op::Txn(txn), fence, limits::request_id(r.request_id.as_ref())?)
            .await?;
        match p.reply {
            Reply::Txn { succeeded, results } => Ok(Response::new(pb::TxnResponse {
                header: Some(p.header),
                succeeded,
                results: results
                    .into_iter()
                    .map(|s| pb::TxnOpResult {
                        succeeded: s.succeeded,
                        kv: s.kv.map(to_pb),
                    })
                    .collect(),
            })),
            other => Err(unexpected(other)),
        }
    }
}
