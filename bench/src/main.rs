//! kahuna-bench: runs one workload against Kahuna or etcd and prints throughput and
//! latency percentiles. Compare targets with `bench/compare.sh`, which runs both on
//! the same machine in the same run and prints ratios.

mod contended;
mod etcd;
mod kahuna;
mod stats;
mod workload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use rand::{Rng, SeedableRng};

use stats::{Samples, Summary};
use workload::{key, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    Kahuna,
    Etcd,
}

#[derive(Parser, Debug)]
#[command(name = "kahuna-bench", about = "One coordination workload against Kahuna or etcd")]
struct Args {
    #[arg(long, value_enum, default_value = "kahuna")]
    target: Target,
    /// Comma-separated client endpoints (host:port).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2070")]
    endpoints: Vec<String>,
    #[arg(long, value_enum, default_value = "put")]
    workload: Workload,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Connections shared by the clients (round-robin).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Run time in seconds (ignored with --ops).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many operations in total instead of after --duration.
    #[arg(long)]
    ops: Option<u64>,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 128)]
    value_size: usize,
    /// After the run, trigger a snapshot on the leader and report how long it took
    /// (Kahuna only).
    #[arg(long)]
    snapshot: bool,
    /// Lease of the locks Kahuna's lock workloads take, in milliseconds (etcd's locks
    /// hang off one session lease per client).
    #[arg(long, default_value_t = 5000)]
    lock_ttl_ms: u64,
    /// Kahuna over TLS: the CA (PEM file) that signs the members' certificates
    /// (endpoints then `https://`).
    #[arg(long)]
    cacert: Option<std::path::PathBuf>,
    /// The handoff workload on Kahuna as clients waited before the server's lock queue:
    /// a try every this many milliseconds.
    #[arg(long)]
    lock_poll_ms: Option<u64>,
}

pub enum Worker {
    Kahuna(kahuna::Worker),
    // Boxed: the etcd client is a few kilobytes.
    Etcd(Box<etcd::Worker>),
}

impl Worker {
    async fn op(&mut self, w: Workload, key: &str, value: &[u8]) -> Result<()> {
        match self {
            Worker::Kahuna(k) => k.op(w, key, value).await,
            Worker::Etcd(e) => e.op(w, key, value).await,
        }
    }

    async fn put(&mut self, key: &str, value: &[u8]) -> Result<()> {
        match self {
            Worker::Kahuna(k) => k.put(key, value).await,
            Worker::Etcd(e) => e.put(key, value).await,
        }
    }

    async fn init(&mut self) -> Result<()> {
        match self {
            Worker::Kahuna(k) => k.init().await,
            Worker::Etcd(e) => e.init().await,
        }
    }
}

async fn workers(args: &Args) -> Result<Vec<Worker>> {
    // The watch workload's watcher comes on top of its writers.
    let workers = args.clients + usize::from(args.workload == Workload::Watch);
    let conns = args.connections.clamp(1, workers.max(1));
    let lock_ttl = Duration::from_millis(args.lock_ttl_ms);
    let mut out = Vec::new();
    match args.target {
        Target::Kahuna => {
            let mut clients = Vec::new();
            for _ in 0..conns {
                clients.push(
                    kahuna::connect(&args.endpoints, args.cacert.as_deref())
                        .await
                        .context("connect to kahuna")?,
                );
            }
            for i in 0..workers {
                out.push(Worker::Kahuna(kahuna::Worker::new(
                    clients[i % conns].clone(),
                    i,
                    lock_ttl,
                )));
            }
        }
        Target::Etcd => {
            let mut clients = Vec::new();
            for _ in 0..conns {
                clients.push(etcd::connect(&args.endpoints).await.context("connect to etcd")?);
            }
            for i in 0..workers {
                out.push(Worker::Etcd(Box::new(etcd::Worker::new(clients[i % conns].clone(), i))));
            }
        }
    }
    Ok(out)
}

/// Writes every key once so reads find something; the workers share the work.
async fn preload(workers: &mut [Worker], keys: u64, value: &[u8]) -> Result<()> {
    let n = workers.len() as u64;
    let tasks = workers.iter_mut().enumerate().map(|(w, worker)| async move {
        let mut i = w as u64;
        while i < keys {
            worker.put(&key(i), value).await?;
            i += n;
        }
        anyhow::Ok(())
    });
    for r in futures::future::join_all(tasks).await {
        r?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut rng = rand::rngs::StdRng::from_entropy();
    let value: Arc<Vec<u8>> = Arc::new((0..args.value_size).map(|_| rng.gen_range(b'a'..=b'z')).collect());
    let mut workers = workers(&args).await?;
    for w in workers.iter_mut() {
        w.init().await.context("prepare worker")?;
    }
    if args.workload == Workload::Load {
        let started = Instant::now();
        preload(&mut workers, args.keys, &value).await.context("load keys")?;
        let elapsed = started.elapsed();
        println!(
            "RESULT target={} workload=load clients={} ops={} errors=0 seconds={:.2} throughput={:.1}",
            target_name(args.target),
            args.clients,
            args.keys,
            elapsed.as_secs_f64(),
            args.keys as f64 / elapsed.as_secs_f64().max(1e-9)
        );
        return report_snapshot(&args, &workers).await;
    }
    if args.workload.needs_preload() {
        preload(&mut workers, args.keys, &value).await.context("preload keys")?;
    }
    if args.target == Target::Kahuna && matches!(args.workload, Workload::EphemeralLock | Workload::EphemeralRate) {
        if let Some(Worker::Kahuna(k)) = workers.first() {
            k.wait_for_ephemeral_grants(Duration::from_secs(60)).await?;
        }
    }

    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    if matches!(args.workload, Workload::Handoff | Workload::Watch) {
        let started = Instant::now();
        let samples = match args.workload {
            Workload::Handoff => {
                contended::handoff(workers, deadline, args.lock_poll_ms.map(Duration::from_millis)).await?
            }
            _ => contended::watch(workers, deadline).await?,
        };
        print_result(&args, Summary::of(samples, started.elapsed()), started.elapsed());
        return Ok(());
    }
    let budget = Arc::new(AtomicU64::new(args.ops.unwrap_or(u64::MAX)));
    let started = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, mut worker)| {
            let (value, budget, workload, keys) = (value.clone(), budget.clone(), args.workload, args.keys);
            let by_ops = args.ops.is_some();
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
                let mut samples = Samples::default();
                loop {
                    if by_ops {
                        if budget
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                            .is_err()
                        {
                            break;
                        }
                    } else if Instant::now() >= deadline {
                        break;
                    }
                    let op = workload.pick(&mut rng);
                    let k = key(rng.gen_range(0..keys.max(1)));
                    let t = Instant::now();
                    match worker.op(op, &k, &value).await {
                        Ok(()) => samples.record(t.elapsed()),
                        Err(e) => {
                            samples.errors += 1;
                            if samples.errors <= 3 {
                                eprintln!("client {i}: {op:?} failed: {e:#}");
                            }
                        }
                    }
                }
                samples
            })
        })
        .collect();
    let mut all = Samples::default();
    for t in tasks {
        all.merge(t.await?);
    }
    let elapsed = started.elapsed();
    print_result(&args, Summary::of(all, elapsed), elapsed);
    Ok(())
}

fn print_result(args: &Args, s: Summary, elapsed: Duration) {
    println!(
        "RESULT target={} workload={} clients={} ops={} errors={} seconds={:.2} throughput={:.1} p50_us={} p99_us={} p999_us={}",
        target_name(args.target),
        args.workload.name(),
        args.clients,
        s.ops,
        s.errors,
        elapsed.as_secs_f64(),
        s.throughput,
        s.p50_us,
        s.p99_us,
        s.p999_us
    );
}

fn target_name(t: Target) -> &'static str {
    match t {
        Target::Kahuna => "kahuna",
        Target::Etcd => "etcd",
    }
}

async fn report_snapshot(args: &Args, workers: &[Worker]) -> Result<()> {
    if !args.snapshot {
        return Ok(());
    }
    let Some(Worker::Kahuna(k)) = workers.first() else {
        anyhow::bail!("--snapshot is for the kahuna target");
    };
    let took = k.snapshot().await?;
    println!("SNAPSHOT keys={} build_ms={}", args.keys, took.as_millis());
    Ok(())
}
