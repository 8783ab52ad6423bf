//! A cluster of real `kahuna-server` processes on loopback ports, for tests of the
//! server, the client and the bindings. Every process is killed when the `Cluster`
//! is dropped, also when a test fails.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kahuna_proto::tls::TlsConnector;
use kahuna_proto::v1::cluster_client::ClusterClient;
use kahuna_proto::v1::kv_client::KvClient;
use kahuna_proto::v1::locks_client::LocksClient;
use kahuna_proto::v1::sequences_client::SequencesClient;
use kahuna_proto::v1::{GetRequest, ReadConsistency, SetRequest, StatusRequest, StatusResponse};
use tonic::transport::Channel;

pub mod pki;

pub const STORAGES: [&str; 3] = ["rocksdb", "sqlite", "memory"];

pub struct Member {
    pub id: u64,
    pub client_addr: String,
    pub peer_addr: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
}

/// How the harness itself reaches the client ports: TLS and a token, when the
/// members require them.
#[derive(Clone, Default)]
pub struct Access {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub token: Option<String>,
}

pub struct Cluster {
    pub members: Vec<Member>,
    pub storage: String,
    extra_args: Vec<String>,
    extra_args_for_next: Vec<String>,
    env_for_next: Vec<(String, String)>,
    initial_cluster: String,
    /// How this harness reaches the members' client ports.
    access: Access,
    _dir: tempfile::TempDir,
}

/// The server binary: `$KAHUNA_SERVER_BIN`, or `kahuna-server` in the target
/// directory of the running test (`target/debug/deps/<test>` -> `target/debug`).
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KAHUNA_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    let bin = dir.join("kahuna-server");
    assert!(
        bin.exists(),
        "{} not found: build the workspace first (cargo build --workspace) or set KAHUNA_SERVER_BIN",
        bin.display()
    );
    bin
}

/// A free loopback port in 20000..32000, below the kernel's ephemeral range (32768 and
/// up), handed out once per test process. With ports from that range (`bind(:0)`), a
/// stopped member's port could become the source port of an outgoing connection, or be
/// handed out again to a later member, and a client still retrying the stopped member
/// would reach the wrong process. Each process starts at its own offset.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = (std::process::id() % 120) * 100;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (offset + n) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + COUNT)
}

impl Cluster {
    /// Starts `n` members with `storage`, plus `extra_args` for every member.
    pub async fn start(n: u64, storage: &str, extra_args: &[&str]) -> Cluster {
        Self::start_with(n, storage, extra_args, Access::default()).await
    }

    /// Like [`Cluster::start`], for members whose client port needs TLS or a token
    /// (as `extra_args` configure them): the harness connects with `access`.
    pub async fn start_with(n: u64, storage: &str, extra_args: &[&str], access: Access) -> Cluster {
        Self::start_except(n, storage, extra_args, access, &[]).await
    }

    /// Like [`Cluster::start_with`], leaving the founding members in `late` unstarted
    /// (start them with [`Cluster::spawn`]): a container scheduled after the others.
    pub async fn start_except(n: u64, storage: &str, extra_args: &[&str], access: Access, late: &[u64]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let members: Vec<Member> = (1..=n)
            .map(|id| Member {
                id,
                client_addr: format!("127.0.0.1:{}", free_port()),
                peer_addr: format!("127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("node{id}")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.id, m.peer_addr))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            members,
            storage: storage.to_owned(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_args_for_next: Vec::new(),
            env_for_next: Vec::new(),
            initial_cluster,
            access,
            _dir: dir,
        };
        for id in (1..=n).filter(|id| !late.contains(id)) {
            c.spawn(id);
        }
        c.wait_leader(Duration::from_secs(30)).await;
        c
    }

    fn member(&mut self, id: u64) -> &mut Member {
        &mut self.members[(id - 1) as usize]
    }

    /// Adds a member started with `--join` (empty, waiting to be added through the
    /// cluster API) and returns its id.
    pub fn spawn_joining(&mut self) -> u64 {
        let id = self.members.len() as u64 + 1;
        let data_dir = self._dir.path().join(format!("node{id}"));
        self.members.push(Member {
            id,
            client_addr: format!("127.0.0.1:{}", free_port()),
            peer_addr: format!("127.0.0.1:{}", free_port()),
            data_dir,
            child: None,
        });
        self.extra_args_for_next.push("--join".into());
        self.spawn(id);
        self.extra_args_for_next.clear();
        id
    }

    /// Like [`Cluster::spawn_joining`], started with `args` instead of the arguments
    /// every other member has (for example another member's certificates).
    pub fn spawn_joining_with(&mut self, args: &[&str]) -> u64 {
        let saved = std::mem::replace(&mut self.extra_args, args.iter().map(|a| a.to_string()).collect());
        let id = self.spawn_joining();
        self.extra_args = saved;
        id
    }

    /// Starts member `id` (again) with extra environment variables, for example
    /// libfaketime's to skew its clock; later restarts have the usual environment.
    pub fn spawn_with_env(&mut self, id: u64, env: &[(&str, &str)]) {
        self.env_for_next = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.spawn(id);
        self.env_for_next.clear();
    }

    /// Starts member `id` (again), on the same ports and data directory.
    pub fn spawn(&mut self, id: u64) {
        self.spawn_with(id, &[], true);
    }

    /// Starts member `id` (again) with `args` added, and `--initial-cluster` only when
    /// `initial_cluster` is set (otherwise the server's default: itself alone).
    pub fn spawn_with(&mut self, id: u64, args: &[&str], initial_cluster: bool) {
        let storage = self.storage.clone();
        let initial = if initial_cluster {
            vec!["--initial-cluster".to_owned(), self.initial_cluster.clone()]
        } else {
            Vec::new()
        };
        let mut extra = self.extra_args.clone();
        extra.extend(self.extra_args_for_next.iter().cloned());
        extra.extend(args.iter().map(|a| a.to_string()));
        let env = self.env_for_next.clone();
        let m = self.member(id);
        assert!(m.child.is_none(), "member {id} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}.log", m.data_dir.display()))
            .expect("log file");
        let child = Command::new(server_bin())
            .args(["--node-id", &id.to_string()])
            .args(["--listen", &m.client_addr])
            .args(["--peer-listen", &m.peer_addr])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--storage", &storage])
            .args(&initial)
            .args(["--heartbeat-ms", "100", "--election-timeout-ms", "1000"])
            .args(&extra)
            .envs(env)
            // The server logs (tracing) on stdout, errors on stderr: both to the log.
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start kahuna-server");
        m.child = Some(child);
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.member(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn signal(&mut self, id: u64, sig: &str) {
        if let Some(child) = &self.member(id).child {
            let status = Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
        }
    }

    /// Waits up to `within` for member `id` to exit on its own and returns how it
    /// exited (`None`: still running, or not started).
    pub async fn wait_exit(&mut self, id: u64, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let m = self.member(id);
            let status = m.child.as_mut()?.try_wait().expect("wait for kahuna-server");
            if let Some(status) = status {
                m.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id of member `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.members[(id - 1) as usize].child.as_ref().map(Child::id)
    }

    /// Member `id`'s resident memory (VmRSS), in bytes, while it runs.
    pub fn rss_bytes(&self, id: u64) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid(id)?)).ok()?;
        let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
        kib.trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    }

    /// Everything member `id` has logged (stderr) across its starts.
    pub fn log(&self, id: u64) -> String {
        let m = &self.members[(id - 1) as usize];
        std::fs::read_to_string(format!("{}.log", m.data_dir.display())).unwrap_or_default()
    }

    pub async fn kv(&self, id: u64) -> KvClient<Channel> {
        KvClient::new(self.channel(id))
    }

    pub async fn locks(&self, id: u64) -> LocksClient<Channel> {
        LocksClient::new(self.channel(id))
    }

    pub async fn sequences(&self, id: u64) -> SequencesClient<Channel> {
        SequencesClient::new(self.channel(id))
    }

    pub async fn admin(&self, id: u64) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel(id))
    }

    pub async fn status(&self, id: u64) -> Option<StatusResponse> {
        let mut c = self.admin(id).await;
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(Duration::from_secs(5));
        if let Some(t) = &self.access.token {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().expect("token"));
        }
        c.status(req).await.ok().map(|r| r.into_inner())
    }

    /// Waits until a running member reports itself leader and returns its id.
    pub async fn wait_leader(&self, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            for m in &self.members {
                if m.child.is_none() {
                    continue;
                }
                if let Some(s) = self.status(m.id).await {
                    if s.state == "leader" {
                        return m.id;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A channel to member `id`'s client port (TLS when the cluster has it).
    pub fn channel(&self, id: u64) -> Channel {
        let addr = &self.members[(id - 1) as usize].client_addr;
        match &self.access.tls {
            None => channel(addr),
            Some(tls) => Channel::from_shared(format!("http://{addr}"))
                .expect("address")
                .connect_with_connector_lazy(TlsConnector::new(tls.clone(), Duration::from_millis(500))),
        }
    }

    pub fn running(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.id)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

pub fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("address")
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy()
}

/// Retries `f` on UNAVAILABLE (no leader yet, leader moved, member down) until `within`.
pub async fn retry<T, F, Fut>(within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(s) if s.code() == tonic::Code::Unavailable || s.code() == tonic::Code::DeadlineExceeded => {
                assert!(Instant::now() < deadline, "still unavailable after {within:?}: {s:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("unexpected error: {s:?}"),
        }
    }
}

pub fn set_req(key: &str, value: &str) -> SetRequest {
    SetRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

pub fn get_req(key: &str) -> GetRequest {
    GetRequest {
        key: key.into(),
        ..Default::default()
    }
}

pub fn stale_get_req(key: &str) -> GetRequest {
    GetRequest {
        key: key.into(),
        consistency: ReadConsistency::Stale as i32,
        ..Default::default()
    }
}

/// Sets `key` through member `id`, retrying until acknowledged.
pub async fn put(cluster: &Cluster, id: u64, key: &str, value: &str) {
    let kv = cluster.kv(id).await;
    let resp = retry(Duration::from_secs(30), || {
        let mut kv = kv.clone();
        let req = set_req(key, value);
        async move { kv.set(req).await }
    })
    .await;
    assert!(resp.into_inner().succeeded);
}

/// Reads `key` through member `id` (linearizable), retrying while unavailable.
pub async fn get(cluster: &Cluster, id: u64, key: &str) -> Option<Vec<u8>> {
    let kv = cluster.kv(id).await;
    let resp = retry(Duration::from_secs(30), || {
        let mut kv = kv.clone();
        let req = get_req(key);
        async move { kv.get(req).await }
    })
    .await;
    resp.into_inner().kv.map(|k| k.value)
}
