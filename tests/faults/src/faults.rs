//! The fault schedule: a quiet interval, then one fault held for a few seconds, then
//! healing and waiting for a leader, in turn over the enabled kinds until the time is up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::Rng;

use kahuna_testkit::Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    KillLeader,
    KillRandom,
    Pause,
    PartitionLeader,
    PartitionSplit,
    ClockSkew,
    RestartAll,
}

pub const ALL: [Kind; 7] = [
    Kind::KillLeader,
    Kind::KillRandom,
    Kind::Pause,
    Kind::PartitionLeader,
    Kind::PartitionSplit,
    Kind::ClockSkew,
    Kind::RestartAll,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::KillLeader => "kill-leader",
            Kind::KillRandom => "kill-random",
            Kind::Pause => "pause",
            Kind::PartitionLeader => "partition-leader",
            Kind::PartitionSplit => "partition-split",
            Kind::ClockSkew => "clock-skew",
            Kind::RestartAll => "restart-all",
        }
    }

    pub fn needs_netns(self) -> bool {
        matches!(self, Kind::PartitionLeader | Kind::PartitionSplit)
    }
}

/// Parses `--faults`: kind names, or the groups `kill`, `partition`, `all`, `none`.
pub fn parse(list: &str) -> Result<Vec<Kind>> {
    let mut out = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let kinds: Vec<Kind> = match word {
            "all" => ALL.to_vec(),
            "none" => vec![],
            "kill" => vec![Kind::KillLeader, Kind::KillRandom],
            "partition" => vec![Kind::PartitionLeader, Kind::PartitionSplit],
            "skew" | "clock" => vec![Kind::ClockSkew],
            "restart" => vec![Kind::RestartAll],
            "pause" | "stop" => vec![Kind::Pause],
            w => match ALL.iter().find(|k| k.name() == w) {
                Some(k) => vec![*k],
                None => bail!(
                    "unknown fault {w:?}: use {} or kill, partition, skew, restart, all, none",
                    ALL.map(|k| k.name()).join(", ")
                ),
            },
        };
        for k in kinds {
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    Ok(out)
}

pub struct Schedule {
    pub kinds: Vec<Kind>,
    pub quiet: (u64, u64),
    pub hold: (u64, u64),
}

#[derive(Default)]
pub struct Log {
    pub injected: BTreeMap<&'static str, u64>,
    /// Heals after which no leader was found in time.
    pub leaderless_heals: u64,
    pub events: Vec<String>,
}

impl Log {
    fn note(&mut self, _started: Instant, text: String) {
        // Seconds on the clock the histories use, so faults line up with operations.
        let line = format!("[{:8.3}s] {text}", crate::workload::now_ns() as f64 / 1e9);
        eprintln!("{line}");
        self.events.push(line);
    }
}

fn pick(rng: &mut impl Rng, (lo, hi): (u64, u64)) -> Duration {
    Duration::from_millis(rng.gen_range(lo..=hi.max(lo)))
}

/// Injects faults until `until`. Every fault is healed before the next one starts and
/// before this returns.
pub async fn run(cluster: &mut Cluster, schedule: &Schedule, until: Instant, log: &mut Log) -> Result<()> {
    let started = Instant::now();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    let kinds: Vec<Kind> = schedule
        .kinds
        .iter()
        .copied()
        .filter(|k| cluster.netns || !k.needs_netns())
        .collect();
    if kinds.len() < schedule.kinds.len() {
        log.note(
            started,
            "partitions skipped: no network namespaces on this machine".into(),
        );
    }
    let mut order: Vec<Kind> = Vec::new();
    loop {
        let quiet = pick(&mut rng, schedule.quiet);
        if Instant::now() + quiet >= until || kinds.is_empty() {
            break;
        }
        tokio::time::sleep(quiet).await;
        if order.is_empty() {
            // Every kind once per round, in a random order.
            order = kinds.clone();
            order.shuffle(&mut rng);
        }
        let Some(kind) = order.pop() else { break };
        let hold = pick(&mut rng, schedule.hold).min(until.saturating_duration_since(Instant::now()));
        log.note(started, format!("{}: starting", kind.name()));
        let what = inject(cluster, kind, hold, &mut rng).await?;
        *log.injected.entry(kind.name()).or_default() += 1;
        log.note(
            started,
            format!("{}: {what} for {:.1}s", kind.name(), hold.as_secs_f64()),
        );
        heal(cluster)?;
        match cluster.wait_leader_agreed(Duration::from_secs(30)).await {
            Some(l) => log.note(started, format!("healed; leader {l}")),
            None => {
                log.leaderless_heals += 1;
                log.note(started, "healed; NO LEADER within 30s".into());
            }
        }
    }
    Ok(())
}

async fn leader_or_random(cluster: &Cluster, rng: &mut impl Rng) -> u64 {
    match cluster.leader().await {
        Some(l) => l,
        None => rng.gen_range(1..=cluster.members.len() as u64),
    }
}

/// The leader (or a random member when there is none) half the time, otherwise any
/// member.
async fn half_the_time_the_leader(cluster: &Cluster, rng: &mut impl Rng) -> u64 {
    if rng.gen_bool(0.5) {
        leader_or_random(cluster, rng).await
    } else {
        rng.gen_range(1..=cluster.members.len() as u64)
    }
}

/// Applies `kind`, holds it for `hold`, and undoes what must be undone in place (the
/// restarts); network and process state is restored by [`heal`].
async fn inject(cluster: &mut Cluster, kind: Kind, hold: Duration, rng: &mut impl Rng) -> Result<String> {
    let n = cluster.members.len() as u64;
    let ids = cluster.ids();
    Ok(match kind {
        Kind::KillLeader | Kind::KillRandom => {
            let id = if kind == Kind::KillLeader {
                leader_or_random(cluster, rng).await
            } else {
                rng.gen_range(1..=n)
            };
            cluster.kill(id);
            tokio::time::sleep(hold).await;
            cluster.try_spawn(id)?;
            format!("SIGKILL member {id}, restarted")
        }
        Kind::Pause => {
            let id = half_the_time_the_leader(cluster, rng).await;
            cluster.pause(id);
            tokio::time::sleep(hold).await;
            cluster.resume(id);
            format!("SIGSTOP member {id}, then SIGCONT")
        }
        Kind::PartitionLeader => {
            let l = leader_or_random(cluster, rng).await;
            let rest: Vec<u64> = ids.iter().copied().filter(|&i| i != l).collect();
            cluster.cut(&[l], &rest)?;
            tokio::time::sleep(hold).await;
            format!("isolated leader {l} from {rest:?}")
        }
        Kind::PartitionSplit => {
            let mut shuffled = ids.clone();
            shuffled.shuffle(rng);
            let minority: Vec<u64> = shuffled[..((n as usize) - 1) / 2].to_vec();
            let majority: Vec<u64> = shuffled[((n as usize) - 1) / 2..].to_vec();
            cluster.cut(&minority, &majority)?;
            tokio::time::sleep(hold).await;
            format!("split {minority:?} | {majority:?}")
        }
        Kind::ClockSkew => {
            let id = half_the_time_the_leader(cluster, rng).await;
            // Off by more than the longest lock TTL of the workloads (5 s), ahead or
            // behind: a leader that judged leases by its wall clock would cut them
            // short or stretch them.
            let magnitude = rng.gen_range(6..=120) as i64;
            let skew = if rng.gen_bool(0.5) { magnitude } else { -magnitude };
            cluster.kill(id);
            cluster.try_spawn_skewed(id, skew)?;
            // Let it rejoin, then pause whoever leads (if not it) so that the skewed
            // member may be elected and lead with its clock; up to three tries.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let mut paused = Vec::new();
            for _ in 0..3 {
                match cluster.leader().await {
                    Some(l) if l != id => {
                        cluster.pause(l);
                        tokio::time::sleep(hold).await;
                        cluster.resume(l);
                        paused.push(l);
                    }
                    _ => break,
                }
            }
            if paused.is_empty() {
                tokio::time::sleep(hold).await;
            }
            let also = if paused.is_empty() {
                String::new()
            } else {
                format!(", leaders {paused:?} paused meanwhile")
            };
            let now_leader = cluster.wait_leader_agreed(Duration::from_secs(10)).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            cluster.kill(id);
            cluster.try_spawn(id)?;
            format!(
                "member {id} restarted with its clock {skew:+}s off{also} (leader then: {now_leader:?}), then restarted true"
            )
        }
        Kind::RestartAll => {
            for &id in &ids {
                cluster.kill(id);
            }
            tokio::time::sleep(hold.min(Duration::from_secs(2))).await;
            for &id in &ids {
                cluster.try_spawn(id)?;
            }
            "SIGKILL every member, restarted all".to_string()
        }
    })
}

/// Resumes paused members, starts stopped ones, and removes every partition.
pub fn heal(cluster: &mut Cluster) -> Result<()> {
    cluster.heal_network()?;
    for id in cluster.ids() {
        if cluster.members[(id - 1) as usize].paused {
            cluster.resume(id);
        }
        if !cluster.is_running(id) {
            cluster.try_spawn(id)?;
        }
    }
    Ok(())
}
