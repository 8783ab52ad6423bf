//! `kahuna`: the command-line client.
//!
//! Exit codes: 0 success; 1 error; 2 not acquired / compare failed; 3 not found;
//! 4 the lock was lost while `lock run` was running the command (which was stopped).
//! `lock run` otherwise exits with the command's own exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};
use kahuna_client::{
    CampaignOptions, Client, ClientOptions, ClientTls, ClusterStatus, DeleteCondition, DeleteOptions, Durability,
    GetOptions, HistoryEvent, KeyValue, Leader, LockGuard, LockInfo, LockOptions, Member, RatePolicy, ScanOptions,
    SetCondition, SetOptions, WatchOptions,
};
use serde_json::{json, Value};

const EXIT_NEGATIVE: u8 = 2;
const EXIT_NOT_FOUND: u8 = 3;
const EXIT_LOST: u8 = 4;

#[derive(Parser)]
#[command(name = "kahuna", version, about = "Command-line client for Kahuna")]
struct Cli {
    /// Members to talk to, comma-separated HOST:PORT (or https://HOST:PORT for TLS).
    #[arg(long, env = "KAHUNA_ENDPOINTS", default_value = kahuna_client::DEFAULT_ENDPOINT, value_delimiter = ',', global = true)]
    endpoints: Vec<String>,
    /// TLS: trust servers whose certificate chains to this CA (PEM) instead of the
    /// system's roots. Any TLS flag turns TLS on.
    #[arg(long, env = "KAHUNA_CACERT", global = true)]
    cacert: Option<PathBuf>,
    /// TLS: this client's certificate (PEM), for a cluster that requires one.
    #[arg(long = "cert", env = "KAHUNA_CERT", requires = "tls_key", global = true)]
    tls_cert: Option<PathBuf>,
    /// TLS: the private key of --cert (PEM).
    #[arg(long = "key", env = "KAHUNA_KEY", requires = "tls_cert", global = true)]
    tls_key: Option<PathBuf>,
    /// TLS: trust only a server certificate with this SHA-256 fingerprint (hex,
    /// colons allowed), whoever signed it.
    #[arg(long, env = "KAHUNA_PIN", conflicts_with = "cacert", global = true)]
    pin: Option<String>,
    /// A bearer token, for a cluster started with --auth-tokens.
    #[arg(long, env = "KAHUNA_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// TLS without checking the server's certificate at all. Development only.
    #[arg(long, conflicts_with_all = ["cacert", "pin"], global = true)]
    insecure_skip_verify: bool,
    /// One JSON object per result instead of human-readable text.
    #[arg(long, global = true)]
    json: bool,
    /// Deadline of each request, retries included (e.g. 500ms, 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration, global = true)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Keys and values.
    #[command(subcommand)]
    Kv(KvCmd),
    /// Locks.
    #[command(subcommand)]
    Lock(LockCmd),
    /// Sequences.
    #[command(subcommand)]
    Seq(SeqCmd),
    /// Campaign in election NAME and run COMMAND while leader: the epoch is in
    /// KAHUNA_ELECTION_EPOCH (and KAHUNA_FENCING_TOKEN). Candidates are elected in the
    /// order they campaigned; the command is stopped (SIGTERM, then SIGKILL) if
    /// leadership is lost (exit 4).
    Elect {
        name: String,
        /// What the leader announces to observers.
        #[arg(long, default_value = "")]
        value: String,
        /// The leader's lease, renewed at about a third of it.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        ttl: Duration,
        /// Give up after waiting this long to be elected (exit 2); default: wait.
        #[arg(long, value_parser = parse_duration)]
        wait: Option<Duration>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Check rate limiter NAME: take COST units if it has them (exit 2 when refused,
    /// with how long to wait). Exactly one policy: LIMIT/WINDOW (100/1m) for the
    /// windows, CAPACITY/RATE_PER_SECOND (20/5) for the token bucket.
    Rate {
        name: String,
        #[arg(long, value_parser = parse_window)]
        fixed_window: Option<(u64, Duration)>,
        #[arg(long, value_parser = parse_window)]
        sliding_window: Option<(u64, Duration)>,
        #[arg(long, value_parser = parse_bucket)]
        token_bucket: Option<(u64, u64)>,
        #[arg(long, default_value_t = 1)]
        cost: u64,
        #[command(flatten)]
        tier: Tier,
    },
    /// Show the leader of election NAME (exit 3 when none); with --follow, one line
    /// per change until interrupted.
    Leader {
        name: String,
        #[arg(long)]
        follow: bool,
    },
    /// Cluster status and membership.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Backups.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
}

#[derive(Subcommand)]
enum SnapshotCmd {
    /// Save the leader's state to FILE (written as FILE.part, checked against its
    /// sha-256, synced, then renamed). Restore with `kahuna-server --restore FILE`.
    Save { file: std::path::PathBuf },
}

#[derive(Args, Clone, Copy)]
struct Tier {
    /// Use the ephemeral (leader-memory) tier instead of the persistent one.
    #[arg(long)]
    ephemeral: bool,
}

impl Tier {
    fn durability(self) -> Durability {
        if self.ephemeral {
            Durability::Ephemeral
        } else {
            Durability::Persistent
        }
    }
}

/// The compares `kv set` and `kv del` share.
#[derive(Args)]
struct CompareFlags {
    /// Only if the current value is this.
    #[arg(long, conflicts_with = "if_revision")]
    if_value: Option<String>,
    /// Only if the key's mod revision is this (0: only if it does not exist).
    #[arg(long)]
    if_revision: Option<u64>,
}

impl CompareFlags {
    fn condition(self) -> SetCondition {
        match (self.if_value, self.if_revision) {
            (Some(v), _) => SetCondition::IfValue(v.into_bytes()),
            (None, Some(r)) => SetCondition::IfRevision(r),
            (None, None) => SetCondition::Always,
        }
    }

    /// `kv del` takes the compares only, which every delete condition is.
    fn delete_condition(self) -> DeleteCondition {
        match self.condition() {
            SetCondition::IfValue(v) => DeleteCondition::IfValue(v),
            SetCondition::IfRevision(r) => DeleteCondition::IfRevision(r),
            _ => DeleteCondition::Always,
        }
    }
}

/// The conditions of `kv set`. With [`CompareFlags::condition`], the one place the
/// flags become a [`SetCondition`].
#[derive(Args)]
struct SetConditionFlags {
    /// Only if the key does not exist.
    #[arg(long, conflicts_with_all = ["if_exists", "if_value", "if_revision"])]
    if_not_exists: bool,
    /// Only if the key exists.
    #[arg(long, conflicts_with_all = ["if_value", "if_revision"])]
    if_exists: bool,
    #[command(flatten)]
    compare: CompareFlags,
}

impl SetConditionFlags {
    fn condition(self) -> SetCondition {
        if self.if_not_exists {
            SetCondition::IfNotExists
        } else if self.if_exists {
            SetCondition::IfExists
        } else {
            self.compare.condition()
        }
    }
}

#[derive(Subcommand)]
enum KvCmd {
    /// Set a key (exit 2 when a condition does not hold).
    Set {
        key: String,
        value: String,
        /// Expire after this long.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
        #[command(flatten)]
        condition: SetConditionFlags,
        #[command(flatten)]
        tier: Tier,
    },
    /// Read a key (exit 3 when it does not exist).
    Get {
        key: String,
        /// Read as of this revision.
        #[arg(long)]
        revision: Option<u64>,
        #[command(flatten)]
        tier: Tier,
    },
    /// Delete a key (exit 2 when a condition does not hold, 3 when there was none).
    Del {
        key: String,
        #[command(flatten)]
        condition: CompareFlags,
        #[command(flatten)]
        tier: Tier,
    },
    /// List keys by prefix (all pages, or at most --limit keys).
    Scan {
        #[arg(default_value = "")]
        prefix: String,
        /// A range instead of a prefix: keys from this one (inclusive)...
        #[arg(long, conflicts_with = "prefix")]
        from: Option<String>,
        /// ...up to this one (exclusive; default: to the last key).
        #[arg(long, conflicts_with = "prefix")]
        to: Option<String>,
        /// At most this many keys.
        #[arg(long)]
        limit: Option<usize>,
        /// Leave values out.
        #[arg(long)]
        keys_only: bool,
        #[command(flatten)]
        tier: Tier,
    },
    /// Read several keys at one revision (one line per key that exists).
    Mget {
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        tier: Tier,
    },
    /// Write several KEY=VALUE pairs atomically, at one revision (at most 128).
    Mset {
        #[arg(required = true, value_parser = parse_pair)]
        pairs: Vec<(String, String)>,
    },
    /// Delete several keys atomically (prints how many existed).
    Mdel {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Show the retained changes of a key.
    History {
        key: String,
        /// At most this many events (newest).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Print every change to the keys under PREFIX as it is committed (revision, kind,
    /// key, value), resuming across member failures; runs until interrupted.
    Watch {
        #[arg(default_value = "")]
        prefix: String,
        /// Watch this one key, not the keys under it.
        #[arg(long)]
        exact: bool,
        /// Start with the changes at this revision (still retained) instead of new ones.
        #[arg(long, default_value_t = 0)]
        from_revision: u64,
        /// Exit after this many changes.
        #[arg(long)]
        count: Option<u64>,
        /// Also print the server's progress notifications ("nothing new up to N").
        #[arg(long)]
        progress: bool,
    },
}

#[derive(Subcommand)]
enum LockCmd {
    /// Run COMMAND while holding RESOURCE; the fencing token is in KAHUNA_FENCING_TOKEN.
    /// The command is stopped (SIGTERM, then SIGKILL) if the lock is lost (exit 4).
    Run {
        resource: String,
        /// Hold one permit of the semaphore RESOURCE of this many permits instead of
        /// the lock: up to N commands run at once (persistent only).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        permits: u32,
        /// Lease length; renewed at about a third of it.
        #[arg(long, value_parser = parse_duration)]
        ttl: Duration,
        /// Keep trying this long while someone else holds it (exit 2 if never acquired).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        wait: Duration,
        /// Pause between tries while waiting for an ephemeral lock (a persistent one
        /// waits in the server's queue).
        #[arg(long, default_value = "100ms", value_parser = parse_duration)]
        retry: Duration,
        #[command(flatten)]
        tier: Tier,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show who holds RESOURCE (exit 3 when nobody).
    Info {
        resource: String,
        #[command(flatten)]
        tier: Tier,
    },
}

#[derive(Subcommand)]
enum SeqCmd {
    /// Reserve the next COUNT identifiers of NAME.
    Next {
        name: String,
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Retrying with the same key returns the same range.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Show the next identifier NAME would hand out.
    Peek { name: String },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Leader, term, indexes and members.
    Status,
    /// List the members.
    Members,
    /// Add a member (started with --join) as a learner.
    AddLearner {
        id: u64,
        /// Its peer address, HOST:PORT.
        peer_addr: String,
    },
    /// Make a learner a voter.
    Promote { id: u64 },
    /// Remove a member (voter or learner). It stops once it learns it was removed.
    Remove { id: u64 },
    /// Make voter ID the leader (0: any voter that has caught up). The old leader keeps
    /// running as a follower. Refused when ID is not a member, is a learner, or has not
    /// caught up with the leader's log within an election timeout.
    TransferLeader { id: u64 },
}

/// `500ms`, `2s`, `1.5s`, `3m`, `1h`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 2s, 1m"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "us" => n / 1_000_000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

struct Out {
    json: bool,
}

impl Out {
    fn emit(&self, v: Value, human: impl FnOnce() -> String) {
        if self.json {
            println!("{v}");
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}

/// `LIMIT/WINDOW`, as `100/1m`.
fn parse_window(s: &str) -> Result<(u64, Duration), String> {
    let (limit, window) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not LIMIT/WINDOW (100/1m)"))?;
    let limit = limit.trim().parse().map_err(|_| format!("{limit:?} is not a number"))?;
    Ok((limit, parse_duration(window)?))
}

/// `CAPACITY/RATE_PER_SECOND`, as `20/5`.
fn parse_bucket(s: &str) -> Result<(u64, u64), String> {
    let (cap, rate) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not CAPACITY/RATE_PER_SECOND (20/5)"))?;
    let number = |x: &str| x.trim().parse::<u64>().map_err(|_| format!("{x:?} is not a number"));
    Ok((number(cap)?, number(rate)?))
}

/// `KEY=VALUE` (the value may contain `=`).
fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn kv_json(kv: &KeyValue) -> Value {
    json!({
        "key": kv.key,
        "value": kv.value_str(),
        "mod_revision": kv.mod_revision,
        "create_revision": kv.create_revision,
        "version": kv.version,
        "expires_at_ms": kv.expires_at_ms,
    })
}

fn lock_json(l: &LockInfo) -> Value {
    let mut v = json!({
        "resource": l.resource,
        "owner": l.owner,
        "fencing_token": l.fencing_token,
        "expires_at_ms": l.expires_at_ms,
        "remaining_ms": l.remaining.as_millis() as u64,
        "durability": l.durability.as_str(),
        "waiters": l.waiters,
    });
    if l.permits > 0 {
        v["permits"] = json!(l.permits);
        v["holders"] = json!(l.holders);
    }
    v
}

fn member_json(m: &Member) -> Value {
    let mut v = json!({
        "id": m.id,
        "peer_addr": m.peer_addr,
        "client_addr": m.client_addr,
        "role": if m.voter { "voter" } else { "learner" },
    });
    // Only the leader knows each member's replication: omitted elsewhere rather than
    // shown as 0 (caught up).
    if m.leader_view {
        v["matched_index"] = json!(m.matched_index);
        v["lag"] = json!(m.lag);
        v["answering"] = json!(m.answering);
        v["last_answer_ms"] = json!(m.last_answer_ms);
    }
    v
}

/// A member's replication as the leader sees it, for the human output.
fn replication_human(m: &Member) -> String {
    if !m.leader_view {
        return String::new();
    }
    let health = if m.answering {
        "answering".to_owned()
    } else if m.last_answer_ms == 0 {
        "NOT ANSWERING (never answered this leader)".to_owned()
    } else {
        format!("NOT ANSWERING (last answer {} ms ago)", m.last_answer_ms)
    };
    format!("\tmatched={}\tlag={}\t{health}", m.matched_index, m.lag)
}

fn members_human(members: &[Member]) -> String {
    members
        .iter()
        .map(|m| {
            format!(
                "{}\t{}\tclient={}\tpeer={}{}",
                m.id,
                if m.voter { "voter" } else { "learner" },
                m.client_addr,
                m.peer_addr,
                replication_human(m)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn status_json(s: &ClusterStatus) -> Value {
    json!({
        "member_id": s.member_id,
        "state": s.state,
        "leader_id": s.leader_id,
        "term": s.term,
        "committed_index": s.committed_index,
        "applied_index": s.applied_index,
        "last_log_index": s.last_log_index,
        "snapshot_index": s.snapshot_index,
        "storage": s.storage,
        "members": s.members.iter().map(member_json).collect::<Vec<_>>(),
        "usage": {
            "keys": s.usage.keys, "max_keys": s.usage.max_keys,
            "locks": s.usage.locks, "max_locks": s.usage.max_locks,
            "sequences": s.usage.sequences, "max_sequences": s.usage.max_sequences,
            "ephemeral_entries": s.usage.ephemeral_entries, "max_ephemeral_entries": s.usage.max_ephemeral_entries,
            "history_bytes": s.usage.history_bytes, "max_history_bytes": s.usage.max_history_bytes,
            "dedupe_clients": s.usage.dedupe_clients, "dedupe_answer_bytes": s.usage.dedupe_answer_bytes,
            "queued_proposals": s.usage.queued_proposals,
        },
    })
}

fn event_json(e: &HistoryEvent) -> Value {
    json!({ "kind": e.kind.as_str(), "revision": e.revision, "kv": kv_json(&e.kv) })
}

/// Output piped into `head` and the like: exit quietly when the reader goes away, as
/// command-line tools do, instead of panicking on the failed print.
#[cfg(unix)]
fn default_sigpipe() {
    // SAFETY: restores the default action of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

fn main() -> ExitCode {
    default_sigpipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KAHUNA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kahuna: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kahuna: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The TLS settings the flags ask for; `None` when no TLS flag is given (an
/// `https://` endpoint still turns TLS on, trusting the system's roots).
fn tls_options(cli: &Cli) -> anyhow::Result<Option<ClientTls>> {
    let read = |p: &Option<PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
        p.as_ref()
            .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
            .transpose()
    };
    let pins: Vec<String> = cli.pin.iter().cloned().collect();
    Ok(ClientTls::from_parts(
        read(&cli.cacert)?,
        &pins,
        cli.insecure_skip_verify,
        read(&cli.tls_cert)?,
        read(&cli.tls_key)?,
    )?)
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let options = ClientOptions {
        timeout: cli.timeout,
        tls: tls_options(&cli)?,
        token: cli.token.clone(),
        ..ClientOptions::default()
    };
    let client = Client::connect(&cli.endpoints, options)
        .await
        .with_context(|| format!("connecting to {}", cli.endpoints.join(",")))?;
    let out = Out { json: cli.json };
    match cli.command {
        Command::Kv(cmd) => kv(&client, &out, cmd).await,
        Command::Lock(cmd) => lock(&client, &out, cmd).await,
        Command::Seq(cmd) => seq(&client, &out, cmd).await,
        Command::Elect {
            name,
            value,
            ttl,
            wait,
            command,
        } => elect(&client, &out, name, value, CampaignOptions { ttl, wait }, command).await,
        Command::Leader { name, follow } => leader(&client, &out, &name, follow).await,
        Command::Rate {
            name,
            fixed_window,
            sliding_window,
            token_bucket,
            cost,
            tier,
        } => {
            let policy = match (fixed_window, sliding_window, token_bucket) {
                (Some((limit, window)), _, _) => RatePolicy::FixedWindow { limit, window },
                (_, Some((limit, window)), _) => RatePolicy::SlidingWindow { limit, window },
                (_, _, Some((capacity, refill_per_second))) => RatePolicy::TokenBucket {
                    capacity,
                    refill_per_second,
                },
                _ => anyhow::bail!("give one policy: --fixed-window, --sliding-window or --token-bucket"),
            };
            let d = client.check_rate_with(&name, policy, cost, tier.durability()).await?;
            let retry_ms = d.retry_after.as_millis() as u64;
            out.emit(
                json!({ "allowed": d.allowed, "remaining": d.remaining, "retry_after_ms": retry_ms }),
                || match d.allowed {
                    true => format!("allowed, {} left", d.remaining),
                    false => format!("refused: retry after {retry_ms} ms"),
                },
            );
            Ok(if d.allowed { 0 } else { EXIT_NEGATIVE })
        }
        Command::Cluster(cmd) => cluster(&client, &out, cmd).await,
        Command::Snapshot(SnapshotCmd::Save { file }) => snapshot_save(&client, &out, &file).await,
    }
}

async fn snapshot_save(client: &Client, out: &Out, file: &std::path::Path) -> anyhow::Result<u8> {
    use std::io::Write;
    let started = std::time::Instant::now();
    let mut part = file.as_os_str().to_owned();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    let written = async {
        let mut snapshot = client.snapshot().await?;
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(&part).with_context(|| format!("cannot create {}", part.display()))?,
        );
        while let Some(bytes) = snapshot.next().await? {
            w.write_all(&bytes)
                .with_context(|| format!("cannot write {}", part.display()))?;
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
            .with_context(|| format!("cannot sync {}", part.display()))?;
        anyhow::Ok(snapshot)
    }
    .await;
    let snapshot = match written {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, file).with_context(|| format!("cannot rename {} to {}", part.display(), file.display()))?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
    }
    let sha256 = snapshot.sha256().unwrap_or_default();
    out.emit(
        json!({ "file": file.display().to_string(), "revision": snapshot.revision, "keys": snapshot.keys,
                "bytes": snapshot.received(), "sha256": sha256, "member_id": snapshot.member_id,
                "seconds": started.elapsed().as_secs_f64() }),
        || {
            format!(
                "saved {}: revision {}, {} keys, {} bytes, sha256 {sha256}, from member {} in {:.1}s",
                file.display(),
                snapshot.revision,
                snapshot.keys,
                snapshot.received(),
                snapshot.member_id,
                started.elapsed().as_secs_f64()
            )
        },
    );
    Ok(0)
}

async fn kv(client: &Client, out: &Out, cmd: KvCmd) -> anyhow::Result<u8> {
    match cmd {
        KvCmd::Set {
            key,
            value,
            ttl,
            condition,
            tier,
        } => {
            let options = SetOptions {
                ttl,
                condition: condition.condition(),
                durability: tier.durability(),
                fence: None,
            };
            let r = client.set_with(&key, value, options).await?;
            out.emit(
                json!({ "succeeded": r.succeeded, "revision": r.revision, "kv": r.kv.as_ref().map(kv_json) }),
                || match (&r.succeeded, &r.kv) {
                    (true, Some(kv)) => format!("OK revision={}", kv.mod_revision),
                    (true, None) => "OK".into(),
                    (false, Some(kv)) => format!(
                        "compare failed: current value {:?} at revision {}",
                        kv.value_str(),
                        kv.mod_revision
                    ),
                    (false, None) => "compare failed: the key does not exist".into(),
                },
            );
            Ok(if r.succeeded { 0 } else { EXIT_NEGATIVE })
        }
        KvCmd::Get { key, revision, tier } => {
            let options = GetOptions {
                revision,
                durability: tier.durability(),
                ..GetOptions::default()
            };
            let kv = client.get_with(&key, options).await?;
            out.emit(
                json!({ "key": key, "found": kv.is_some(), "kv": kv.as_ref().map(kv_json) }),
                || match &kv {
                    Some(kv) => kv.value_str().into_owned(),
                    None => String::new(),
                },
            );
            if kv.is_none() && !out.json {
                eprintln!("kahuna: {key}: not found");
            }
            Ok(if kv.is_some() { 0 } else { EXIT_NOT_FOUND })
        }
        KvCmd::Del { key, condition, tier } => {
            let options = DeleteOptions {
                condition: condition.delete_condition(),
                durability: tier.durability(),
                fence: None,
            };
            let r = client.delete_with(&key, options).await?;
            out.emit(
                json!({ "key": key, "succeeded": r.succeeded, "deleted": r.deleted, "revision": r.revision, "kv": r.kv.as_ref().map(kv_json) }),
                || match (r.succeeded, r.deleted) {
                    (false, _) => "compare failed".into(),
                    (true, true) => "deleted".into(),
                    (true, false) => "not found".into(),
                },
            );
            Ok(match (r.succeeded, r.deleted) {
                (false, _) => EXIT_NEGATIVE,
                (true, false) => EXIT_NOT_FOUND,
                (true, true) => 0,
            })
        }
        KvCmd::Mget { keys, tier } => {
            let names: Vec<&str> = keys.iter().map(String::as_str).collect();
            let options = GetOptions {
                durability: tier.durability(),
                ..GetOptions::default()
            };
            let got = client.get_many(&names, options).await?;
            for kv in &got.kvs {
                out.emit(kv_json(kv), || format!("{}\t{}", kv.key, kv.value_str()));
            }
            Ok(if got.kvs.len() == keys.len() { 0 } else { EXIT_NOT_FOUND })
        }
        KvCmd::Mset { pairs } => {
            let items: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
            let revision = client.set_many(&items).await?;
            out.emit(json!({ "revision": revision, "keys": pairs.len() }), || {
                format!("OK revision={revision}")
            });
            Ok(0)
        }
        KvCmd::Mdel { keys } => {
            let names: Vec<&str> = keys.iter().map(String::as_str).collect();
            let deleted = client.delete_many(&names).await?;
            out.emit(json!({ "deleted": deleted }), || deleted.to_string());
            Ok(0)
        }
        KvCmd::Scan {
            prefix,
            from,
            to,
            limit,
            keys_only,
            tier,
        } => {
            let range = (from.is_some() || to.is_some()).then(|| (from.unwrap_or_default(), to.unwrap_or_default()));
            let mut options = ScanOptions {
                keys_only,
                durability: tier.durability(),
                ..ScanOptions::default()
            };
            let mut left = limit.unwrap_or(usize::MAX);
            while left > 0 {
                options.limit = left.min(1000) as u32;
                let page = match &range {
                    Some((start, end)) => client.scan_range(start, end, options.clone()).await?,
                    None => client.scan(&prefix, options.clone()).await?,
                };
                for kv in page.kvs.iter().take(left) {
                    out.emit(kv_json(kv), || {
                        if keys_only {
                            kv.key.clone()
                        } else {
                            format!("{}\t{}", kv.key, kv.value_str())
                        }
                    });
                }
                left = left.saturating_sub(page.kvs.len());
                match page.next_page_token {
                    Some(t) => options.page_token = Some(t),
                    None => break,
                }
            }
            Ok(0)
        }
        KvCmd::Watch {
            prefix,
            exact,
            from_revision,
            count,
            progress,
        } => {
            let options = WatchOptions {
                prefix: !exact,
                start_revision: from_revision,
                ..WatchOptions::default()
            };
            let mut watch = client.watch(&prefix, options).await?;
            let mut left = count.unwrap_or(u64::MAX);
            while left > 0 {
                let batch = watch.next().await?;
                if batch.is_progress() && progress {
                    out.emit(json!({ "progress": batch.revision }), || {
                        format!("{}\tprogress", batch.revision)
                    });
                }
                for e in batch.events.iter().take(left.min(usize::MAX as u64) as usize) {
                    out.emit(event_json(e), || {
                        format!(
                            "{}\t{}\t{}\t{}",
                            e.revision,
                            e.kind.as_str(),
                            e.kv.key,
                            e.kv.value_str()
                        )
                    });
                    left -= 1;
                }
            }
            Ok(0)
        }
        KvCmd::History { key, limit } => {
            let h = client.history(&key, limit).await?;
            for e in &h.events {
                out.emit(event_json(e), || {
                    format!("{}\t{}\t{}", e.revision, e.kind.as_str(), e.kv.value_str())
                });
            }
            Ok(0)
        }
    }
}

async fn lock(client: &Client, out: &Out, cmd: LockCmd) -> anyhow::Result<u8> {
    match cmd {
        LockCmd::Info { resource, tier } => {
            let info = client.lock_info(&resource, tier.durability()).await?;
            out.emit(
                json!({ "resource": resource, "held": info.is_some(), "lock": info.as_ref().map(lock_json) }),
                || match &info {
                    Some(l) if l.permits > 0 => format!(
                        "semaphore: {} of {} permits held, {} waiting",
                        l.holders, l.permits, l.waiters
                    ),
                    Some(l) => format!(
                        "held by {} token={} remaining={}ms",
                        l.owner,
                        l.fencing_token,
                        l.remaining.as_millis()
                    ),
                    None => "free".into(),
                },
            );
            Ok(if info.is_some() { 0 } else { EXIT_NOT_FOUND })
        }
        LockCmd::Run {
            resource,
            permits,
            ttl,
            wait,
            retry,
            tier,
            command,
        } => {
            // Our own owner name, so an interrupted wait can give back what it may
            // have been granted before exiting.
            let owner = format!("kahuna-cli-{}-{:016x}", std::process::id(), rand::random::<u64>());
            let options = LockOptions {
                ttl,
                wait,
                retry,
                durability: tier.durability(),
                owner: Some(owner.clone()),
            };
            // Listen for SIGINT/SIGTERM before asking for the lock: a signal that came
            // between the grant and the handler would kill us with the lock still held.
            let mut interrupted = interrupted();
            let guard = tokio::select! {
                guard = client.acquire_permit(&resource, permits, options) => guard?,
                sig = &mut interrupted => {
                    client.unlock(&resource, &owner, tier.durability()).await.ok();
                    return Ok(128 + sig as u8);
                }
            };
            let Some(token) = guard.fencing_token().filter(|_| guard.is_acquired()) else {
                out.emit(
                    json!({ "resource": resource, "acquired": false, "holder": guard.holder().map(lock_json) }),
                    || match guard.holder() {
                        Some(h) => format!("not acquired: held by {} (token {})", h.owner, h.fencing_token),
                        None => "not acquired".into(),
                    },
                );
                return Ok(EXIT_NEGATIVE);
            };
            let env = [
                ("KAHUNA_FENCING_TOKEN", token.to_string()),
                ("KAHUNA_LOCK_RESOURCE", resource.clone()),
            ];
            let what = format!("lock {resource}");
            run_held(out, &guard, &what, &command, &env, interrupted).await
        }
    }
}

/// Runs `command` while `guard` holds its lock (a lock, or an election's leadership
/// named by `what`), with `env` set; stops it if the lock is lost (exit 4) or this
/// process is interrupted; gives the lock back when the command ends.
async fn run_held(
    out: &Out,
    guard: &LockGuard,
    what: &str,
    command: &[String],
    env: &[(&str, String)],
    mut interrupted: Interrupted,
) -> anyhow::Result<u8> {
    let (program, args) = command.split_first().ok_or_else(|| anyhow!("no command given"))?;
    let token = guard.fencing_token().unwrap_or(0);
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let lost = guard.lost();
    let code = tokio::select! {
        status = child.wait() => {
            let status = status.context("waiting for the command")?;
            guard.release().await.ok();
            // A command killed by a signal exits like a shell reports it.
            status.code().map_or_else(|| 128 + signal_of(&status), |c| c as u8 as i32) as u8
        }
        _ = lost => {
            let why = guard.lost_reason().unwrap_or_else(|| "lost".into());
            eprintln!("kahuna: {what} lost ({why}); stopping the command");
            stop(&mut child).await;
            out.emit(json!({ "lost": what, "reason": why, "fencing_token": token }), String::new);
            EXIT_LOST
        }
        sig = &mut interrupted => {
            // Stop the command first, then give the lock back.
            stop(&mut child).await;
            guard.release().await.ok();
            128 + sig as u8
        }
    };
    Ok(code)
}

async fn elect(
    client: &Client,
    out: &Out,
    name: String,
    value: String,
    options: CampaignOptions,
    command: Vec<String>,
) -> anyhow::Result<u8> {
    // Listen for SIGINT/SIGTERM before campaigning: dropping the campaign withdraws it.
    let mut interrupted = interrupted();
    let leadership = tokio::select! {
        l = client.campaign(&name, value, options) => l?,
        sig = &mut interrupted => return Ok(128 + sig as u8),
    };
    let Some(leadership) = leadership else {
        let leader = client.election_leader(&name).await.ok().flatten();
        out.emit(
            json!({ "election": name, "elected": false, "leader": leader.as_ref().map(leader_json) }),
            || match &leader {
                Some(l) => format!("not elected: {} leads (epoch {})", l.owner, l.epoch),
                None => "not elected".into(),
            },
        );
        return Ok(EXIT_NEGATIVE);
    };
    let env = [
        ("KAHUNA_ELECTION_EPOCH", leadership.epoch().to_string()),
        ("KAHUNA_FENCING_TOKEN", leadership.epoch().to_string()),
        ("KAHUNA_ELECTION", name.clone()),
    ];
    let what = format!("leadership of {name}");
    run_held(out, leadership.guard(), &what, &command, &env, interrupted).await
}

fn leader_json(l: &Leader) -> Value {
    json!({ "owner": l.owner, "epoch": l.epoch, "value": l.value_str() })
}

async fn leader(client: &Client, out: &Out, name: &str, follow: bool) -> anyhow::Result<u8> {
    let show = |l: &Option<Leader>| {
        out.emit(
            json!({ "election": name, "leader": l.as_ref().map(leader_json) }),
            || match l {
                Some(l) => format!("{}\t{}\t{}", l.epoch, l.owner, l.value_str()),
                None => "none".into(),
            },
        )
    };
    if !follow {
        let l = client.election_leader(name).await?;
        show(&l);
        return Ok(if l.is_some() { 0 } else { EXIT_NOT_FOUND });
    }
    let mut observer = client.observe(name).await?;
    loop {
        show(&observer.next().await?);
    }
}

type Interrupted = std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>>;

/// Completes with the signal number when this process gets SIGINT or SIGTERM. The
/// handlers are installed when this is called, not when it is first awaited.
#[cfg(unix)]
fn interrupted() -> Interrupted {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => Box::pin(async move {
            tokio::select! {
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
            }
        }),
        _ => Box::pin(std::future::pending()),
    }
}

#[cfg(not(unix))]
fn interrupted() -> Interrupted {
    Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
        2
    })
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(0)
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> i32 {
    0
}

/// SIGTERM, then SIGKILL if the command has not exited within a second.
async fn stop(child: &mut tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on the pid of our own child process.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(1), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

async fn seq(client: &Client, out: &Out, cmd: SeqCmd) -> anyhow::Result<u8> {
    match cmd {
        SeqCmd::Next {
            name,
            count,
            idempotency_key,
        } => {
            let r = client.next(&name, count, idempotency_key.as_deref()).await?;
            out.emit(
                json!({ "name": name, "first": r.first, "count": r.count, "replayed": r.replayed }),
                || {
                    if r.count <= 1 {
                        r.first.to_string()
                    } else {
                        format!("{}..{}", r.first, r.first + r.count - 1)
                    }
                },
            );
            Ok(0)
        }
        SeqCmd::Peek { name } => {
            let next = client.peek_sequence(&name).await?;
            out.emit(json!({ "name": name, "next": next }), || next.to_string());
            Ok(0)
        }
    }
}

async fn cluster(client: &Client, out: &Out, cmd: ClusterCmd) -> anyhow::Result<u8> {
    match cmd {
        ClusterCmd::Status => {
            let s = client.status().await?;
            out.emit(status_json(&s), || {
                format!(
                    "member {} is {}; leader {} term {}\ncommitted {} applied {} last log {} snapshot {} storage {}\n\
                     holds keys {}/{} locks {}/{} sequences {}/{} ephemeral {}/{} history {}/{} bytes \
                     dedupe {} clients {} bytes queued {}\n{}",
                    s.member_id,
                    s.state,
                    s.leader_id,
                    s.term,
                    s.committed_index,
                    s.applied_index,
                    s.last_log_index,
                    s.snapshot_index,
                    s.storage,
                    s.usage.keys,
                    s.usage.max_keys,
                    s.usage.locks,
                    s.usage.max_locks,
                    s.usage.sequences,
                    s.usage.max_sequences,
                    s.usage.ephemeral_entries,
                    s.usage.max_ephemeral_entries,
                    s.usage.history_bytes,
                    s.usage.max_history_bytes,
                    s.usage.dedupe_clients,
                    s.usage.dedupe_answer_bytes,
                    s.usage.queued_proposals,
                    members_human(&s.members)
                )
            });
            Ok(0)
        }
        ClusterCmd::Members => {
            let members = client.members().await?;
            for m in &members {
                out.emit(member_json(m), || members_human(std::slice::from_ref(m)));
            }
            Ok(0)
        }
        ClusterCmd::AddLearner { id, peer_addr } => {
            if !peer_addr.contains(':') {
                bail!("peer address {peer_addr:?} is not HOST:PORT");
            }
            let members = client.add_learner(id, &peer_addr).await?;
            membership(out, members);
            Ok(0)
        }
        ClusterCmd::Promote { id } => {
            let members = client.promote(id).await?;
            membership(out, members);
            Ok(0)
        }
        ClusterCmd::Remove { id } => {
            let members = client.remove_member(id).await?;
            membership(out, members);
            Ok(0)
        }
        ClusterCmd::TransferLeader { id } => {
            let t = client.transfer_leader(id).await?;
            out.emit(json!({ "leader_id": t.leader_id, "term": t.term }), || {
                format!("member {} leads in term {}", t.leader_id, t.term)
            });
            Ok(0)
        }
    }
}

fn membership(out: &Out, members: Vec<Member>) {
    out.emit(
        json!({ "members": members.iter().map(member_json).collect::<Vec<_>>() }),
        || members_human(&members),
    );
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
