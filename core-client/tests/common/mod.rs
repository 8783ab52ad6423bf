//! Shared helpers for the process tests: clients for a testkit cluster, the `kahuna`
//! CLI as a process, and waits on a lock's state.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kahuna_client::{Client, ClientOptions, Durability, LockInfo, LockOptions};
use kahuna_testkit::Cluster;

/// Every member's client address.
pub fn endpoints(cluster: &Cluster) -> Vec<String> {
    cluster.members.iter().map(|m| m.client_addr.clone()).collect()
}

/// A client for every member of `cluster`, with a generous deadline for a loaded machine.
pub async fn client(cluster: &Cluster) -> Client {
    client_with(cluster, options(Duration::from_secs(20))).await
}

/// A client whose calls may take 30 s: long enough to ride out a leader kill.
pub async fn patient_client(cluster: &Cluster) -> Client {
    client_with(cluster, patient()).await
}

/// The options of [`patient_client`].
pub fn patient() -> ClientOptions {
    options(Duration::from_secs(30))
}

fn options(timeout: Duration) -> ClientOptions {
    ClientOptions {
        timeout,
        ..ClientOptions::default()
    }
}

pub async fn client_with(cluster: &Cluster, options: ClientOptions) -> Client {
    init_logging();
    Client::connect(endpoints(cluster), options).await.expect("connect")
}

/// Client logs on stderr when `KAHUNA_TEST_LOG` is set (e.g. `kahuna_client=debug`).
pub fn init_logging() {
    if let Ok(filter) = std::env::var("KAHUNA_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// The leader, once there is one, and a member that is not it.
pub async fn leader_and_follower(cluster: &Cluster) -> (u64, u64) {
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let follower = cluster
        .running()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    (leader, follower)
}

/// Lock options that wait up to `wait` in the server's queue. Polling (for ephemeral
/// locks only) is slowed to 5 s, so a grant that came from polling instead of the
/// server's wake-up shows up as lateness.
pub fn queued(ttl: Duration, wait: Duration) -> LockOptions {
    LockOptions {
        ttl,
        wait,
        retry: Duration::from_secs(5),
        ..LockOptions::default()
    }
}

/// Polls the persistent lock `resource` until `done` holds of it, failing with `what`
/// after 20 s.
pub async fn until_lock(client: &Client, resource: &str, done: impl Fn(&LockInfo) -> bool, what: &str) {
    let started = Instant::now();
    loop {
        let info = client
            .lock_info(resource, Durability::Persistent)
            .await
            .expect("lock info");
        if info.is_some_and(|l| done(&l)) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `done` every 50 ms until it holds, failing with `what` after `within`.
pub async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for every task to finish within 60 s, failing with `what` otherwise.
pub async fn all_finish<T>(tasks: Vec<tokio::task::JoinHandle<T>>, what: &str) {
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect(what)
            .expect("task");
    }
}

/// The `kahuna` CLI talking to `endpoints` (comma-separated), for a command to be added.
pub fn kahuna(endpoints: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kahuna"));
    command.args(["--endpoints", endpoints]);
    command
}

/// `kahuna lock run ARGS` (the resource, flags, `--` and the command), its output
/// discarded unless the caller says otherwise.
pub fn lock_run(endpoints: &str, args: &[&str]) -> Command {
    let mut command = kahuna(endpoints);
    command
        .args(["lock", "run"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}
