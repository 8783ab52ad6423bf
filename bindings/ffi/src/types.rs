//! The `#[repr(C)]` types that cross the boundary. csbindgen turns each into a C# struct
//! of the same layout in `dotnet/src/NativeMethods.g.cs`.
//!
//! Ownership: every pointer in a request is borrowed for the duration of the call that
//! receives it (the callee copies what it keeps). Every pointer in a [`KahunaResult`] is
//! valid only while the callback runs, except [`KahunaResult::lock`], a new handle the
//! callee owns from then on and frees with `kahuna_lock_free`, and
//! [`KahunaResult::watch`] and [`KahunaResult::observer`], likewise freed with
//! `kahuna_watch_free` and `kahuna_observer_free`.

use std::os::raw::c_void;

/// `durability` of a request: a persistent (replicated) lock or key.
pub const KAHUNA_DURABILITY_PERSISTENT: i32 = 0;
/// `durability` of a request: an ephemeral (leader memory) lock or key.
pub const KAHUNA_DURABILITY_EPHEMERAL: i32 = 1;

/// The `condition` of a set or a delete: the one set-condition type of the ABI, exported
/// to C# by csbindgen (`Interop.Condition` makes it from `KeyValueFlags`).
///
/// The request fields hold it as an `i32`, not as this type: a foreign caller can write
/// any number there, and a Rust enum holding a value that is none of its variants is
/// undefined behaviour the moment it is read. The library converts the integer with a
/// checked `TryFrom<i32>`, so an unknown condition is `KAHUNA_STATUS_INVALID_ARGUMENT`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KahunaSetCondition {
    /// Always.
    Always = 0,
    /// Only when the key does not exist (sets only).
    IfNotExists = 1,
    /// Only when the key exists (sets only).
    IfExists = 2,
    /// Only when the value equals `compare_value`.
    IfValue = 3,
    /// Only when the mod revision equals `compare_revision`.
    IfRevision = 4,
}

impl KahunaSetCondition {
    /// Every condition: what the checked conversion from an `i32` looks through.
    pub(crate) const ALL: [KahunaSetCondition; 5] = [
        KahunaSetCondition::Always,
        KahunaSetCondition::IfNotExists,
        KahunaSetCondition::IfExists,
        KahunaSetCondition::IfValue,
        KahunaSetCondition::IfRevision,
    ];
}

/// The condition numbered `code`; the error is the unknown number.
impl TryFrom<i32> for KahunaSetCondition {
    type Error = i32;

    fn try_from(code: i32) -> Result<KahunaSetCondition, i32> {
        KahunaSetCondition::ALL
            .into_iter()
            .find(|c| *c as i32 == code)
            .ok_or(code)
    }
}

/// `policy` of a [`KahunaRateCheckRequest`]: at most `limit` units per window of
/// `window_ms`, windows aligned to cluster time.
pub const KAHUNA_RATE_FIXED_WINDOW: i32 = 0;
/// `policy` of a [`KahunaRateCheckRequest`]: at most `limit` units in any `window_ms`,
/// estimated from the current and the previous fixed window.
pub const KAHUNA_RATE_SLIDING_WINDOW: i32 = 1;
/// `policy` of a [`KahunaRateCheckRequest`]: a bucket of `limit` tokens refilled at
/// `refill_per_second`.
pub const KAHUNA_RATE_TOKEN_BUCKET: i32 = 2;

/// `kind` of a [`KahunaKeyEvent`]: the key was written.
pub const KAHUNA_EVENT_PUT: i32 = 0;
/// `kind` of a [`KahunaKeyEvent`]: the key was deleted.
pub const KAHUNA_EVENT_DELETE: i32 = 1;
/// `kind` of a [`KahunaKeyEvent`]: the key expired.
pub const KAHUNA_EVENT_EXPIRE: i32 = 2;

/// A borrowed byte string: `ptr` to `len` bytes (`ptr` may be null when `len` is 0).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaBytes {
    pub ptr: *const u8,
    pub len: usize,
}

/// Completion callback of every asynchronous call: `(user_data, status, result)`.
/// `status` is 0 on success, otherwise a `KAHUNA_STATUS_*` code and `result.message`
/// says why. Called exactly once per call, from a thread of the library's runtime.
pub type KahunaCallback = Option<unsafe extern "C" fn(user_data: u64, status: i32, result: *const KahunaResult)>;

/// Options of `kahuna_client_new`. A zero duration means the core client's default.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaClientOptions {
    /// Deadline of one call, retries included (default 10 s).
    pub timeout_ms: u64,
    /// Deadline of one attempt at one member (default 2 s).
    pub attempt_timeout_ms: u64,
    /// How long opening a connection may take (default 500 ms).
    pub connect_timeout_ms: u64,
    /// This client's id in request ids; empty picks a random one.
    pub client_id: KahunaBytes,
    /// PEM CA certificate(s) that sign the members' certificates; empty: the system's
    /// roots (for `https://` endpoints).
    pub ca_pem: KahunaBytes,
    /// PEM client certificate chain and its key, for a cluster that requires one
    /// (both or neither).
    pub client_cert_pem: KahunaBytes,
    pub client_key_pem: KahunaBytes,
    /// SHA-256 fingerprints of trusted server certificates (64 hex digits, `:` allowed),
    /// instead of a CA: `pins_len` entries at `pins`.
    pub pins: *const KahunaBytes,
    pub pins_len: usize,
    /// Non-zero: accept any server certificate (encrypted, not authenticated; for
    /// development only).
    pub insecure_skip_verify: u8,
    /// Bearer token sent with every request (a cluster started with `--auth-tokens`);
    /// empty: none.
    pub token: KahunaBytes,
}

/// A fence: the write applies only while `resource` is locked with `token`.
/// `present == 0` means no fence.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaFence {
    pub present: u8,
    pub resource: KahunaBytes,
    pub token: u64,
    /// `KAHUNA_DURABILITY_*` (the tier of the fencing lock).
    pub durability: i32,
}

/// `kahuna_kv_get`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaGetRequest {
    pub key: KahunaBytes,
    /// 0 = latest, else the revision to read at.
    pub revision: u64,
    /// `KAHUNA_DURABILITY_*`: 0 persistent, 1 ephemeral.
    pub durability: i32,
    /// 0 linearizable, 1 stale (local read).
    pub consistency: i32,
}

/// `kahuna_kv_set`. `condition`: a [`KahunaSetCondition`] (0 always, 1 if not exists,
/// 2 if exists, 3 if the value equals `compare_value`, 4 if the mod revision equals
/// `compare_revision`), as an `i32` (see there why).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaSetRequest {
    pub key: KahunaBytes,
    pub value: KahunaBytes,
    /// Time to live; 0 = no expiry.
    pub ttl_ms: u64,
    pub condition: i32,
    pub compare_value: KahunaBytes,
    pub compare_revision: u64,
    pub durability: i32,
    pub fence: KahunaFence,
}

/// `kahuna_kv_delete`. `condition`: a [`KahunaSetCondition`] as an `i32`: `Always`,
/// `IfValue` (the value equals `compare_value`) or `IfRevision` (the mod revision equals
/// `compare_revision`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaDeleteRequest {
    pub key: KahunaBytes,
    pub condition: i32,
    pub compare_value: KahunaBytes,
    pub compare_revision: u64,
    pub durability: i32,
    pub fence: KahunaFence,
}

/// `kahuna_kv_extend`: a new TTL for `key` (0 removes the expiry).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaExtendRequest {
    pub key: KahunaBytes,
    pub ttl_ms: u64,
    pub durability: i32,
}

/// `kahuna_kv_exists`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaExistsRequest {
    pub key: KahunaBytes,
    pub durability: i32,
    pub consistency: i32,
}

/// Which page of a scan to read, and how (`kahuna_kv_scan`, `kahuna_kv_scan_range`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaScanPageOptions {
    /// Page size; 0 = the server's default.
    pub limit: u32,
    /// Empty for the first page, else `next_page_token` of the previous one.
    pub page_token: KahunaBytes,
    pub keys_only: u8,
    pub durability: i32,
    pub consistency: i32,
}

/// `kahuna_kv_scan`: one page of keys starting with `prefix`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaScanRequest {
    pub prefix: KahunaBytes,
    pub page: KahunaScanPageOptions,
}

/// One compare of a transaction. `kind`: 0 value, 1 mod revision, 2 create revision,
/// 3 version, 4 exists, 5 missing, 6 lock fencing token (`key` is the lock resource).
/// `op`: 0 equal, 1 not equal, 2 greater, 3 less. `value` is used by kind 0,
/// `number` by kinds 1, 2, 3 and 6.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaCompare {
    pub kind: i32,
    pub op: i32,
    pub key: KahunaBytes,
    pub value: KahunaBytes,
    pub number: u64,
}

/// One operation of a transaction branch. `kind`: 0 set (`value`, `ttl_ms`, 0 = no
/// expiry), 1 delete, 2 get, 3 extend (`ttl_ms`, 0 = no expiry).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaTxnOp {
    pub kind: i32,
    pub key: KahunaBytes,
    pub value: KahunaBytes,
    pub ttl_ms: u64,
}

/// `kahuna_txn_commit`: `then` runs when every compare holds, else `otherwise`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaTxnRequest {
    pub compares: *const KahunaCompare,
    pub compares_len: usize,
    pub then_ops: *const KahunaTxnOp,
    pub then_len: usize,
    pub else_ops: *const KahunaTxnOp,
    pub else_len: usize,
    pub fence: KahunaFence,
}

/// `kahuna_sequence_next`: reserve `count` identifiers of sequence `name`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaSequenceRequest {
    pub name: KahunaBytes,
    pub count: u64,
    /// Empty = none; otherwise a retry with the same key returns the same range.
    pub idempotency_key: KahunaBytes,
}

/// `kahuna_lock_acquire`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaLockRequest {
    pub resource: KahunaBytes,
    pub ttl_ms: u64,
    /// How long to keep trying while someone else holds it (0 = one attempt).
    pub wait_ms: u64,
    /// Pause between attempts (0 = the core client's default).
    pub retry_ms: u64,
    pub durability: i32,
    /// Empty = a unique owner for this guard.
    pub owner: KahunaBytes,
}

/// `kahuna_lock_acquire_permit`: one permit of a semaphore (persistent only).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaPermitRequest {
    pub name: KahunaBytes,
    /// The semaphore's number of permits (1 to 10,000; 1 is the lock `name`).
    pub permits: u32,
    /// Each permit's lease; renewed at about a third of it while held.
    pub ttl_ms: u64,
    /// How long to wait in the semaphore's queue while every permit is held (0 = one attempt).
    pub wait_ms: u64,
    /// Pause between attempts (0 = the core client's default).
    pub retry_ms: u64,
    /// Empty = a unique owner for this permit.
    pub owner: KahunaBytes,
}

/// `kahuna_lock_unlock`: release `resource` if `owner` holds it (no guard needed).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaUnlockRequest {
    pub resource: KahunaBytes,
    pub owner: KahunaBytes,
    pub durability: i32,
}

/// `kahuna_lock_extend_by_owner`: renew `resource`'s lease for `ttl_ms` if `owner`
/// holds it (no guard needed; nothing renews it afterwards).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaLockExtendByOwnerRequest {
    pub resource: KahunaBytes,
    pub owner: KahunaBytes,
    pub ttl_ms: u64,
    pub durability: i32,
}

/// `kahuna_kv_history`: the retained changes of a persistent key, oldest first.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaHistoryRequest {
    pub key: KahunaBytes,
    /// At most this many events (0 = the server's default).
    pub limit: u32,
}

/// `kahuna_sequence_peek`: the next value `name` would hand out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaSequencePeekRequest {
    pub name: KahunaBytes,
}

/// `kahuna_watch_open`: every change to `key` (or, with `prefix != 0`, to every key
/// starting with it) from `start_revision` (0 = only changes made after the watch is
/// open).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaWatchRequest {
    pub key: KahunaBytes,
    pub prefix: u8,
    pub start_revision: u64,
    /// How often the server reports progress while nothing changes: 100 ms to 10
    /// minutes, 0 = the default (5 s).
    pub progress_interval_ms: u64,
}

/// `kahuna_election_campaign`: campaign in election `name` announcing `value`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaCampaignRequest {
    pub name: KahunaBytes,
    pub value: KahunaBytes,
    /// The leader's lease (must be positive), renewed at about a third of it: how long
    /// a dead leader holds the election up.
    pub ttl_ms: u64,
    /// 0: wait until elected (or cancelled); otherwise give up after `wait_ms`.
    pub wait: u8,
    pub wait_ms: u64,
}

/// `kahuna_election_proclaim`: the leader's new value.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaProclaimRequest {
    pub value: KahunaBytes,
}

/// `kahuna_election_leader`, `kahuna_election_observe`: the election's name.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaElectionRequest {
    pub name: KahunaBytes,
}

/// `kahuna_rate_check`: take `cost` units from limiter `name`, counting by `policy`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaRateCheckRequest {
    /// UTF-8, 1 to 1,024 bytes.
    pub name: KahunaBytes,
    /// `KAHUNA_RATE_FIXED_WINDOW`, `KAHUNA_RATE_SLIDING_WINDOW` or `KAHUNA_RATE_TOKEN_BUCKET`.
    pub policy: i32,
    /// Units per window (windows) or the bucket's capacity (token bucket).
    pub limit: u64,
    /// Window length in milliseconds (windows; at least 1).
    pub window_ms: u64,
    /// Tokens added per second (token bucket; at least 1).
    pub refill_per_second: u64,
    /// Units this request takes; 0 means 1. At most `limit`.
    pub cost: u64,
    /// `KAHUNA_DURABILITY_*`: a persistent (replicated, exactly once across retries) or
    /// ephemeral (leader memory) limiter.
    pub durability: i32,
}

/// `kahuna_kv_get_many`: read `keys` (1 to 1,000) at one revision.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaGetManyRequest {
    pub keys: *const KahunaBytes,
    pub keys_len: usize,
    pub durability: i32,
    pub consistency: i32,
}

/// One key and its value, for `kahuna_kv_set_many`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaKeyValuePair {
    pub key: KahunaBytes,
    pub value: KahunaBytes,
}

/// `kahuna_kv_set_many`: write every item atomically, at one revision (persistent keys,
/// at most 128).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaSetManyRequest {
    pub items: *const KahunaKeyValuePair,
    pub items_len: usize,
}

/// `kahuna_kv_delete_many`: delete `keys` atomically, at one revision (persistent keys,
/// at most 128).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaDeleteManyRequest {
    pub keys: *const KahunaBytes,
    pub keys_len: usize,
}

/// `kahuna_kv_scan_range`: one page of the keys in `[start, end)`, in byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaScanRangeRequest {
    /// First key of the range (empty: the first key).
    pub start: KahunaBytes,
    /// End of the range, excluded (empty: to the last key).
    pub end: KahunaBytes,
    pub page: KahunaScanPageOptions,
}

/// One change of a key's history.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaKeyEvent {
    /// `KAHUNA_EVENT_PUT`, `KAHUNA_EVENT_DELETE` or `KAHUNA_EVENT_EXPIRE`.
    pub kind: i32,
    /// The revision of the change.
    pub revision: u64,
    /// For a put the key as written; for delete/expire the key as it was.
    pub kv: KahunaKeyValue,
}

/// A member of the cluster.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaMember {
    pub id: u64,
    pub peer_addr: KahunaBytes,
    /// Empty when it could not be learned.
    pub client_addr: KahunaBytes,
    /// 1 voter, 0 learner.
    pub voter: u8,
    /// 1 when the member that answered is the leader: the fields below are then its view
    /// of this member's replication. 0 elsewhere, and they are 0 (only the leader knows).
    pub leader_view: u8,
    /// The highest log index known to be stored on this member.
    pub matched_index: u64,
    /// How many entries this member is behind the leader's last log index.
    pub lag: u64,
    /// 1 when it answered the leader within the last election timeout.
    pub answering: u8,
    /// Milliseconds since it last answered the leader (0: never, since this leader was
    /// elected).
    pub last_answer_ms: u64,
}

/// `kahuna_cluster_transfer_leader`: the voter to make the leader.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaTransferLeaderRequest {
    /// A voter's id; 0 = any voter whose log has caught up with the leader's.
    pub node_id: u64,
}

/// The cluster as one member (the leader, when there is one) sees it.
/// `present == 0` for every call but `kahuna_cluster_status` and
/// `kahuna_cluster_transfer_leader` (which sets only `leader_id` and `term`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaClusterStatus {
    pub present: u8,
    /// The member that answered.
    pub member_id: u64,
    /// The leader it knows (0 when none).
    pub leader_id: u64,
    pub term: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: KahunaBytes,
    pub members: *const KahunaMember,
    pub members_len: usize,
    pub committed_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub snapshot_index: u64,
    /// Storage engine.
    pub storage: KahunaBytes,
}

/// `kahuna_lock_get_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaLockInfoRequest {
    pub resource: KahunaBytes,
    pub durability: i32,
}

/// `kahuna_lock_extend`: renew the lease for `ttl_ms` (0 = the current TTL).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaLockExtendRequest {
    pub ttl_ms: u64,
}

/// A key as read or written. `present == 0` means there is no key (the other fields
/// are then zero); `succeeded` is the outcome of a transaction operation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaKeyValue {
    pub present: u8,
    pub succeeded: u8,
    pub key: KahunaBytes,
    pub value: KahunaBytes,
    pub mod_revision: u64,
    pub create_revision: u64,
    pub version: u64,
    /// Unix ms in the leader's clock; 0 = never expires.
    pub expires_at_ms: u64,
}

/// A lock as the server reports it (`present == 0`: nobody holds it); also an
/// election's leader (`fencing_token` is its epoch, `value` what it announces).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaLockInfo {
    pub present: u8,
    pub owner: KahunaBytes,
    pub fencing_token: u64,
    pub expires_at_ms: u64,
    pub remaining_ms: u64,
    /// What the holder announces (an election leader's value); empty for plain locks.
    pub value: KahunaBytes,
    /// Callers waiting in the lock's queue (`kahuna_lock_get_info` only; 0 elsewhere).
    pub waiters: u32,
    /// A semaphore's number of permits; 0 for a lock. For a semaphore, `owner`,
    /// `fencing_token` and the expiry are the caller's permit when it holds one, and
    /// otherwise no owner and the newest permit's token.
    pub permits: u32,
    /// A semaphore's permits held now; 0 for a lock.
    pub holders: u32,
}

/// What a call answers. Which fields are meaningful depends on the call; the others
/// are zero. Everything is valid only during the callback, except `lock`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KahunaResult {
    /// On failure: the error text (UTF-8).
    pub message: KahunaBytes,
    /// Compare/condition outcome (set, delete, extend, txn), `deleted` for delete,
    /// `exists` for exists, `replayed` for sequences, `acquired` for locks, `extended`
    /// for lock extend, `released` for release, `allowed` for rate checks.
    pub succeeded: u8,
    /// Delete: whether a key was deleted.
    pub deleted: u8,
    /// Store revision of the answer (exists: the key's mod revision; watch: every
    /// change up to it has been delivered).
    pub revision: u64,
    /// The key of a single-key call (get, set, delete, extend).
    pub kv: KahunaKeyValue,
    /// Scan: the page; txn: one entry per operation of the branch that ran; get many:
    /// the keys that exist, in the order asked.
    pub kvs: *const KahunaKeyValue,
    pub kvs_len: usize,
    /// Scan: token of the next page (empty on the last page).
    pub next_page_token: KahunaBytes,
    /// Sequences: the range `[first, first + count)`. Delete many: `count` is how many
    /// of the keys existed.
    pub first: u64,
    pub count: u64,
    /// Lock acquire, election campaign: a new lock handle owned by the callee (null on
    /// failure, and for a campaign that was not elected).
    pub lock: *mut c_void,
    /// Lock acquire / get info: the holder. Election leader, observer next: the leader
    /// (`present == 0`: none). Extend by owner: the caller's lock after
    /// the extend, or the current holder when refused.
    pub lock_info: KahunaLockInfo,
    /// History, watch next: the events, oldest first (a watch's next without events
    /// is a progress notification: nothing changed up to `revision`).
    pub events: *const KahunaKeyEvent,
    pub events_len: usize,
    /// History: revisions below this are no longer retained.
    pub retained_from_revision: u64,
    /// Cluster status; transfer leader: `leader_id` and `term` only.
    pub cluster: KahunaClusterStatus,
    /// Watch open: a new watch handle owned by the callee (null on failure).
    pub watch: *mut c_void,
    /// Election observe: a new observer handle owned by the callee (null on failure).
    pub observer: *mut c_void,
    /// Rate check: units left now.
    pub remaining: u64,
    /// Rate check, when not allowed: how long until the same check would be.
    pub retry_after_ms: u64,
}
