//! Prometheus metrics: counters and histograms recorded where things happen (one
//! process-wide registry, so the storage and Raft layers need no handle), and gauges
//! read from the member's state when scraped (`scrape`). Rendered in the Prometheus
//! text format (version 0.0.4); served by `http` on `--metrics-listen`.
//!
//! Names follow Prometheus conventions: a `kahuna_` prefix, base units (seconds,
//! bytes), `_total` for counters.

use crate::poison::Recover;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, Instant};

use tracing::Span;

use crate::around::Hook;

/// Latency buckets in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Count buckets (commands or entries per batch).
const COUNT_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
/// Most distinct (rpc, code) series kept; requests past it count under rpc "other".
const MAX_REQUEST_SERIES: usize = 512;

/// A cumulative histogram with fixed buckets.
pub struct Histogram {
    bounds: &'static [f64],
    /// One count per bound, plus +Inf; not cumulative (summed when rendered).
    counts: Vec<AtomicU64>,
    /// The sum of observed values, in millionths.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut total = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            total += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {total}");
        }
        total += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {total}", braces(labels));
    }
}

/// The gRPC status codes, by number.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// What is recorded as it happens.
pub struct Registry {
    /// Request path → request latency by gRPC code (indexed by the code's number):
    /// looked up by the path as received, so recording allocates nothing.
    requests: RwLock<BTreeMap<String, Vec<Histogram>>>,
    /// A durable log append (write and fsync), seconds.
    pub log_append: Histogram,
    /// Entries per durable log append.
    pub log_append_entries: Histogram,
    /// Client commands per proposed log entry.
    pub proposal_commands: Histogram,
    /// Snapshot builds: duration and the size of the last one.
    pub snapshot_build: Histogram,
    pub snapshot_bytes: AtomicU64,
    /// Read-index rounds (leadership confirmations by a quorum).
    pub read_index_rounds: AtomicU64,
    /// Times this member saw the leader change (including to none).
    pub leader_changes: AtomicU64,
}

impl Registry {
    /// Every series empty (one process-wide registry; tests make their own).
    fn new() -> Registry {
        Registry {
            requests: RwLock::new(BTreeMap::new()),
            log_append: Histogram::new(LATENCY_BUCKETS),
            log_append_entries: Histogram::new(COUNT_BUCKETS),
            proposal_commands: Histogram::new(COUNT_BUCKETS),
            snapshot_build: Histogram::new(LATENCY_BUCKETS),
            snapshot_bytes: AtomicU64::new(0),
            read_index_rounds: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
        }
    }
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

pub fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    /// Records one client request to `path` (`/kahuna.v1.Kv/Get`) answered with the
    /// gRPC status number `code` after `elapsed`.
    pub fn request(&self, path: &str, code: usize, elapsed: Duration) {
        let code = if code < CODES.len() { code } else { 2 };
        {
            let series = self.requests.read().recover();
            if let Some(h) = series.get(path) {
                h[code].observe_duration(elapsed);
                return;
            }
        }
        let mut series = self.requests.write().recover();
        // Paths come from clients: past the cap, new ones share one series.
        let key = if series.len() >= MAX_REQUEST_SERIES && !series.contains_key(path) {
            "other"
        } else {
            path
        };
        series
            .entry(key.to_owned())
            .or_insert_with(|| CODES.iter().map(|_| Histogram::new(LATENCY_BUCKETS)).collect())[code]
            .observe_duration(elapsed);
    }
}

/// The client port's latency hook (see `around`): records every request's latency by
/// RPC and status code (the `grpc-status` of the response headers; a response without
/// one is OK, its status coming in the trailers).
#[derive(Clone, Copy, Debug, Default)]
pub struct Measure;

impl Hook for Measure {
    type Seen = (http::Uri, Instant);

    fn before<B>(&self, req: &mut http::Request<B>) -> (Self::Seen, Span) {
        // A Uri clone shares its bytes: no copy of the path per request.
        ((req.uri().clone(), Instant::now()), Span::none())
    }

    fn after<R>((uri, started): Self::Seen, resp: &mut http::Response<R>) {
        let code = resp
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map_or(0, |v| v.parse().unwrap_or(2));
        registry().request(uri.path(), code, started.elapsed());
    }
}

pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// Resident set size of this process, from /proc (0 where there is none).
pub fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

impl Registry {
    /// Every recorded series, in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let r = self;

        family(
            out,
            "kahuna_grpc_request_duration_seconds",
            "histogram",
            "Client requests by RPC and gRPC status code, from receipt to response headers.",
        );
        {
            let series = r.requests.read().recover();
            for (path, by_code) in series.iter() {
                // `/kahuna.v1.Kv/Get` is the RPC `kahuna.v1.Kv.Get`.
                let rpc = path.trim_start_matches('/').replacen('/', ".", 1);
                let rpc = rpc.replace(['\\', '"', '\n'], "_");
                for (code, h) in CODES.iter().zip(by_code) {
                    if h.count() > 0 {
                        let labels = format!("rpc=\"{rpc}\",code=\"{code}\"");
                        h.render(out, "kahuna_grpc_request_duration_seconds", &labels);
                    }
                }
            }
        }
        family(
            out,
            "kahuna_log_append_duration_seconds",
            "histogram",
            "Durable Raft log appends (write and fsync).",
        );
        r.log_append.render(out, "kahuna_log_append_duration_seconds", "");
        family(
            out,
            "kahuna_log_append_entries",
            "histogram",
            "Entries per durable Raft log append.",
        );
        r.log_append_entries.render(out, "kahuna_log_append_entries", "");
        family(
            out,
            "kahuna_proposal_commands",
            "histogram",
            "Client commands batched into one proposed log entry.",
        );
        r.proposal_commands.render(out, "kahuna_proposal_commands", "");
        family(
            out,
            "kahuna_snapshot_build_duration_seconds",
            "histogram",
            "Snapshot builds, from the state's copy to the stored snapshot.",
        );
        r.snapshot_build
            .render(out, "kahuna_snapshot_build_duration_seconds", "");
        gauge(
            out,
            "kahuna_snapshot_size_bytes",
            "Size of the last snapshot this member built.",
            r.snapshot_bytes.load(Ordering::Relaxed) as f64,
        );
        counter(
            out,
            "kahuna_read_index_rounds_total",
            "Leadership confirmations by a quorum for linearizable reads.",
            r.read_index_rounds.load(Ordering::Relaxed),
        );
        counter(
            out,
            "kahuna_leader_changes_total",
            "Times this member saw the leader change (including to none).",
            r.leader_changes.load(Ordering::Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets() {
        let h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.5);
        h.observe(3.0);
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"2\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_sum{a=\"b\"} 5\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }

    #[test]
    fn request_series_are_bounded() {
        let r = Registry::new();
        for i in 0..MAX_REQUEST_SERIES + 10 {
            r.request(&format!("/x/{i}"), 0, Duration::from_millis(1));
        }
        r.request("/x/0", 99, Duration::from_millis(1));
        let series = r.requests.read().unwrap();
        assert_eq!(series.len(), MAX_REQUEST_SERIES + 1);
        assert_eq!(series["other"][0].count(), 10);
        assert_eq!(series["/x/0"][2].count(), 1, "an unknown code counts as UNKNOWN");
    }
}
