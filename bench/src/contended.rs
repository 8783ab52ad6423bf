//! The two workloads whose latency is not one call's: a lock handed from holder to
//! waiter, and a change delivered to a watcher. Both targets run them through their
//! users' APIs (Kahuna's core client; etcd's lock and watch).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::stats::Samples;
use crate::Worker;

const HANDOFF_RESOURCE: &str = "bench/handoff";
const WATCH_PREFIX: &str = "bench/watch/";

/// Every worker takes the one lock and releases it at once, until `deadline`; a
/// sample is the time from a release being sent to the next grant arriving. With
/// `poll`, Kahuna's workers retry every `poll` instead of waiting in the queue.
pub async fn handoff(workers: Vec<Worker>, deadline: Instant, poll: Option<Duration>) -> Result<Samples> {
    // When the last release was sent, if no grant has followed it yet.
    let released: Arc<Mutex<Option<Instant>>> = Arc::default();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let released = released.clone();
            tokio::spawn(async move {
                let mut samples = Samples::default();
                while Instant::now() < deadline {
                    let held = match &mut worker {
                        Worker::Kahuna(k) => k.acquire(HANDOFF_RESOURCE, poll).await.map(Held::Kahuna),
                        Worker::Etcd(e) => e.acquire(HANDOFF_RESOURCE).await.map(Held::Etcd),
                    };
                    let held = match held {
                        Ok(h) => h,
                        Err(e) => {
                            samples.errors += 1;
                            eprintln!("acquire failed: {e:#}");
                            continue;
                        }
                    };
                    let granted = Instant::now();
                    if let Some(at) = lock(&released).take() {
                        samples.record(granted.duration_since(at));
                    }
                    *lock(&released) = Some(Instant::now());
                    let r = match (held, &mut worker) {
                        (Held::Kahuna(g), _) => g.release().await.map(|_| ()).map_err(anyhow::Error::from),
                        (Held::Etcd(key), Worker::Etcd(e)) => e.release(key).await,
                        (Held::Etcd(_), Worker::Kahuna(_)) => Ok(()),
                    };
                    if let Err(e) = r {
                        samples.errors += 1;
                        eprintln!("release failed: {e:#}");
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
    Ok(all)
}

enum Held {
    Kahuna(kahuna_client::LockGuard),
    Etcd(Vec<u8>),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The first worker watches the prefix; the others write keys under it (a value is
/// its send time) until `deadline`; a sample is the time from a write's send to the
/// watcher receiving it. The watcher then waits up to 10 s for the stragglers.
pub async fn watch(mut workers: Vec<Worker>, deadline: Instant) -> Result<Samples> {
    if workers.len() < 2 {
        anyhow::bail!("the watch workload needs at least one writer (--clients 1 or more)");
    }
    let epoch = Instant::now();
    let mut watcher = workers.remove(0);
    let mut delivery = match &mut watcher {
        Worker::Kahuna(k) => Delivery::Kahuna(k.watch(WATCH_PREFIX).await.context("watch")?),
        Worker::Etcd(e) => Delivery::Etcd(e.watch(WATCH_PREFIX).await.context("watch")?),
    };
    let writers: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, mut worker)| {
            tokio::spawn(async move {
                let mut written = 0u64;
                let mut errors = 0u64;
                while Instant::now() < deadline {
                    let sent = epoch.elapsed().as_nanos().to_string();
                    let key = format!("{WATCH_PREFIX}{i}/{}", written % 100);
                    match worker.put(&key, sent.as_bytes()).await {
                        Ok(()) => written += 1,
                        Err(e) => {
                            errors += 1;
                            eprintln!("write failed: {e:#}");
                        }
                    }
                }
                (written, errors)
            })
        })
        .collect();
    let writers = tokio::spawn(async move {
        let (mut written, mut errors) = (0, 0);
        for w in writers {
            let (n, e) = w.await.unwrap_or((0, 1));
            written += n;
            errors += e;
        }
        (written, errors)
    });
    let mut samples = Samples::default();
    let mut expected = None;
    let mut writers = Some(writers);
    let drain_until = deadline + Duration::from_secs(10);
    while expected.is_none_or(|n| (samples.ops() as u64) < n) && Instant::now() < drain_until {
        if let Some(w) = writers.as_mut().filter(|w| w.is_finished()) {
            let (n, e) = w.await?;
            samples.errors += e;
            expected = Some(n);
            writers = None;
        }
        let left = drain_until.saturating_duration_since(Instant::now());
        let values = match tokio::time::timeout(left.min(Duration::from_millis(500)), delivery.next()).await {
            Ok(v) => v?,
            Err(_) => continue,
        };
        let received = epoch.elapsed().as_nanos();
        for v in values {
            let sent: u128 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(received);
            samples.record(Duration::from_nanos(received.saturating_sub(sent) as u64));
        }
    }
    if let Some(n) = expected.filter(|n| (samples.ops() as u64) < *n) {
        eprintln!(
            "the watcher received {} of {n} writes within 10 s of the end",
            samples.ops()
        );
        samples.errors += n - samples.ops() as u64;
    }
    Ok(samples)
}

enum Delivery {
    Kahuna(kahuna_client::Watch),
    Etcd(etcd_client::WatchStream),
}

impl Delivery {
    /// The values of the next message's put events.
    async fn next(&mut self) -> Result<Vec<Vec<u8>>> {
        match self {
            Delivery::Kahuna(w) => {
                let batch = w.next().await?;
                Ok(batch
                    .events
                    .into_iter()
                    .filter(|e| e.kind == kahuna_client::EventKind::Put)
                    .map(|e| e.kv.value)
                    .collect())
            }
            Delivery::Etcd(s) => {
                let msg = s.message().await?.context("the etcd watch ended")?;
                Ok(msg
                    .events()
                    .iter()
                    .filter(|e| e.event_type() == etcd_client::EventType::Put)
                    .filter_map(|e| e.kv().map(|kv| kv.value().to_vec()))
                    .collect())
            }
        }
    }
}
