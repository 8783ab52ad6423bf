//! Every `kahuna` command, run as a process against real servers.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kahuna_testkit::{free_port, server_bin, Cluster};
use serde_json::Value;

fn kahuna(endpoints: &str, args: &[&str]) -> Output {
    common::kahuna(endpoints)
        .args(["--timeout", "20s"])
        .args(args)
        .output()
        .expect("run kahuna")
}

/// Runs `kahuna` and checks its exit code; returns stdout.
fn ok(endpoints: &str, args: &[&str], code: i32) -> String {
    let out = kahuna(endpoints, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "kahuna {args:?}: stdout {stdout:?} stderr {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json(endpoints: &str, args: &[&str], code: i32) -> Vec<Value> {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    ok(endpoints, &full, code)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

/// The fencing token a `lock run` command wrote to `file`.
fn read_token(file: &std::path::Path) -> u64 {
    std::fs::read_to_string(file)
        .expect("token file")
        .trim()
        .parse()
        .expect("token")
}

/// A server process started with `--join`, killed on drop.
struct Joiner(Child);

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cli_command() {
    let cluster = Cluster::start(3, "memory", &["--max-ephemeral-ttl-ms", "2000"]).await;
    let ep = common::endpoints(&cluster).join(",");
    let ep = ep.as_str();

    // kv set / get / conditions
    assert!(ok(ep, &["kv", "set", "greeting", "hello"], 0).starts_with("OK revision="));
    assert_eq!(ok(ep, &["kv", "get", "greeting"], 0), "hello\n");
    assert_eq!(ok(ep, &["kv", "get", "missing"], 3), "");
    ok(ep, &["kv", "set", "greeting", "x", "--if-value", "nope"], 2);
    ok(ep, &["kv", "set", "greeting", "x", "--if-not-exists"], 2);
    let r = json(ep, &["kv", "set", "greeting", "bye", "--if-value", "hello"], 0);
    assert_eq!(r[0]["succeeded"], true);
    let rev = r[0]["kv"]["mod_revision"].as_u64().expect("revision");
    ok(
        ep,
        &["kv", "set", "greeting", "x", "--if-revision", &(rev - 1).to_string()],
        2,
    );
    ok(
        ep,
        &["kv", "set", "greeting", "again", "--if-revision", &rev.to_string()],
        0,
    );
    let g = json(ep, &["kv", "get", "greeting"], 0);
    assert_eq!(
        (g[0]["found"].as_bool(), g[0]["kv"]["value"].as_str()),
        (Some(true), Some("again"))
    );
    let g = json(ep, &["kv", "get", "greeting", "--revision", &rev.to_string()], 0);
    assert_eq!(g[0]["kv"]["value"], "bye");
    ok(ep, &["kv", "set", "session", "s", "--ttl", "1m"], 0);
    assert!(json(ep, &["kv", "get", "session"], 0)[0]["kv"]["expires_at_ms"]
        .as_u64()
        .is_some());
    ok(ep, &["kv", "set", "eph", "e", "--ephemeral", "--ttl", "2s"], 0);
    ok(ep, &["kv", "get", "eph"], 3);
    assert_eq!(ok(ep, &["kv", "get", "eph", "--ephemeral"], 0), "e\n");

    // scan and history
    for i in 0..5 {
        ok(ep, &["kv", "set", &format!("list/{i}"), &i.to_string()], 0);
    }
    assert_eq!(ok(ep, &["kv", "scan", "list/"], 0).lines().count(), 5);
    assert_eq!(
        ok(ep, &["kv", "scan", "list/", "--limit", "2", "--keys-only"], 0),
        "list/0\nlist/1\n"
    );
    assert_eq!(json(ep, &["kv", "scan", "list/"], 0)[4]["value"], "4");
    // ranges and batches
    assert_eq!(
        ok(
            ep,
            &["kv", "scan", "--from", "list/1", "--to", "list/3", "--keys-only"],
            0
        ),
        "list/1\nlist/2\n"
    );
    assert!(ok(ep, &["kv", "mset", "m/a=1", "m/b=x=y"], 0).starts_with("OK revision="));
    assert_eq!(ok(ep, &["kv", "mget", "m/a", "m/b"], 0), "m/a\t1\nm/b\tx=y\n");
    assert_eq!(ok(ep, &["kv", "mget", "m/a", "m/none"], 3), "m/a\t1\n");
    assert_eq!(ok(ep, &["kv", "mdel", "m/a", "m/b", "m/none"], 0), "2\n");
    let h = json(ep, &["kv", "history", "greeting"], 0);
    assert_eq!(h.len(), 3);
    assert_eq!(h[0]["kind"], "put");

    // del
    ok(ep, &["kv", "del", "greeting", "--if-value", "nope"], 2);
    assert_eq!(ok(ep, &["kv", "del", "greeting"], 0), "deleted\n");
    ok(ep, &["kv", "del", "greeting"], 3);
    assert_eq!(json(ep, &["kv", "history", "greeting"], 0)[3]["kind"], "delete");

    // seq
    assert_eq!(ok(ep, &["seq", "next", "ids", "--count", "5"], 0), "1..5\n");
    assert_eq!(ok(ep, &["seq", "next", "ids"], 0), "6\n");
    let a = json(
        ep,
        &["seq", "next", "ids", "--count", "2", "--idempotency-key", "k1"],
        0,
    );
    let b = json(
        ep,
        &["seq", "next", "ids", "--count", "2", "--idempotency-key", "k1"],
        0,
    );
    assert_eq!((a[0]["first"].as_u64(), b[0]["first"].as_u64()), (Some(7), Some(7)));
    assert_eq!(b[0]["replayed"], true);
    assert_eq!(ok(ep, &["seq", "peek", "ids"], 0), "9\n");

    // lock run: the token is in the environment, the exit code passes through
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("token");
    let script = format!("echo \"$KAHUNA_FENCING_TOKEN\" > {}", file.display());
    ok(ep, &["lock", "run", "res", "--ttl", "2s", "--", "sh", "-c", &script], 0);
    let token = read_token(&file);
    assert!(token > 0);
    ok(
        ep,
        &["lock", "run", "res", "--ttl", "2s", "--", "sh", "-c", "exit 7"],
        7,
    );
    ok(ep, &["lock", "info", "res"], 3);
    assert_eq!(ok(ep, &["lock", "info", "res"], 3), "free\n");

    // while another `lock run` holds it: info shows the holder, a try fails with 2,
    // and a waiter gets it once the holder's command finishes
    let mut holder = common::lock_run(ep, &["res", "--ttl", "2s", "--", "sleep", "3"])
        .spawn()
        .expect("holder");
    let mut info = Value::Null;
    common::eventually(Duration::from_secs(15), "the holder never took the lock", || {
        let out = kahuna(ep, &["--json", "lock", "info", "res"]);
        if out.status.code() == Some(0) {
            info = serde_json::from_slice::<Value>(&out.stdout).expect("json");
        }
        out.status.code() == Some(0)
    })
    .await;
    let held_token = info["lock"]["fencing_token"].as_u64().expect("token");
    assert!(held_token > token);
    let busy = json(ep, &["lock", "run", "res", "--ttl", "1s", "--", "true"], 2);
    assert_eq!(busy[0]["acquired"], false);
    assert_eq!(busy[0]["holder"]["fencing_token"].as_u64(), Some(held_token));
    let waited = Instant::now();
    ok(
        ep,
        &[
            "lock", "run", "res", "--ttl", "2s", "--wait", "15s", "--retry", "100ms", "--", "true",
        ],
        0,
    );
    assert!(waited.elapsed() < Duration::from_secs(14));
    assert_eq!(holder.wait().expect("holder").code(), Some(0));

    // an ephemeral lock (after the new leader's ephemeral quiet period)
    let script = format!("echo \"$KAHUNA_FENCING_TOKEN\" > {}", file.display());
    ok(
        ep,
        &[
            "lock",
            "run",
            "res",
            "--ephemeral",
            "--ttl",
            "2s",
            "--wait",
            "10s",
            "--",
            "sh",
            "-c",
            &script,
        ],
        0,
    );
    let eph = read_token(&file);
    assert!(eph > 0);
    ok(ep, &["lock", "info", "res", "--ephemeral"], 3);

    // cluster status and members
    let s = json(ep, &["cluster", "status"], 0);
    assert_eq!(s[0]["members"].as_array().map(Vec::len), Some(3));
    assert!(s[0]["leader_id"].as_u64().unwrap_or(0) > 0);
    assert!(ok(ep, &["cluster", "status"], 0).contains("leader"));
    assert_eq!(json(ep, &["cluster", "members"], 0).len(), 3);
    assert_eq!(ok(ep, &["cluster", "members"], 0).lines().count(), 3);

    // membership: add a fourth member as a learner, promote it, remove it
    let data = tempfile::tempdir().expect("dir");
    let (client_addr, peer_addr) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let _joiner = Joiner(
        Command::new(server_bin())
            .args(["--node-id", "4", "--listen", &client_addr, "--peer-listen", &peer_addr])
            .arg("--data-dir")
            .arg(data.path())
            .args([
                "--storage",
                "memory",
                "--join",
                "--heartbeat-ms",
                "100",
                "--election-timeout-ms",
                "1000",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the fourth member"),
    );
    let added = json(ep, &["cluster", "add-learner", "4", &peer_addr], 0);
    let role = |v: &Value, id: u64| {
        v["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["id"].as_u64() == Some(id)))
            .map(|m| m["role"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(role(&added[0], 4).as_deref(), Some("learner"));
    let promoted = json(ep, &["cluster", "promote", "4"], 0);
    assert_eq!(role(&promoted[0], 4).as_deref(), Some("voter"));
    let removed = json(ep, &["cluster", "remove", "4"], 0);
    assert_eq!(role(&removed[0], 4), None);
    assert_eq!(json(ep, &["cluster", "members"], 0).len(), 3);
    ok(ep, &["cluster", "promote", "9"], 1);

    // errors exit 1 with a message: a bad argument, an unreachable cluster
    let out = kahuna(ep, &["kv", "get", ""]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid argument"));
    // A count of 0 is refused, and hands out nothing.
    let before = ok(ep, &["seq", "peek", "ids"], 0);
    let out = kahuna(ep, &["seq", "next", "ids", "--count", "0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("count"), "{out:?}");
    assert_eq!(ok(ep, &["seq", "peek", "ids"], 0), before);
    // A TTL below a millisecond is 1 ms, not "no expiry".
    ok(ep, &["kv", "set", "tiny", "x", "--ttl", "0.5us"], 0);
    std::thread::sleep(Duration::from_millis(300));
    ok(ep, &["kv", "get", "tiny"], 3);
    let started = Instant::now();
    let out = common::kahuna(&format!("127.0.0.1:{}", free_port()))
        .args(["--timeout", "500ms", "kv", "get", "k"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_run_stops_the_command_when_the_lock_is_lost() {
    let mut cluster = Cluster::start(1, "memory", &[]).await;
    let ep = common::endpoints(&cluster).join(",");

    // SIGTERM to `kahuna lock run` stops the command and gives the lock back at once.
    let mut run = common::lock_run(&ep, &["term", "--ttl", "30s", "--", "sleep", "60"])
        .spawn()
        .expect("lock run");
    common::eventually(Duration::from_secs(15), "lock run never took the lock", || {
        kahuna(&ep, &["lock", "info", "term"]).status.code() == Some(0)
    })
    .await;
    let killed = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert_eq!(run.wait().expect("wait").code(), Some(128 + 15));
    ok(&ep, &["lock", "info", "term"], 3);
    let mut run = common::lock_run(&ep, &["res", "--ttl", "2s", "--", "sleep", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("lock run");
    common::eventually(Duration::from_secs(15), "lock run never took the lock", || {
        if let Some(s) = run.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = run.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("lock run ended early with {s}: {err}");
        }
        kahuna(&ep, &["lock", "info", "res"]).status.code() == Some(0)
    })
    .await;
    let paused = Instant::now();
    cluster.signal(1, "-STOP");
    let mut status = None;
    common::eventually(Duration::from_secs(10), "the command was not stopped", || {
        status = run.try_wait().expect("wait");
        status.is_some()
    })
    .await;
    let status = status.expect("stopped");
    let took = paused.elapsed();
    cluster.signal(1, "-CONT");
    assert_eq!(status.code(), Some(4));
    // Lost within the TTL (2 s), then SIGTERM to `sleep`, which exits at once.
    assert!(took < Duration::from_secs(6), "{took:?}");
}
