//! `kahuna-faults`: starts a cluster of real `kahuna-server` processes, runs concurrent
//! workloads against it while injecting faults on a schedule, then checks what the
//! clients saw. Run it through `tests/faults/run`, which builds everything first.

mod check;
mod db;
mod faults;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use kahuna_testkit::{cleanup, Cluster};

use check::Anomaly;
use db::Tier;
use workload::{Ctx, Locks, Register, Sequences};

const WORKLOADS: [&str; 6] = ["register", "lock", "lock-long", "lock-queue", "ephemeral", "sequence"];

#[derive(Parser, Debug)]
#[command(about = "Fault injection with checked histories against a real kahuna-server cluster")]
struct Args {
    /// How long to inject faults, in seconds.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Workloads, comma-separated: register, lock, lock-long, lock-queue, ephemeral, sequence, or all.
    #[arg(long, default_value = "all")]
    workload: String,
    /// Faults, comma-separated: kill-leader, kill-random, pause, partition-leader,
    /// partition-split, clock-skew, restart-all; or kill, partition, skew, restart, all, none.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Cluster size (3 or 5).
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    #[arg(long, default_value = "rocksdb")]
    storage: String,
    /// The server binary (default: kahuna-server next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The Porcupine checker binary (default: kahuna-porcupine next to this binary).
    #[arg(long)]
    checker: Option<PathBuf>,
    /// Where histories and server logs go (default: a new directory under /tmp/kahuna-faults).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Members share loopback even when network namespaces are available (no partitions).
    #[arg(long)]
    no_netns: bool,
    /// Start the servers with the debug-only `--test-unsafe-local-reads` (negative control:
    /// the register workload must then FAIL under partitions).
    #[arg(long)]
    unsafe_local_reads: bool,
    /// The verdict that makes the exit status 0: pass, or fail for a negative control.
    #[arg(long, default_value = "pass")]
    expect: String,
    /// Fewer successful operations than this in a workload makes its verdict UNKNOWN.
    #[arg(long, default_value_t = 50)]
    min_ok: u64,
    /// Clients per workload.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Quiet time between faults, in milliseconds (min,max).
    #[arg(long, default_value = "2000,5000")]
    quiet_ms: String,
    /// How long a fault is held, in milliseconds (min,max).
    #[arg(long, default_value = "2000,6000")]
    hold_ms: String,
}

fn range(s: &str) -> Result<(u64, u64)> {
    let (a, b) = s.split_once(',').context("expected MIN,MAX")?;
    Ok((a.trim().parse()?, b.trim().parse()?))
}

struct Row {
    name: &'static str,
    ok: u64,
    failed: u64,
    unknown: u64,
    anomalies: Vec<Anomaly>,
    verdict: &'static str,
    notes: String,
}

impl Row {
    /// A workload's row with its verdict: FAIL on any anomaly; UNKNOWN with fewer than
    /// `min_ok` successful operations, without a fault, or with undecided operations;
    /// PASS otherwise.
    fn judged(
        name: &'static str,
        (ok, failed, unknown): (u64, u64, u64),
        min_ok: u64,
        faults: u64,
        anomalies: Vec<Anomaly>,
        undecided: bool,
        mut notes: String,
    ) -> Row {
        let verdict = if !anomalies.is_empty() {
            "FAIL"
        } else if ok < min_ok {
            notes.push_str(&format!(" too few successful operations (< {min_ok});"));
            "UNKNOWN"
        } else if faults == 0 {
            notes.push_str(" no fault injected;");
            "UNKNOWN"
        } else if undecided {
            "UNKNOWN"
        } else {
            "PASS"
        };
        Row {
            name,
            ok,
            failed,
            unknown,
            anomalies,
            verdict,
            notes,
        }
    }
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().context("binary directory")?.join(name))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    cleanup::install_handlers();
    let code = match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            println!("verdict: UNKNOWN (the run did not complete: {e:#})");
            3
        }
    };
    cleanup::cleanup();
    std::process::exit(code);
}

async fn run(args: Args) -> Result<i32> {
    let workloads: Vec<&str> = if args.workload == "all" {
        WORKLOADS.to_vec()
    } else {
        let mut w = Vec::new();
        for name in args.workload.split(',').map(str::trim) {
            match WORKLOADS.iter().find(|x| **x == name) {
                Some(x) => w.push(*x),
                None => bail!("unknown workload {name:?}: use {} or all", WORKLOADS.join(", ")),
            }
        }
        w
    };
    let kinds = faults::parse(&args.faults)?;
    if args.nodes != 3 && args.nodes != 5 {
        bail!("--nodes must be 3 or 5");
    }
    let expect = match args.expect.as_str() {
        "pass" | "PASS" => "PASS",
        "fail" | "FAIL" => "FAIL",
        other => bail!("--expect {other:?}: use pass or fail"),
    };
    let server_bin = match args.server_bin.clone() {
        Some(p) => p,
        None => sibling("kahuna-server")?,
    };
    let checker = match args.checker.clone() {
        Some(p) => p,
        None => sibling("kahuna-porcupine")?,
    };
    if !server_bin.exists() {
        bail!(
            "{} not found (build the workspace, or pass --server-bin)",
            server_bin.display()
        );
    }
    if workloads.contains(&"register") && !checker.exists() {
        bail!(
            "{} not found (tests/faults/run builds it; or pass --checker)",
            checker.display()
        );
    }
    if kinds.contains(&faults::Kind::ClockSkew) && !kahuna_testkit::libfaketime_available() {
        bail!("clock skew needs libfaketime (apt-get install faketime; scripts/install-deps.sh does)");
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/kahuna-faults/{stamp}")));
    std::fs::create_dir_all(&out)?;
    // The harness runs every member with 100 ms heartbeats and a 1 s election timeout.
    // Ephemeral locks are not granted for one maximum ephemeral TTL after a leader
    // change; keep that short so the ephemeral workload makes progress between faults.
    let mut extra = vec!["--max-ephemeral-ttl-ms".to_string(), "3000".to_string()];
    if args.unsafe_local_reads {
        extra.push("--test-unsafe-local-reads".into());
    }
    workload::now_ns();
    let mut cluster = Cluster::launch(kahuna_testkit::Options {
        server_bin: Some(server_bin),
        dir: Some(out.clone()),
        extra_args: extra,
        network_namespaces: !args.no_netns && unsafe { libc::geteuid() } == 0,
        // Short, so that looking for a leader is not held up by a member that hangs.
        status_timeout: Duration::from_millis(700),
        ..kahuna_testkit::Options::new(args.nodes, &args.storage)
    })?;
    if cluster.wait_leader_agreed(Duration::from_secs(60)).await.is_none() {
        bail!(
            "no leader within 60 s of starting the cluster (logs in {})",
            out.display()
        );
    }
    let net = if cluster.netns {
        "each in its own network namespace"
    } else {
        "on loopback"
    };
    eprintln!(
        "cluster: {} members {net}, storage {}, logs and histories in {}{}",
        args.nodes,
        args.storage,
        out.display(),
        if args.unsafe_local_reads {
            " (UNSAFE local reads)"
        } else {
            ""
        }
    );

    let stop = Arc::new(AtomicBool::new(false));
    let ctx = Arc::new(Ctx {
        endpoints: cluster.client_addrs(),
        stop: stop.clone(),
        run_id: format!("run{stamp}"),
        timeout: Duration::from_secs(3),
    });
    let register = Register::new();
    let locks = Locks::new("lock", Tier::Persistent, workload::LOCK_TTL);
    let long_locks = Locks::new("lock-long", Tier::Persistent, workload::LONG_LOCK_TTL);
    let queued = Locks::queued("lock-queue", workload::LOCK_TTL, (200, 3000));
    let ephemeral = Locks::new("ephemeral", Tier::Ephemeral, workload::LOCK_TTL);
    let sequences = Sequences::new();
    let mut tasks = Vec::new();
    for w in &workloads {
        let ctx = ctx.clone();
        let n = args.clients;
        tasks.push(match *w {
            "register" => tokio::spawn(register.clone().run(ctx, n)),
            "lock" => tokio::spawn(locks.clone().run(ctx, n, 2)),
            "lock-long" => tokio::spawn(long_locks.clone().run(ctx, n, 2)),
            "lock-queue" => tokio::spawn(queued.clone().run(ctx, n, 2)),
            "ephemeral" => tokio::spawn(ephemeral.clone().run(ctx, n, 2)),
            _ => tokio::spawn(sequences.clone().run(ctx, n)),
        });
    }

    let schedule = faults::Schedule {
        kinds: kinds.clone(),
        quiet: range(&args.quiet_ms)?,
        hold: range(&args.hold_ms)?,
    };
    let mut log = faults::Log::default();
    let started = Instant::now();
    let until = started + Duration::from_secs(args.time);
    let fault_result = faults::run(&mut cluster, &schedule, until, &mut log).await;
    faults::heal(&mut cluster)?;
    let leader_at_end = cluster.wait_leader_agreed(Duration::from_secs(30)).await;
    // A last quiet stretch, so operations after healing are recorded too.
    let rest = until
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(3));
    tokio::time::sleep(rest).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(30), t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("workload failed: {e:#}"),
            Ok(Err(e)) => eprintln!("workload panicked: {e}"),
            Err(_) => eprintln!("workload did not stop within 30 s"),
        }
    }
    let elapsed = started.elapsed();
    cluster.shutdown();
    fault_result?;

    // ------------------------------------------------------------- checking
    let total_faults: u64 = log.injected.values().sum();
    let mut rows = Vec::new();
    if workloads.contains(&"register") {
        let ops = std::mem::take(&mut *register.ops.lock().unwrap_or_else(|p| p.into_inner()));
        let v = check::register::check(&checker, &ops, &out.join("register.json"), &out.join("register-html"))?;
        let notes = format!("{} ops on {} keys; {} undecided", ops.len(), v.keys, v.undecided.len());
        rows.push(Row::judged(
            "register",
            register.counts.get(),
            args.min_ok,
            total_faults,
            v.anomalies,
            !v.undecided.is_empty(),
            notes,
        ));
    }
    for (name, l) in [
        ("lock", &locks),
        ("lock-long", &long_locks),
        ("lock-queue", &queued),
        ("ephemeral", &ephemeral),
    ] {
        if !workloads.contains(&name) {
            continue;
        }
        let h = std::mem::take(&mut *l.history.lock().unwrap_or_else(|p| p.into_inner()));
        std::fs::write(out.join(format!("{name}.json")), serde_json::to_vec(&h)?)?;
        let anomalies = check::lock::check(&h);
        let accepted = h
            .writes
            .iter()
            .filter(|w| matches!(w.result, check::lock::WriteResult::Ok(_)))
            .count();
        let fenced = h
            .writes
            .iter()
            .filter(|w| w.result == check::lock::WriteResult::Fenced)
            .count();
        let notes = format!(
            "{} grants, {} fenced writes accepted, {} refused FENCED",
            h.grants.len(),
            accepted,
            fenced
        );
        let min = if h.grants.len() < 5 { u64::MAX } else { args.min_ok };
        rows.push(Row::judged(
            name,
            l.counts.get(),
            min,
            total_faults,
            anomalies,
            false,
            notes,
        ));
    }
    if workloads.contains(&"sequence") {
        let allocs = std::mem::take(&mut *sequences.allocs.lock().unwrap_or_else(|p| p.into_inner()));
        std::fs::write(out.join("sequence.json"), serde_json::to_vec(&allocs)?)?;
        let anomalies = check::sequence::check(&allocs);
        let notes = format!(
            "{} answers, {} retries/replays of a key",
            allocs.len(),
            sequences.replays.load(Ordering::Relaxed)
        );
        rows.push(Row::judged(
            "sequence",
            sequences.counts.get(),
            args.min_ok,
            total_faults,
            anomalies,
            false,
            notes,
        ));
    }

    // ------------------------------------------------------------- report
    let faults_text = if log.injected.is_empty() {
        "none".to_string()
    } else {
        log.injected
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!();
    println!(
        "== kahuna fault run: {:.0}s, {} members {net}, storage {}{}",
        elapsed.as_secs_f64(),
        args.nodes,
        args.storage,
        if args.unsafe_local_reads {
            ", UNSAFE local reads"
        } else {
            ""
        }
    );
    println!("faults injected: {faults_text} (total {total_faults})");
    if log.leaderless_heals > 0 {
        println!("liveness: no leader within 30 s after {} heal(s)", log.leaderless_heals);
    }
    if leader_at_end.is_none() {
        println!("liveness: no leader at the end of the run");
    }
    println!("histories and logs: {}", out.display());
    println!();
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>10}  {:<8} notes",
        "workload", "ok", "failed", "unknown", "anomalies", "verdict"
    );
    for r in &rows {
        println!(
            "{:<10} {:>8} {:>8} {:>8} {:>10}  {:<8} {}",
            r.name,
            r.ok,
            r.failed,
            r.unknown,
            r.anomalies.len(),
            r.verdict,
            r.notes.trim()
        );
    }
    for r in &rows {
        for (i, a) in r.anomalies.iter().enumerate() {
            if i == 20 {
                println!("[{}] ... {} more anomalies", r.name, r.anomalies.len() - 20);
                break;
            }
            println!("[{}] ANOMALY: {}", r.name, a.kind);
            for (j, op) in a.ops.iter().enumerate() {
                if j == 60 {
                    println!("      ... {} more operations", a.ops.len() - 60);
                    break;
                }
                println!("      {op}");
            }
        }
    }
    let overall = if rows.iter().any(|r| r.verdict == "FAIL") {
        "FAIL"
    } else if rows.iter().any(|r| r.verdict == "UNKNOWN") || rows.is_empty() {
        "UNKNOWN"
    } else {
        "PASS"
    };
    let (ok, failed, unknown, anomalies) = rows.iter().fold((0, 0, 0, 0), |a, r| {
        (a.0 + r.ok, a.1 + r.failed, a.2 + r.unknown, a.3 + r.anomalies.len())
    });
    println!(
        "verdict: {overall} ok={ok} failed={failed} unknown={unknown} anomalies={anomalies} faults={total_faults} duration={:.0}s",
        elapsed.as_secs_f64()
    );
    Ok(if overall == expect {
        0
    } else if overall == "FAIL" {
        1
    } else {
        2
    })
}
