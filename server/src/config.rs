//! Server configuration: one struct, from flags or `KAHUNA_*` environment variables.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::store::StorageKind;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "kahuna-server",
    version,
    about = "Kahuna coordination service: one member of a Raft cluster"
)]
pub struct Config {
    /// This member's id, unique in the cluster.
    #[arg(long, env = "KAHUNA_NODE_ID", default_value_t = 1)]
    pub node_id: u64,

    /// Address for clients (gRPC).
    #[arg(long, env = "KAHUNA_LISTEN", default_value = "127.0.0.1:2070")]
    pub listen: String,

    /// Address for other members (Raft traffic).
    #[arg(long, env = "KAHUNA_PEER_LISTEN", default_value = "127.0.0.1:2071")]
    pub peer_listen: String,

    /// Address for the operations port (HTTP): /metrics (Prometheus), /livez, /readyz,
    /// /log-level. Off unless given; request metrics are recorded only when it is on.
    /// It has no authentication (anyone reaching it can change the log level): keep it
    /// on a private network.
    #[arg(long, env = "KAHUNA_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,

    /// Log lines as `text` or `json` (one object per line, with the request id of the
    /// request being served). The filter comes from RUST_LOG (default
    /// "info,openraft=warn") and can be changed while running: PUT /log-level on the
    /// operations port.
    #[arg(long, env = "KAHUNA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: crate::logging::LogFormat,

    /// Client address other members and clients are told to use (default: --listen).
    #[arg(long, env = "KAHUNA_ADVERTISE_CLIENT")]
    pub advertise_client: Option<String>,

    /// Where state lives; created if missing.
    #[arg(long, env = "KAHUNA_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Storage engine for the log and state.
    #[arg(long, env = "KAHUNA_STORAGE", value_enum, default_value = "rocksdb")]
    pub storage: StorageKind,

    /// The founding members as "ID=PEER_ADDR,..." (default: this member alone).
    /// Used once, when the data directory is new; ignored afterwards.
    #[arg(long, env = "KAHUNA_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,

    /// Seed a new cluster of this member alone from a backup file (`kahuna snapshot
    /// save`), in an empty data directory. Every key keeps its value and revision; add
    /// members afterwards with --join. A data directory already restored from the same
    /// file starts as usual, so the flag may stay on a container's command line.
    #[arg(long, env = "KAHUNA_RESTORE", conflicts_with = "join")]
    pub restore: Option<PathBuf>,

    /// Start empty and wait to be added to an existing cluster (add-learner).
    #[arg(long, env = "KAHUNA_JOIN")]
    pub join: bool,

    /// Leader heartbeat interval in milliseconds.
    #[arg(long, env = "KAHUNA_HEARTBEAT_MS", default_value_t = 150)]
    pub heartbeat_ms: u64,

    /// Minimum election timeout in milliseconds (the maximum is twice this).
    #[arg(long, env = "KAHUNA_ELECTION_TIMEOUT_MS", default_value_t = 1500)]
    pub election_timeout_ms: u64,

    /// Longest TTL of an ephemeral lock or key, in milliseconds. After a leader change
    /// no ephemeral lock is granted for this long.
    #[arg(long, env = "KAHUNA_MAX_EPHEMERAL_TTL_MS", default_value_t = 30_000)]
    pub max_ephemeral_ttl_ms: u64,

    /// How long a sequence idempotency key returns the same range, in milliseconds.
    #[arg(long, env = "KAHUNA_IDEMPOTENCY_WINDOW_MS", default_value_t = 24 * 60 * 60 * 1000)]
    pub idempotency_window_ms: u64,

    /// Longest a request waits in a member for a quorum (its commit, or the leader's
    /// read barrier), in milliseconds; then it fails with UNAVAILABLE. Requests without
    /// a client deadline never wait longer, so a cluster without a quorum does not
    /// pile them up.
    #[arg(long, env = "KAHUNA_REQUEST_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub request_timeout_ms: u64,

    /// Concurrent requests (HTTP/2 streams) one client connection may have open; more
    /// wait in the client until one finishes.
    #[arg(long, env = "KAHUNA_MAX_STREAMS_PER_CONNECTION", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_streams_per_connection: u32,

    /// Most keys the cluster holds (expired ones not yet swept included); a write that
    /// would create one more is refused with RESOURCE_EXHAUSTED. About 300 bytes of
    /// memory per key on every member besides its key and value (README, "Limits").
    #[arg(long, env = "KAHUNA_MAX_KEYS", default_value_t = 10_000_000)]
    pub max_keys: usize,

    /// Most persistent locks the cluster holds (held, or expired and not yet swept).
    #[arg(long, env = "KAHUNA_MAX_LOCKS", default_value_t = 1_000_000)]
    pub max_locks: usize,

    /// Most sequences the cluster holds (a sequence is kept once it handed out an id).
    #[arg(long, env = "KAHUNA_MAX_SEQUENCES", default_value_t = 1_000_000)]
    pub max_sequences: usize,

    /// Most ephemeral keys and locks together, held in the leader's memory.
    #[arg(long, env = "KAHUNA_MAX_EPHEMERAL_ENTRIES", default_value_t = 1_000_000)]
    pub max_ephemeral_entries: usize,

    /// Most callers waiting in lock queues at once, across all locks.
    #[arg(long, env = "KAHUNA_MAX_LOCK_WAITERS", default_value_t = 100_000)]
    pub max_lock_waiters: usize,

    /// Most persistent rate limiters in use at once (idle ones are forgotten).
    #[arg(long, env = "KAHUNA_MAX_RATE_LIMITERS", default_value_t = 1_000_000)]
    pub max_rate_limiters: usize,

    /// Client connections the client port holds open at once; more are closed as they
    /// are accepted. Keep it below the process's open-file limit (`ulimit -n`).
    #[arg(long, env = "KAHUNA_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Watches one member serves at once (each is a stream held open by a client).
    #[arg(long, env = "KAHUNA_MAX_WATCHES", default_value_t = 10_000)]
    pub max_watches: usize,

    /// TEST ONLY, debug builds only: answer linearizable reads from the local state
    /// machine without a read-index or forwarding. Unsafe by design; it exists so the
    /// fault-injection checkers can prove they catch stale reads.
    #[arg(long, env = "KAHUNA_TEST_UNSAFE_LOCAL_READS", hide = true)]
    pub test_unsafe_local_reads: bool,

    /// Build a snapshot (and purge the log) after this many entries.
    #[arg(long, env = "KAHUNA_SNAPSHOT_THRESHOLD", default_value_t = 10_000)]
    pub snapshot_threshold: u64,

    /// TLS on the client port: this member's certificate chain (PEM). With
    /// --tls-key; reloaded on SIGHUP. Without it the client port is plain TCP.
    #[arg(long, env = "KAHUNA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "KAHUNA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by this CA (PEM) on the client port.
    #[arg(long, env = "KAHUNA_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Mutual TLS on the peer port: this member's certificate (PEM), presented both
    /// when it accepts and when it connects. All three --peer-tls-* go together.
    #[arg(long, env = "KAHUNA_PEER_TLS_CERT", requires_all = ["peer_tls_key", "peer_tls_ca"])]
    pub peer_tls_cert: Option<PathBuf>,

    /// The private key of --peer-tls-cert (PEM).
    #[arg(long, env = "KAHUNA_PEER_TLS_KEY", requires = "peer_tls_cert")]
    pub peer_tls_key: Option<PathBuf>,

    /// The CA (PEM) every member's peer certificate must be signed by: Raft traffic
    /// is accepted only from, and sent only to, holders of such certificates.
    #[arg(long, env = "KAHUNA_PEER_TLS_CA", requires = "peer_tls_cert")]
    pub peer_tls_ca: Option<PathBuf>,

    /// Require a credential on the client port: a file of `CREDENTIAL ROLE [PREFIX]`
    /// lines (token hashes or client certificate fingerprints; see server/src/auth.rs
    /// and the README). Reloaded on SIGHUP. Without it the client port is open.
    #[arg(long, env = "KAHUNA_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,
}

impl Config {
    /// The client port's TLS files, when TLS is on.
    pub fn client_tls(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }

    /// The peer port's TLS files, when mutual TLS is on.
    pub fn peer_tls(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.peer_tls_cert.clone()?,
            key: self.peer_tls_key.clone()?,
            client_ca: Some(self.peer_tls_ca.clone()?),
        })
    }

    pub fn client_addr(&self) -> String {
        self.advertise_client.clone().unwrap_or_else(|| self.listen.clone())
    }

    /// The founding members, from --initial-cluster or this member alone.
    pub fn initial_members(&self) -> anyhow::Result<BTreeMap<u64, String>> {
        let Some(spec) = &self.initial_cluster else {
            return Ok(BTreeMap::from([(self.node_id, self.peer_listen.clone())]));
        };
        let mut members = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, addr) = part
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--initial-cluster entry {part:?} is not ID=HOST:PORT"))?;
            let id: u64 = id
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("--initial-cluster entry {part:?}: {id:?} is not a node id"))?;
            if members.insert(id, addr.trim().to_owned()).is_some() {
                anyhow::bail!("--initial-cluster names node {id} twice");
            }
        }
        if !members.contains_key(&self.node_id) {
            anyhow::bail!("--initial-cluster does not include this node ({})", self.node_id);
        }
        Ok(members)
    }

    /// Refuses settings that must not reach a production build.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.test_unsafe_local_reads && !cfg!(debug_assertions) {
            anyhow::bail!("--test-unsafe-local-reads exists only in debug (test) builds");
        }
        Ok(())
    }

    pub fn raft_config(&self) -> anyhow::Result<openraft::Config> {
        let config = openraft::Config {
            cluster_name: "kahuna".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_ms,
            election_timeout_max: self.election_timeout_ms * 2,
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_threshold),
            max_in_snapshot_log_to_keep: 1000.min(self.snapshot_threshold),
            max_payload_entries: 64,
            ..Default::default()
        };
        Ok(config.validate()?)
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
}
