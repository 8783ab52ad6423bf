//! Members in network namespaces: where the machine allows it (root, `ip netns`, veth, a
//! bridge, iptables), each member runs in its own namespace with its own address on a
//! private bridge, so a partition is a set of iptables rules between namespaces.

use std::io;
use std::process::{Command, Stdio};

use crate::cleanup::{self, quiet, BRIDGE, NETNS_PREFIX};
use crate::Cluster;

const SUBNET: &str = "10.213.0";

/// The client and peer ports of a member in its own namespace (each has its own address).
const CLIENT_PORT: u16 = 2070;
const PEER_PORT: u16 = 2071;

/// Member `id`'s namespace, address, client and peer address.
pub(crate) fn member_addrs(id: u64) -> (String, String, String, String) {
    let ip = format!("{SUBNET}.{id}");
    (
        format!("{NETNS_PREFIX}{id}"),
        format!("{ip}:{CLIENT_PORT}"),
        format!("{ip}:{PEER_PORT}"),
        ip,
    )
}

fn sh(program: &str, args: &[&str]) -> io::Result<()> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {program}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Builds the bridge and one namespace per member; on an error the caller removes what
/// was built with [`cleanup::remove_network`].
pub(crate) fn setup(n: u64) -> io::Result<()> {
    cleanup::remove_leftovers();
    cleanup::add_link(BRIDGE);
    sh("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    sh("ip", &["addr", "add", &format!("{SUBNET}.254/24"), "dev", BRIDGE])?;
    sh("ip", &["link", "set", BRIDGE, "up"])?;
    for i in 1..=n {
        let (ns, _, _, ip) = member_addrs(i);
        let host = format!("kfh{i}");
        let peer = format!("kfp{i}");
        cleanup::add_netns(&ns);
        sh("ip", &["netns", "add", &ns])?;
        cleanup::add_link(&host);
        sh("ip", &["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
        sh("ip", &["link", "set", &peer, "netns", &ns])?;
        sh("ip", &["link", "set", &host, "master", BRIDGE])?;
        sh("ip", &["link", "set", &host, "up"])?;
        sh("ip", &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", &peer])?;
        sh("ip", &["-n", &ns, "link", "set", &peer, "up"])?;
        sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        sh("ip", &["netns", "exec", &ns, "iptables", "-w", "-S"])
            .map_err(|e| io::Error::other(format!("iptables in a namespace: {e}")))?;
    }
    // Bridged traffic may pass the host's FORWARD chain (br_netfilter); let ours through.
    if quiet("iptables", &["-w", "-S", "FORWARD"]) {
        let mut args = vec!["-w", "-I", "FORWARD"];
        args.extend(cleanup::FORWARD_RULE);
        quiet("iptables", &args);
    }
    Ok(())
}

impl Cluster {
    /// Runs `iptables -w <args>` in member `id`'s namespace.
    fn iptables(&self, id: u64, args: &[&str]) -> io::Result<()> {
        let ns = self.members[(id - 1) as usize].netns.clone().unwrap_or_default();
        let mut all = vec!["netns", "exec", &ns, "iptables", "-w"];
        all.extend(args);
        sh("ip", &all)
    }

    /// Cuts every link between `a` and `b` (both directions), as iptables DROP rules in
    /// both namespaces.
    pub fn cut(&self, a: &[u64], b: &[u64]) -> io::Result<()> {
        if !self.netns {
            return Err(io::Error::other("partitions need network namespaces"));
        }
        for &x in a {
            for &y in b {
                for (from, to) in [(x, y), (y, x)] {
                    let ip = self.members[(to - 1) as usize].ip.clone();
                    self.iptables(from, &["-A", "INPUT", "-s", &ip, "-j", "DROP"])?;
                    self.iptables(from, &["-A", "OUTPUT", "-d", &ip, "-j", "DROP"])?;
                }
            }
        }
        Ok(())
    }

    /// Removes every partition [`Cluster::cut`] made.
    pub fn heal_network(&self) -> io::Result<()> {
        if !self.netns {
            return Ok(());
        }
        for id in self.ids() {
            self.iptables(id, &["-F", "INPUT"])?;
            self.iptables(id, &["-F", "OUTPUT"])?;
        }
        Ok(())
    }
}
