//! A cluster of real `kahuna-server` processes on loopback ports, for tests of the
//! server, the client and the bindings, and for the fault run (tests/faults), which
//! also pauses members, skews their clocks and partitions them (in network namespaces).
//! Every process is killed when the `Cluster` is dropped, also when a test fails.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kahuna_proto::tls::TlsConnector;
use kahuna_proto::v1::cluster_client::ClusterClient;
use kahuna_proto::v1::kv_client::KvClient;
use kahuna_proto::v1::locks_client::LocksClient;
use kahuna_proto::v1::sequences_client::SequencesClient;
use kahuna_proto::v1::{
    AddLearnerRequest, ChangeMembershipRequest, GetRequest, MembershipResponse, ReadConsistency, SetRequest,
    StatusRequest, StatusResponse,
};
use tonic::transport::Channel;

pub mod cleanup;
mod netns;
pub mod pki;

pub const STORAGES: [&str; 3] = ["rocksdb", "sqlite", "memory"];

/// libfaketime, which [`Cluster::spawn_skewed`] preloads (scripts/install-deps.sh
/// installs it at this path).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

pub fn libfaketime_available() -> bool {
    std::path::Path::new(LIBFAKETIME).exists()
}

pub struct Member {
    pub id: u64,
    pub client_addr: String,
    pub peer_addr: String,
    pub data_dir: PathBuf,
    /// The member's network namespace, when the cluster runs in namespaces.
    pub netns: Option<String>,
    /// The member's address (127.0.0.1 on loopback).
    pub ip: String,
    /// Stopped with SIGSTOP by [`Cluster::pause`] and not resumed since.
    pub paused: bool,
    child: Option<Child>,
}

/// How the harness itself reaches the client ports: TLS and a token, when the
/// members require them.
#[derive(Clone, Default)]
pub struct Access {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub token: Option<String>,
}

/// How [`Cluster::launch`] starts a cluster. [`Options::new`] gives what
/// [`Cluster::start`] uses; the fault run (tests/faults) sets the rest.
pub struct Options {
    pub nodes: u64,
    pub storage: String,
    /// Arguments every member gets (after `--heartbeat-ms 100 --election-timeout-ms 1000`).
    pub extra_args: Vec<String>,
    /// How the harness reaches the client ports.
    pub access: Access,
    /// Founding members left unstarted (start them with [`Cluster::spawn`]).
    pub late: Vec<u64>,
    /// The server binary; `None`: [`server_bin`].
    pub server_bin: Option<PathBuf>,
    /// Where the data directories and logs go, kept after the cluster; `None`: a
    /// temporary directory removed with the cluster.
    pub dir: Option<PathBuf>,
    /// Each member in its own network namespace, so that [`Cluster::cut`] can partition
    /// them, when the machine allows it (root, `ip netns`, iptables); otherwise, and
    /// when false, the members share loopback (see [`Cluster::netns`]).
    pub network_namespaces: bool,
    /// How long one status call of the harness may take.
    pub status_timeout: Duration,
}

impl Options {
    pub fn new(nodes: u64, storage: &str) -> Options {
        Options {
            nodes,
            storage: storage.to_owned(),
            extra_args: Vec::new(),
            access: Access::default(),
            late: Vec::new(),
            server_bin: None,
            dir: None,
            network_namespaces: false,
            status_timeout: Duration::from_secs(5),
        }
    }
}

pub struct Cluster {
    pub members: Vec<Member>,
    pub storage: String,
    /// The members run in network namespaces (partitions are possible).
    pub netns: bool,
    bin: PathBuf,
    dir: PathBuf,
    status_timeout: Duration,
    extra_args: Vec<String>,
    extra_args_for_next: Vec<String>,
    env_for_next: Vec<(String, String)>,
    initial_cluster: String,
    /// How this harness reaches the members' client ports.
    access: Access,
    _tmp: Option<tempfile::TempDir>,
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
        let c = Self::launch(Options {
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            access,
            late: late.to_vec(),
            ..Options::new(n, storage)
        })
        .unwrap_or_else(|e| panic!("starting the cluster: {e}"));
        c.wait_leader(Duration::from_secs(30)).await;
        c
    }

    /// Starts the members `opts` describes and returns without waiting for a leader.
    pub fn launch(opts: Options) -> io::Result<Cluster> {
        let mut netns = false;
        if opts.network_namespaces {
            match netns::setup(opts.nodes) {
                Ok(()) => netns = true,
                Err(e) => {
                    eprintln!("network namespaces unavailable ({e}); members share loopback, no partitions");
                    cleanup::remove_network();
                }
            }
        }
        let (tmp, dir) = match opts.dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)?;
                (None, dir)
            }
            None => {
                let tmp = tempfile::tempdir()?;
                let dir = tmp.path().to_owned();
                (Some(tmp), dir)
            }
        };
        let members: Vec<Member> = (1..=opts.nodes).map(|id| new_member(&dir, id, netns)).collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.id, m.peer_addr))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            members,
            storage: opts.storage,
            netns,
            bin: opts.server_bin.unwrap_or_else(server_bin),
            dir,
            status_timeout: opts.status_timeout,
            extra_args: opts.extra_args,
            extra_args_for_next: Vec::new(),
            env_for_next: Vec::new(),
            initial_cluster,
            access: opts.access,
            _tmp: tmp,
        };
        for id in (1..=opts.nodes).filter(|id| !opts.late.contains(id)) {
            c.try_spawn(id)?;
        }
        Ok(c)
    }

    fn member(&mut self, id: u64) -> &mut Member {
        &mut self.members[(id - 1) as usize]
    }

    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    pub fn client_addrs(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_addr.clone()).collect()
    }

    /// Adds a member started with `--join` (empty, waiting to be added through the
    /// cluster API) and returns its id.
    pub fn spawn_joining(&mut self) -> u64 {
        assert!(!self.netns, "members added later have no network namespace");
        let id = self.members.len() as u64 + 1;
        self.members.push(new_member(&self.dir, id, false));
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

    /// Starts member `id` (again) with extra environment variables; later restarts
    /// have the usual environment.
    pub fn spawn_with_env(&mut self, id: u64, env: &[(&str, &str)]) {
        self.try_spawn_with_env(id, env).unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_spawn_with_env(&mut self, id: u64, env: &[(&str, &str)]) -> io::Result<()> {
        self.env_for_next = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let started = self.try_spawn(id);
        self.env_for_next.clear();
        started
    }

    /// Starts member `id` (again) with its wall clock `skew_s` seconds off
    /// (libfaketime) when non-zero; later restarts have the true time.
    pub fn spawn_skewed(&mut self, id: u64, skew_s: i64) {
        self.try_spawn_skewed(id, skew_s).unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Cluster::spawn_skewed`], with an error instead of a panic.
    pub fn try_spawn_skewed(&mut self, id: u64, skew_s: i64) -> io::Result<()> {
        if skew_s == 0 {
            return self.try_spawn(id);
        }
        // Only the wall clock moves: the server reads it once at start and then
        // advances with the monotonic clock.
        let offset = format!("{skew_s:+}s");
        self.try_spawn_with_env(
            id,
            &[
                ("LD_PRELOAD", LIBFAKETIME),
                ("FAKETIME", &offset),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
                ("FAKETIME_NO_CACHE", "1"),
            ],
        )
    }

    /// Starts member `id` (again), on the same ports and data directory.
    pub fn spawn(&mut self, id: u64) {
        self.spawn_with(id, &[], true);
    }

    /// [`Cluster::spawn`], with an error instead of a panic.
    pub fn try_spawn(&mut self, id: u64) -> io::Result<()> {
        self.try_spawn_with(id, &[], true)
    }

    /// Starts member `id` (again) with `args` added, and `--initial-cluster` only when
    /// `initial_cluster` is set (otherwise the server's default: itself alone).
    pub fn spawn_with(&mut self, id: u64, args: &[&str], initial_cluster: bool) {
        self.try_spawn_with(id, args, initial_cluster)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_spawn_with(&mut self, id: u64, args: &[&str], initial_cluster: bool) -> io::Result<()> {
        let storage = self.storage.clone();
        let bin = self.bin.clone();
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
        if m.child.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("member {id} is already running"),
            ));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}.log", m.data_dir.display()))?;
        let mut cmd = match &m.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(["--node-id", &id.to_string()])
            .args(["--listen", &m.client_addr])
            .args(["--peer-listen", &m.peer_addr])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--storage", &storage])
            .args(&initial)
            .args(["--heartbeat-ms", "100", "--election-timeout-ms", "1000"])
            .args(&extra)
            .envs(env)
            .stdin(Stdio::null())
            // The server logs (tracing) on stdout, errors on stderr: both to the log.
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", bin.display())))?;
        cleanup::add_pid(child.id());
        m.child = Some(child);
        m.paused = false;
        Ok(())
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self, id: u64) {
        let m = self.member(id);
        if let Some(mut child) = m.child.take() {
            cleanup::remove_pid(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
        m.paused = false;
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

    /// SIGSTOP: the member neither answers nor times out anything until resumed.
    pub fn pause(&mut self, id: u64) {
        self.signal(id, "-STOP");
        self.member(id).paused = true;
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, id: u64) {
        self.signal(id, "-CONT");
        self.member(id).paused = false;
    }

    /// Waits up to `within` for member `id` to exit on its own and returns how it
    /// exited (`None`: still running, or not started).
    pub async fn wait_exit(&mut self, id: u64, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let m = self.member(id);
            let status = m.child.as_mut()?.try_wait().expect("wait for kahuna-server");
            if let Some(status) = status {
                if let Some(child) = m.child.take() {
                    cleanup::remove_pid(child.id());
                }
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

    pub fn is_running(&self, id: u64) -> bool {
        self.pid(id).is_some()
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

    /// Member `id`'s status; `None` when it does not answer within the status timeout,
    /// and at once when it is stopped or paused.
    pub async fn status(&self, id: u64) -> Option<StatusResponse> {
        let m = &self.members[(id - 1) as usize];
        if m.child.is_none() || m.paused {
            return None;
        }
        let mut c = self.admin(id).await;
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(self.status_timeout);
        if let Some(t) = &self.access.token {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().expect("token"));
        }
        c.status(req).await.ok().map(|r| r.into_inner())
    }

    /// The running member that reports itself leader in the highest term.
    pub async fn leader(&self) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for id in self.ids() {
            if let Some(s) = self.status(id).await {
                if s.state == "leader" && best.is_none_or(|(_, t)| s.term > t) {
                    best = Some((id, s.term));
                }
            }
        }
        best.map(|(id, _)| id)
    }

    /// Waits until a running member reports itself leader and returns its id.
    pub async fn wait_leader(&self, within: Duration) -> u64 {
        let leader = wait_for(within, Duration::from_millis(100), || self.leader()).await;
        leader.unwrap_or_else(|| panic!("no leader within {within:?}"))
    }

    /// Waits until a leader is followed by a majority (it is leader, and a majority of
    /// the members name it in their status); `None` when none is within `within`.
    pub async fn wait_leader_agreed(&self, within: Duration) -> Option<u64> {
        let majority = self.members.len() / 2 + 1;
        wait_for(within, Duration::from_millis(200), || async {
            let l = self.leader().await?;
            let mut agree = 0;
            for id in self.ids() {
                if self.status(id).await.is_some_and(|s| s.leader_id == l) {
                    agree += 1;
                }
            }
            (agree >= majority).then_some(l)
        })
        .await
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

    /// Stops everything this cluster started: every member (paused ones too) and the
    /// network namespaces.
    pub fn shutdown(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
        if self.netns {
            cleanup::remove_network();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Member `id` of a cluster in `dir`: in its namespace, or on free loopback ports.
fn new_member(dir: &Path, id: u64, in_netns: bool) -> Member {
    let (netns, client_addr, peer_addr, ip) = if in_netns {
        let (ns, client, peer, ip) = netns::member_addrs(id);
        (Some(ns), client, peer, ip)
    } else {
        (
            None,
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
            "127.0.0.1".to_owned(),
        )
    };
    Member {
        id,
        client_addr,
        peer_addr,
        data_dir: dir.join(format!("node{id}")),
        netns,
        ip,
        paused: false,
        child: None,
    }
}

/// Polls `f` every `every` until it gives `Some`, for up to `within`; `None` after that.
pub async fn wait_for<T, F, Fut>(within: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
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

/// Retries one call of `client` with `req` (both cloned for every try) on UNAVAILABLE
/// until `within`, as [`retry`]: `retry_call(WAIT, &kv, &req, |mut kv, r| async move { kv.set(r).await })`.
pub async fn retry_call<C, R, T, F, Fut>(within: Duration, client: &C, req: &R, mut call: F) -> T
where
    C: Clone,
    R: Clone,
    F: FnMut(C, R) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    retry(within, || call(client.clone(), req.clone())).await
}

/// Polls `f` every 100 ms until it is true, failing the test with `what` after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let done = wait_for(within, Duration::from_millis(100), || {
        let answer = f();
        async move { answer.await.then_some(()) }
    })
    .await;
    assert!(done.is_some(), "{what} within {within:?}");
}

/// The error kind a refusal names in its `kahuna-error` metadata ("" when none).
pub fn error_kind(s: &tonic::Status) -> String {
    s.metadata()
        .get("kahuna-error")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// How long the membership helpers below retry while the cluster is unavailable.
const MEMBERSHIP_WAIT: Duration = Duration::from_secs(30);

impl Cluster {
    /// Waits until member `id` has applied `key` (seen by a stale read on that member);
    /// `what` names the member in the failure.
    pub async fn wait_applied(&self, id: u64, key: &str, what: &str) {
        let kv = self.kv(id).await;
        eventually(&format!("{what} (member {id}) applies {key}"), MEMBERSHIP_WAIT, || {
            let mut kv = kv.clone();
            async move {
                kv.get(stale_get_req(key))
                    .await
                    .is_ok_and(|r| r.into_inner().kv.is_some())
            }
        })
        .await;
    }

    /// Waits until member `id` answers a status that satisfies `ok`, and returns it;
    /// `what` says what was waited for in the failure.
    pub async fn wait_status(
        &self,
        id: u64,
        what: &str,
        mut ok: impl FnMut(&StatusResponse) -> bool,
    ) -> StatusResponse {
        let deadline = Instant::now() + MEMBERSHIP_WAIT;
        loop {
            let last = self.status(id).await;
            match last {
                Some(s) if ok(&s) => return s,
                _ => assert!(
                    Instant::now() < deadline,
                    "{what} within {MEMBERSHIP_WAIT:?} (member {id}'s last status: {last:?})"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Adds member `id` (started with `--join`) as a learner through member `via`,
    /// waiting until it has caught up; retried while the cluster is unavailable.
    pub async fn add_learner(&self, via: u64, id: u64) -> MembershipResponse {
        let req = AddLearnerRequest {
            node_id: id,
            peer_addr: self.members[(id - 1) as usize].peer_addr.clone(),
            blocking: true,
        };
        let admin = self.admin(via).await;
        retry_call(MEMBERSHIP_WAIT, &admin, &req, |mut a, r| async move {
            a.add_learner(r).await
        })
        .await
        .into_inner()
    }

    /// Makes `voters` the voting members through member `via`; retried while the
    /// cluster is unavailable.
    pub async fn change_voters(&self, via: u64, voters: &[u64]) -> MembershipResponse {
        let req = ChangeMembershipRequest {
            voters: voters.to_vec(),
            retain: false,
        };
        let admin = self.admin(via).await;
        retry_call(MEMBERSHIP_WAIT, &admin, &req, |mut a, r| async move {
            a.change_membership(r).await
        })
        .await
        .into_inner()
    }
}
