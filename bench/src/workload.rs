//! The workloads, defined once; each target implements them with its own API.

use rand::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Unconditional writes to random keys.
    Put,
    /// Linearizable reads of random preloaded keys.
    Get,
    /// Compare-and-set by revision on a key per client (always succeeds).
    Cas,
    /// Persistent lock acquire + release on a resource per client.
    Lock,
    /// Ephemeral lock acquire + release (etcd has no such tier: its normal lock).
    EphemeralLock,
    /// Allocate one id from a shared sequence.
    Seq,
    /// 50% get, 20% put, 10% cas, 10% lock+release, 10% seq.
    Mixed,
    /// Write keys 0..--keys once each (to build a data set of a given size).
    Load,
    /// Every client takes the same lock, waiting, and releases it at once; latency is
    /// the handoff, from one holder's release to the next one's grant.
    Handoff,
    /// Rate-limiter checks, every client on one limiter (a fixed window far above the
    /// rate, so every check is a full decision): persistent (a log write each).
    Rate,
    /// The same on the ephemeral tier (the leader's memory).
    EphemeralRate,
    /// `--clients` writers, plus one client watching their prefix; latency is from a
    /// write's send to its delivery to the watcher.
    Watch,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Cas => "cas",
            Workload::Lock => "lock",
            Workload::EphemeralLock => "ephemeral-lock",
            Workload::Seq => "seq",
            Workload::Mixed => "mixed",
            Workload::Load => "load",
            Workload::Handoff => "handoff",
            Workload::Watch => "watch",
            Workload::Rate => "rate",
            Workload::EphemeralRate => "ephemeral-rate",
        }
    }

    /// The single operation to run next (a mixed workload draws one).
    pub fn pick(self, rng: &mut impl Rng) -> Workload {
        if self != Workload::Mixed {
            return self;
        }
        match rng.gen_range(0..10) {
            0..=4 => Workload::Get,
            5 | 6 => Workload::Put,
            7 => Workload::Cas,
            8 => Workload::Lock,
            _ => Workload::Seq,
        }
    }

    pub fn needs_preload(self) -> bool {
        matches!(self, Workload::Get | Workload::Mixed)
    }
}

pub fn key(i: u64) -> String {
    format!("bench/k/{i:08}")
}
