//! Everything the harness starts (server processes, and for a cluster in network
//! namespaces the namespaces and links) is registered here and torn down by [`cleanup`]:
//! at the end of a run, from the panic hook, and on Ctrl-C / SIGTERM once a program has
//! called [`install_handlers`] (the fault run does; a test's clusters are killed when
//! dropped). Namespaces, links and
//! processes left behind by a run that was killed outright (SIGKILL) are removed by
//! [`remove_leftovers`] at the start of the next run: their names are fixed.

use std::process::{Command, Stdio};
use std::sync::Mutex;

#[derive(Default)]
struct Registry {
    pids: Vec<u32>,
    netns: Vec<String>,
    links: Vec<String>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: Vec::new(),
    netns: Vec::new(),
    links: Vec::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

pub const NETNS_PREFIX: &str = "kf-n";
pub const BRIDGE: &str = "kfbr0";

pub fn add_pid(pid: u32) {
    registry().pids.push(pid);
}

pub fn remove_pid(pid: u32) {
    registry().pids.retain(|p| *p != pid);
}

pub fn add_netns(name: &str) {
    registry().netns.push(name.to_owned());
}

pub fn add_link(name: &str) {
    registry().links.push(name.to_owned());
}

/// Runs a command quietly; true when it exited 0.
pub fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn kill_hard(pid: u32) {
    let pid = pid as libc::pid_t;
    // SAFETY: plain kill(2) on a pid this harness started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Kills every registered process and removes every registered namespace and link.
/// Idempotent and safe to call from a panic hook or a signal task.
pub fn cleanup() {
    let pids = std::mem::take(&mut registry().pids);
    for pid in pids {
        kill_hard(pid);
    }
    remove_network();
}

/// Removes every registered namespace (killing what still runs in it) and link.
pub fn remove_network() {
    let (netns, links) = {
        let mut r = registry();
        (std::mem::take(&mut r.netns), std::mem::take(&mut r.links))
    };
    for ns in netns {
        kill_netns_pids(&ns);
        quiet("ip", &["netns", "del", &ns]);
    }
    for link in links {
        if link == BRIDGE {
            remove_forward_rule();
        }
        quiet("ip", &["link", "del", &link]);
    }
}

/// The rule that lets bridged traffic through the host's FORWARD chain.
pub const FORWARD_RULE: [&str; 6] = ["-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"];

fn remove_forward_rule() {
    for _ in 0..8 {
        let mut args = vec!["-w", "-D", "FORWARD"];
        args.extend(FORWARD_RULE);
        if !quiet("iptables", &args) {
            break;
        }
    }
}

fn kill_netns_pids(ns: &str) {
    if let Ok(out) = Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
    {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<u32>() {
                kill_hard(pid);
            }
        }
    }
}

/// Removes namespaces and the bridge a previous run could not clean up.
pub fn remove_leftovers() {
    if let Ok(out) = Command::new("ip")
        .args(["netns", "list"])
        .stderr(Stdio::null())
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.starts_with(NETNS_PREFIX) {
                kill_netns_pids(name);
                quiet("ip", &["netns", "del", name]);
            }
        }
    }
    remove_forward_rule();
    quiet("ip", &["link", "del", BRIDGE]);
}

/// Installs the panic hook and the Ctrl-C / SIGTERM handler that clean up.
pub fn install_handlers() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        cleanup();
        default(info);
    }));
    tokio::spawn(async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("interrupted: cleaning up");
        cleanup();
        std::process::exit(130);
    });
}
