//! Who may do what on the client port. Without `--auth-tokens` everything is open
//! (local development). With it, every request must carry a credential the file
//! names, and the credential's role must allow the request on every name it touches.
//!
//! The file holds one grant per line, `CREDENTIAL ROLE [PREFIX]`, `#` comments:
//! - `CREDENTIAL` is `sha256:<64 hex>`, the SHA-256 of a bearer token (clients send
//!   `authorization: Bearer <token>`; the file never holds the token itself:
//!   `printf %s "$TOKEN" | sha256sum`), or `cert-sha256:<64 hex>`, the SHA-256
//!   fingerprint of a client certificate (with `--tls-client-ca`).
//! - `ROLE` is `admin` (everything: membership, snapshots, any name), `readwrite`
//!   (reads and writes of keys, locks and sequences, cluster status) or `readonly`
//!   (reads and cluster status).
//! - `PREFIX`, for `readwrite` and `readonly`, restricts the role to key, lock and
//!   sequence names that start with it.
//!
//! The file is read at start (a bad line stops the start) and on SIGHUP (a bad file
//! keeps the grants in use).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use kahuna_proto::v1 as pb;
use kahuna_proto::ErrorKind;
use tonic::{Request, Status};

use crate::errors::status;
use crate::poison::Recover;

/// The metadata entry holding the bearer token.
pub const AUTHORIZATION_KEY: &str = "authorization";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    ReadWrite,
    ReadOnly,
}

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reads of data or of the cluster's status.
    Read,
    /// Changes to keys, locks and sequences.
    Write,
    /// Membership and snapshots.
    Admin,
}

impl Role {
    fn allows(self, action: Action) -> bool {
        match self {
            Role::Admin => true,
            Role::ReadWrite => action != Action::Admin,
            Role::ReadOnly => action == Action::Read,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadWrite => "readwrite",
            Role::ReadOnly => "readonly",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Credential {
    Token([u8; 32]),
    Certificate([u8; 32]),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Grant {
    role: Role,
    prefix: Option<Vec<u8>>,
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Parses the grants file; the error names the line.
fn parse(text: &str) -> Result<HashMap<Credential, Grant>, String> {
    let mut grants = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |m: &str| format!("line {}: {m}", n + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(2..=3).contains(&fields.len()) {
            return Err(at("expected `CREDENTIAL ROLE [PREFIX]`"));
        }
        let credential = if let Some(h) = fields[0].strip_prefix("sha256:") {
            Credential::Token(hex32(h).ok_or_else(|| at("sha256: needs 64 hex digits (the token's SHA-256)"))?)
        } else if let Some(h) = fields[0].strip_prefix("cert-sha256:") {
            Credential::Certificate(hex32(h).ok_or_else(|| at("cert-sha256: needs 64 hex digits"))?)
        } else {
            return Err(at(
                "the credential is `sha256:<hex>` (a token's hash; the file never holds a token) or \
                 `cert-sha256:<hex>`",
            ));
        };
        let role = match fields[1] {
            "admin" => Role::Admin,
            "readwrite" => Role::ReadWrite,
            "readonly" => Role::ReadOnly,
            other => return Err(at(&format!("unknown role {other:?} (admin, readwrite, readonly)"))),
        };
        let prefix = fields.get(2).map(|p| p.as_bytes().to_vec());
        if role == Role::Admin && prefix.is_some() {
            return Err(at("admin cannot be restricted to a prefix"));
        }
        if grants.insert(credential, Grant { role, prefix }).is_some() {
            return Err(at("this credential is granted twice"));
        }
    }
    Ok(grants)
}

/// The grants in force, reloadable.
pub struct Auth {
    path: PathBuf,
    grants: RwLock<Arc<HashMap<Credential, Grant>>>,
}

impl Auth {
    pub fn load(path: &Path) -> anyhow::Result<Arc<Auth>> {
        let grants = Self::read(path)?;
        Ok(Arc::new(Auth {
            path: path.to_owned(),
            grants: RwLock::new(Arc::new(grants)),
        }))
    }

    fn read(path: &Path) -> anyhow::Result<HashMap<Credential, Grant>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--auth-tokens {}: cannot read: {e}", path.display()))?;
        parse(&text).map_err(|e| anyhow::anyhow!("--auth-tokens {}: {e}", path.display()))
    }

    /// Reads the file again; on an error the grants in use stay.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let grants = Self::read(&self.path)?;
        let n = grants.len();
        *self.grants.write().recover() = Arc::new(grants);
        Ok(n)
    }

    /// Whether the request may do `action` on every one of `names`.
    pub fn check<T>(&self, req: &Request<T>, action: Action, names: &[&[u8]]) -> Result<(), Status> {
        let grants = self.grants.read().recover().clone();
        let token = req
            .metadata()
            .get(AUTHORIZATION_KEY)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
        let grant = match token {
            Some(t) => grants.get(&Credential::Token(sha256(t.as_bytes()))),
            None => None,
        }
        .or_else(|| {
            // A client certificate the handshake verified (tonic keeps the chain).
            let certs = req.peer_certs()?;
            let leaf = certs.first()?;
            grants.get(&Credential::Certificate(sha256(leaf.as_ref())))
        });
        let Some(grant) = grant else {
            let why = if token.is_some() {
                "the token is not one this cluster accepts"
            } else {
                "this cluster requires a token (authorization: Bearer ...) or a known client certificate"
            };
            return Err(status(ErrorKind::Unauthenticated, why));
        };
        if !grant.role.allows(action) {
            return Err(status(
                ErrorKind::PermissionDenied,
                format!("role {} may not {}", grant.role.name(), describe(action)),
            ));
        }
        if let Some(prefix) = &grant.prefix {
            if let Some(name) = names.iter().find(|n| !n.starts_with(prefix)) {
                return Err(status(
                    ErrorKind::PermissionDenied,
                    format!(
                        "role {} is restricted to names starting with {:?}; {:?} does not",
                        grant.role.name(),
                        String::from_utf8_lossy(prefix),
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::Read => "read",
        Action::Write => "write",
        Action::Admin => "change membership or leadership, or take snapshots",
    }
}

/// What a request does and the names it touches.
pub trait Access {
    fn access(&self) -> (Action, Vec<&[u8]>);
}

fn with_fence<'a>(mut names: Vec<&'a [u8]>, fence: &'a Option<pb::Fence>) -> Vec<&'a [u8]> {
    if let Some(f) = fence {
        names.push(&f.resource);
    }
    names
}

macro_rules! access {
    ($($ty:ty => |$r:ident| $body:expr;)*) => {
        $(impl Access for $ty {
            fn access(&self) -> (Action, Vec<&[u8]>) {
                let $r = self;
                $body
            }
        })*
    };
}

access! {
    pb::SetRequest => |r| (Action::Write, with_fence(vec![&r.key], &r.fence));
    pb::DeleteRequest => |r| (Action::Write, with_fence(vec![&r.key], &r.fence));
    pb::ExtendRequest => |r| (Action::Write, vec![&r.key]);
    pb::GetRequest => |r| (Action::Read, vec![&r.key]);
    pb::ExistsRequest => |r| (Action::Read, vec![&r.key]);
    pb::ScanRequest => |r| (Action::Read, scan_names(r));
    pb::GetManyRequest => |r| (Action::Read, r.keys.iter().map(Vec::as_slice).collect());
    pb::HistoryRequest => |r| (Action::Read, vec![&r.key]);
    pb::WatchRequest => |r| (Action::Read, vec![&r.key]);
    pb::TxnRequest => |r| txn_access(r);
    pb::TryLockRequest => |r| (Action::Write, vec![&r.resource]);
    pb::ExtendLockRequest => |r| (Action::Write, vec![&r.resource]);
    pb::UnlockRequest => |r| (Action::Write, vec![&r.resource]);
    pb::GetLockRequest => |r| (Action::Read, vec![&r.resource]);
    pb::ProclaimRequest => |r| (Action::Write, vec![&r.resource]);
    pb::ObserveRequest => |r| (Action::Read, vec![&r.resource]);
    pb::NextRequest => |r| (Action::Write, vec![&r.name]);
    pb::PeekRequest => |r| (Action::Read, vec![&r.name]);
    pb::RateCheckRequest => |r| (Action::Write, vec![&r.name]);
    pb::StatusRequest => |_r| (Action::Read, Vec::new());
    pb::AddLearnerRequest => |_r| (Action::Admin, Vec::new());
    pb::ChangeMembershipRequest => |_r| (Action::Admin, Vec::new());
    pb::TriggerSnapshotRequest => |_r| (Action::Admin, Vec::new());
    pb::TransferLeaderRequest => |_r| (Action::Admin, Vec::new());
    pb::RemoveMemberRequest => |_r| (Action::Admin, Vec::new());
    pb::SnapshotRequest => |_r| (Action::Admin, Vec::new());
}

/// A prefix scan names its prefix; a range scan both ends, so a role restricted to a
/// prefix may scan a range only inside it (an open end is outside every prefix).
fn scan_names(r: &pb::ScanRequest) -> Vec<&[u8]> {
    if r.range_start.is_empty() && r.range_end.is_empty() {
        vec![&r.prefix]
    } else {
        vec![&r.range_start, &r.range_end]
    }
}

/// A transaction writes if any branch writes; it touches every key it compares or
/// operates on.
fn txn_access(r: &pb::TxnRequest) -> (Action, Vec<&[u8]>) {
    use pb::txn_op::Op;
    let mut names: Vec<&[u8]> = r.compare.iter().map(|c| c.key.as_slice()).collect();
    let mut action = Action::Read;
    for op in r.then.iter().chain(&r.otherwise).filter_map(|o| o.op.as_ref()) {
        let (key, writes) = match op {
            Op::Set(s) => (&s.key, true),
            Op::Delete(d) => (&d.key, true),
            Op::Extend(e) => (&e.key, true),
            Op::Get(g) => (&g.key, false),
        };
        names.push(key);
        if writes {
            action = Action::Write;
        }
    }
    (action, with_fence(names, &r.fence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_hex(token: &str) -> String {
        sha256(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    fn req_with(token: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(t) = token {
            r.metadata_mut()
                .insert(AUTHORIZATION_KEY, format!("Bearer {t}").parse().expect("metadata"));
        }
        r
    }

    fn auth(text: &str) -> Auth {
        Auth {
            path: PathBuf::new(),
            grants: RwLock::new(Arc::new(parse(text).expect("parse"))),
        }
    }

    #[test]
    fn roles_and_prefixes() {
        let a = auth(&format!(
            "# grants\nsha256:{} admin\nsha256:{} readwrite billing/\nsha256:{} readonly\n",
            hash_hex("root"),
            hash_hex("rw"),
            hash_hex("ro")
        ));
        let code =
            |t: Option<&str>, action, names: &[&[u8]]| a.check(&req_with(t), action, names).map_err(|s| s.code());
        assert_eq!(code(Some("root"), Action::Admin, &[]), Ok(()));
        assert_eq!(code(Some("rw"), Action::Write, &[b"billing/x"]), Ok(()));
        assert_eq!(
            code(Some("rw"), Action::Write, &[b"orders/x"]),
            Err(tonic::Code::PermissionDenied)
        );
        assert_eq!(code(Some("rw"), Action::Admin, &[]), Err(tonic::Code::PermissionDenied));
        assert_eq!(code(Some("ro"), Action::Read, &[b"any"]), Ok(()));
        assert_eq!(
            code(Some("ro"), Action::Write, &[b"any"]),
            Err(tonic::Code::PermissionDenied)
        );
        assert_eq!(code(Some("nope"), Action::Read, &[]), Err(tonic::Code::Unauthenticated));
        assert_eq!(code(None, Action::Read, &[]), Err(tonic::Code::Unauthenticated));
    }

    #[test]
    fn bad_files_name_the_line() {
        assert!(parse("token admin").unwrap_err().contains("line 1"));
        assert!(parse(&format!("\nsha256:{} boss", hash_hex("x")))
            .unwrap_err()
            .contains("line 2"));
        assert!(parse(&format!("sha256:{} admin some/", hash_hex("x"))).is_err());
        assert!(parse("sha256:abc readonly").is_err());
        let twice = format!("sha256:{h} readonly\nsha256:{h} admin", h = hash_hex("x"));
        assert!(parse(&twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn transactions_write_if_any_branch_writes() {
        let get = pb::TxnOp {
            op: Some(pb::txn_op::Op::Get(pb::TxnGet { key: b"a".to_vec() })),
        };
        let set = pb::TxnOp {
            op: Some(pb::txn_op::Op::Set(pb::TxnSet {
                key: b"b".to_vec(),
                ..Default::default()
            })),
        };
        let read = pb::TxnRequest {
            then: vec![get.clone()],
            ..Default::default()
        };
        assert_eq!(read.access().0, Action::Read);
        let write = pb::TxnRequest {
            then: vec![get],
            otherwise: vec![set],
            ..Default::default()
        };
        let (action, names) = write.access();
        assert_eq!(action, Action::Write);
        assert_eq!(names, vec![b"a".as_slice(), b"b".as_slice()]);
    }
}
