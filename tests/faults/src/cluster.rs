//! A cluster of real `kahuna-server` processes. Where the machine allows it (root,
//! `ip netns`, veth, a bridge, iptables), each member runs in its own network namespace
//! with its own address on a private bridge, so partitions are iptables rules between
//! namespaces. Otherwise members share loopback on distinct ports and partitions are
//! not available.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kahuna_proto::v1::cluster_client::ClusterClient;
use kahuna_proto::v1::StatusRequest;
use tonic::transport::{Channel, Endpoint};

use crate::cleanup::{self, quiet, BRIDGE, NETNS_PREFIX};

const SUBNET: &str = "10.213.0";
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

pub struct Options {
    pub nodes: u64,
    pub server_bin: PathBuf,
    pub dir: PathBuf,
    pub storage: String,
    pub extra_args: Vec<String>,
    pub use_netns: bool,
}

pub struct Member {
    pub id: u64,
    pub client_addr: String,
    pub peer_addr: String,
    pub netns: Option<String>,
    pub ip: String,
    child: Option<Child>,
    pub paused: bool,
    /// Clock offset in seconds given to libfaketime at the last start (0 = true time).
    pub skew_s: i64,
}

pub struct Cluster {
    pub members: Vec<Member>,
    pub netns: bool,
    opts: Options,
    initial: String,
}

fn sh(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn libfaketime_available() -> bool {
    Path::new(LIBFAKETIME).exists()
}

pub fn channel(addr: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// Builds the bridge and one namespace per member; false (and nothing left behind)
/// when the machine does not allow it.
fn setup_netns(n: u64) -> Result<()> {
    cleanup::remove_leftovers();
    cleanup::add_link(BRIDGE);
    sh("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    sh("ip", &["addr", "add", &format!("{SUBNET}.254/24"), "dev", BRIDGE])?;
    sh("ip", &["link", "set", BRIDGE, "up"])?;
    for i in 1..=n {
        let ns = format!("{NETNS_PREFIX}{i}");
        let host = format!("kfh{i}");
        let peer = format!("kfp{i}");
        cleanup::add_netns(&ns);
        sh("ip", &["netns", "add", &ns])?;
        cleanup::add_link(&host);
        sh("ip", &["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
        sh("ip", &["link", "set", &peer, "netns", &ns])?;
        sh("ip", &["link", "set", &host, "master", BRIDGE])?;
        sh("ip", &["link", "set", &host, "up"])?;
        sh(
            "ip",
            &["-n", &ns, "addr", "add", &format!("{SUBNET}.{i}/24"), "dev", &peer],
        )?;
        sh("ip", &["-n", &ns, "link", "set", &peer, "up"])?;
        sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        sh("ip", &["netns", "exec", &ns, "iptables", "-w", "-S"]).context("iptables in a namespace")?;
    }
    // Bridged traffic may pass the host's FORWARD chain (br_netfilter); let ours through.
    if quiet("iptables", &["-w", "-S", "FORWARD"]) {
        let mut args = vec!["-w", "-I", "FORWARD"];
        args.extend(cleanup::FORWARD_RULE);
        quiet("iptables", &args);
    }
    Ok(())
}

fn teardown_netns() {
    cleanup::cleanup();
}

impl Cluster {
    pub async fn start(opts: Options) -> Result<Cluster> {
        let mut netns = false;
        if opts.use_netns {
            match setup_netns(opts.nodes) {
                Ok(()) => netns = true,
                Err(e) => {
                    eprintln!("network namespaces unavailable ({e:#}); members share loopback, no partitions");
                    teardown_netns();
                }
            }
        }
        let mut members = Vec::new();
        for id in 1..=opts.nodes {
            let (client_addr, peer_addr, ns, ip) = if netns {
                let ip = format!("{SUBNET}.{id}");
                (
                    format!("{ip}:2070"),
                    format!("{ip}:2071"),
                    Some(format!("{NETNS_PREFIX}{id}")),
                    ip,
                )
            } else {
                (
                    format!("127.0.0.1:{}", free_port()?),
                    format!("127.0.0.1:{}", free_port()?),
                    None,
                    "127.0.0.1".to_owned(),
                )
            };
            members.push(Member {
                id,
                client_addr,
                peer_addr,
                netns: ns,
                ip,
                child: None,
                paused: false,
                skew_s: 0,
            });
        }
        let initial = members
            .iter()
            .map(|m| format!("{}={}", m.id, m.peer_addr))
            .collect::<Vec<_>>()
            .join(",");
        std::fs::create_dir_all(&opts.dir)?;
        let mut c = Cluster {
            members,
            netns,
            opts,
            initial,
        };
        for id in c.ids() {
            c.spawn(id, 0)?;
        }
        if c.wait_leader(Duration::from_secs(60)).await.is_none() {
            bail!(
                "no leader within 60 s of starting the cluster (logs in {})",
                c.opts.dir.display()
            );
        }
        Ok(c)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    pub fn client_addrs(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_addr.clone()).collect()
    }

    fn member(&mut self, id: u64) -> &mut Member {
        &mut self.members[(id - 1) as usize]
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.members[(id - 1) as usize].child.is_some()
    }

    /// Starts member `id` on its address and data directory, with its wall clock
    /// `skew_s` seconds off (libfaketime) when non-zero.
    pub fn spawn(&mut self, id: u64, skew_s: i64) -> Result<()> {
        let dir = self.opts.dir.clone();
        let bin = self.opts.server_bin.clone();
        let storage = self.opts.storage.clone();
        let extra = self.opts.extra_args.clone();
        let initial = self.initial.clone();
        let m = self.member(id);
        if m.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("node{id}.log")))?;
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
            .arg(dir.join(format!("node{id}")))
            .args(["--storage", &storage])
            .args(["--initial-cluster", &initial])
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if skew_s != 0 {
            // Only the wall clock moves: the server reads it once at start and then
            // advances with the monotonic clock.
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME", format!("{skew_s:+}s"))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        let child = cmd.spawn().context("starting kahuna-server")?;
        cleanup::add_pid(child.id());
        m.child = Some(child);
        m.paused = false;
        m.skew_s = skew_s;
        Ok(())
    }

    /// SIGKILL: nothing is flushed.
    pub fn kill(&mut self, id: u64) {
        let m = self.member(id);
        if let Some(mut child) = m.child.take() {
            cleanup::remove_pid(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
        m.paused = false;
    }

    fn signal(&mut self, id: u64, sig: libc::c_int) {
        if let Some(child) = &self.member(id).child {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, sig);
            }
        }
    }

    pub fn pause(&mut self, id: u64) {
        self.signal(id, libc::SIGSTOP);
        self.member(id).paused = true;
    }

    pub fn resume(&mut self, id: u64) {
        self.signal(id, libc::SIGCONT);
        self.member(id).paused = false;
    }

    /// Cuts every link between `a` and `b` (both directions), as iptables DROP rules in
    /// both namespaces.
    pub fn cut(&self, a: &[u64], b: &[u64]) -> Result<()> {
        if !self.netns {
            bail!("partitions need network namespaces");
        }
        for &x in a {
            for &y in b {
                for (from, to) in [(x, y), (y, x)] {
                    let ns = self.members[(from - 1) as usize].netns.clone().unwrap_or_default();
                    let ip = self.members[(to - 1) as usize].ip.clone();
                    sh(
                        "ip",
                        &[
                            "netns", "exec", &ns, "iptables", "-w", "-A", "INPUT", "-s", &ip, "-j", "DROP",
                        ],
                    )?;
                    sh(
                        "ip",
                        &[
                            "netns", "exec", &ns, "iptables", "-w", "-A", "OUTPUT", "-d", &ip, "-j", "DROP",
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    pub fn heal_network(&self) -> Result<()> {
        if !self.netns {
            return Ok(());
        }
        for m in &self.members {
            let ns = m.netns.clone().unwrap_or_default();
            sh("ip", &["netns", "exec", &ns, "iptables", "-w", "-F", "INPUT"])?;
            sh("ip", &["netns", "exec", &ns, "iptables", "-w", "-F", "OUTPUT"])?;
        }
        Ok(())
    }

    pub async fn status(&self, id: u64) -> Option<kahuna_proto::v1::StatusResponse> {
        let m = &self.members[(id - 1) as usize];
        if m.child.is_none() || m.paused {
            return None;
        }
        let mut c = ClusterClient::new(channel(&m.client_addr).ok()?);
        let mut req = tonic::Request::new(StatusRequest {});
        req.set_timeout(Duration::from_millis(700));
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

    /// A leader that a majority follows: it is leader, and a majority of the running
    /// members name it in their status.
    pub async fn wait_leader(&self, within: Duration) -> Option<u64> {
        let deadline = Instant::now() + within;
        let majority = self.members.len() / 2 + 1;
        loop {
            if let Some(l) = self.leader().await {
                let mut agree = 0;
                for id in self.ids() {
                    if let Some(s) = self.status(id).await {
                        if s.leader_id == l {
                            agree += 1;
                        }
                    }
                }
                if agree >= majority {
                    return Some(l);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops everything this cluster started.
    pub fn shutdown(&mut self) {
        for id in self.ids() {
            self.resume(id);
            self.kill(id);
        }
        if self.netns {
            teardown_netns();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}
