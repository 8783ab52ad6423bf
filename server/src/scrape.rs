//! What `/metrics` shows: the registry's series (recorded as things happen, see
//! `metrics`) and gauges read from the member's state at scrape time. Apart from
//! `metrics` so the storage and Raft layers that record into the registry do not
//! depend on the member they are part of.

use crate::metrics::{gauge, registry, rss_bytes};
use crate::raft::node::Node;

/// Every metric, in the Prometheus text format.
pub fn render(node: &Node) -> String {
    let mut out = String::with_capacity(16 * 1024);
    registry().render(&mut out);
    let m = node.raft.metrics().borrow().clone();
    let last_log = m.last_log_index.unwrap_or(0);
    let applied = m.last_applied.map_or(0, |l| l.index);
    gauge(
        &mut out,
        "kahuna_raft_term",
        "The current Raft term.",
        m.current_term as f64,
    );
    gauge(
        &mut out,
        "kahuna_raft_is_leader",
        "1 when this member leads.",
        f64::from(u8::from(m.state == openraft::ServerState::Leader)),
    );
    gauge(
        &mut out,
        "kahuna_raft_has_leader",
        "1 when this member knows a leader.",
        f64::from(u8::from(m.current_leader.is_some())),
    );
    gauge(
        &mut out,
        "kahuna_raft_last_log_index",
        "Index of the last entry in this member's log.",
        last_log as f64,
    );
    gauge(
        &mut out,
        "kahuna_raft_applied_index",
        "Index of the last entry applied to the state machine.",
        applied as f64,
    );
    gauge(
        &mut out,
        "kahuna_raft_apply_lag_entries",
        "Entries in the log not yet applied (last log index minus applied index).",
        last_log.saturating_sub(applied) as f64,
    );
    gauge(
        &mut out,
        "kahuna_raft_snapshot_index",
        "Index the last snapshot covers.",
        m.snapshot.map_or(0, |l| l.index) as f64,
    );

    let (keys, locks, waiters, sequences, limiters, history, dedupe_bytes, dedupe_clients) = match node.sm.read() {
        Ok(st) => (
            st.sm.kv.len(),
            st.sm.locks.len(),
            st.sm.locks.waiters(),
            st.sm.sequences.len(),
            st.sm.limiters.len(),
            st.sm.kv.history_bytes(),
            st.sm.dedupe.answer_bytes(),
            st.sm.dedupe.clients(),
        ),
        Err(_) => Default::default(),
    };
    gauge(&mut out, "kahuna_keys", "Persistent keys held.", keys as f64);
    gauge(
        &mut out,
        "kahuna_locks_held",
        "Persistent locks and semaphore permits held (expired ones until swept).",
        locks as f64,
    );
    gauge(
        &mut out,
        "kahuna_lock_waiters",
        "Callers waiting in persistent lock queues.",
        waiters as f64,
    );
    gauge(&mut out, "kahuna_sequences", "Sequences held.", sequences as f64);
    gauge(
        &mut out,
        "kahuna_rate_limiters",
        "Persistent rate limiters in use.",
        limiters as f64,
    );
    gauge(
        &mut out,
        "kahuna_history_bytes",
        "Bytes of keys and values in the retained history.",
        history as f64,
    );
    gauge(
        &mut out,
        "kahuna_dedupe_answer_bytes",
        "Bytes of answers the dedupe table keeps for retries.",
        dedupe_bytes as f64,
    );
    gauge(
        &mut out,
        "kahuna_dedupe_clients",
        "Clients the dedupe table remembers.",
        dedupe_clients as f64,
    );
    gauge(
        &mut out,
        "kahuna_ephemeral_entries",
        "Ephemeral keys and locks (on the leader; 0 elsewhere).",
        node.ephemeral.peek(crate::ephemeral::Tier::entries).unwrap_or(0) as f64,
    );
    gauge(
        &mut out,
        "kahuna_queued_proposals",
        "Commands waiting for the next log entry.",
        node.proposer.queued() as f64,
    );
    gauge(
        &mut out,
        "kahuna_watches",
        "Open watch and observe streams.",
        node.watches.open() as f64,
    );
    gauge(
        &mut out,
        "kahuna_process_resident_memory_bytes",
        "Resident set size of the server process.",
        rss_bytes() as f64,
    );
    out
}
