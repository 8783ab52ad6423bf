//! Lock checker: fencing tokens of successive grants strictly increase, no write with a
//! stale token is accepted, and no two owners hold a lease at the same time by their
//! own conservative clocks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ms, Anomaly};

/// A grant as its holder saw it: sent and acknowledged, and the end of the lease in the
/// holder's own view (the last moment its lease was trusted, or when it released).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub owner: String,
    pub resource: String,
    pub token: u64,
    pub sent: i64,
    pub ack: i64,
    pub end: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResult {
    /// Accepted at this revision.
    Ok(u64),
    /// Refused with FENCED.
    Fenced,
    /// Refused otherwise, certainly not applied.
    Failed,
    /// May or may not have been applied.
    Unknown,
}

/// A write fenced by `token`, to the resource's data key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FencedWrite {
    pub owner: String,
    pub resource: String,
    pub token: u64,
    pub value: String,
    pub sent: i64,
    pub ack: i64,
    pub result: WriteResult,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LockHistory {
    pub grants: Vec<Grant>,
    pub writes: Vec<FencedWrite>,
}

fn g(x: &Grant) -> String {
    format!(
        "grant {} token {} to {} sent {} ack {} held until {} (ms)",
        x.resource,
        x.token,
        x.owner,
        ms(x.sent),
        ms(x.ack),
        ms(x.end)
    )
}

fn w(x: &FencedWrite) -> String {
    format!(
        "write {}={} token {} by {} sent {} ack {} -> {:?} (ms)",
        x.resource,
        x.value,
        x.token,
        x.owner,
        ms(x.sent),
        ms(x.ack),
        x.result
    )
}

pub fn check(h: &LockHistory) -> Vec<Anomaly> {
    let mut out = Vec::new();
    let mut grants: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for x in &h.grants {
        grants.entry(x.resource.as_str()).or_default().push(x);
    }
    let mut writes: BTreeMap<&str, Vec<&FencedWrite>> = BTreeMap::new();
    for x in &h.writes {
        writes.entry(x.resource.as_str()).or_default().push(x);
    }
    for (resource, gs) in &mut grants {
        gs.sort_by_key(|x| x.ack);
        for (i, a) in gs.iter().enumerate() {
            for b in &gs[i + 1..] {
                if a.owner == b.owner {
                    continue;
                }
                if a.token == b.token {
                    out.push(Anomaly::new("same token granted twice", vec![g(a), g(b)]));
                }
                // b was acknowledged after a; if b was even sent after a's ack, b's
                // token must be larger.
                if a.ack < b.sent && a.token >= b.token {
                    out.push(Anomaly::new("token of a later grant is not larger", vec![g(a), g(b)]));
                }
                // Both held at once, each by its own clock.
                if b.ack < a.end && a.ack < b.end {
                    out.push(Anomaly::new("two holders at the same time", vec![g(a), g(b)]));
                }
            }
        }
        // A write sent after a newer grant was acknowledged must not be accepted.
        let mut best: Vec<(i64, u64, usize)> = Vec::with_capacity(gs.len());
        for (i, x) in gs.iter().enumerate() {
            let prev = best.last().map_or((0, 0), |&(_, t, j)| (t, j));
            if x.token > prev.0 || best.is_empty() {
                best.push((x.ack, x.token, i));
            } else {
                best.push((x.ack, prev.0, prev.1));
            }
        }
        for x in writes.get(resource).into_iter().flatten() {
            if !matches!(x.result, WriteResult::Ok(_)) {
                continue;
            }
            let n = best.partition_point(|&(ack, _, _)| ack < x.sent);
            if n == 0 {
                continue;
            }
            let (_, token, j) = best[n - 1];
            if token > x.token {
                out.push(Anomaly::new("write with a stale token accepted", vec![g(gs[j]), w(x)]));
            }
        }
    }
    // In commit order, accepted writes never go back to an older token.
    for ws in writes.values() {
        let mut ok: Vec<(&FencedWrite, u64)> = ws
            .iter()
            .filter_map(|x| match x.result {
                WriteResult::Ok(rev) => Some((*x, rev)),
                _ => None,
            })
            .collect();
        ok.sort_by_key(|&(_, rev)| rev);
        let mut newest: Option<&FencedWrite> = None;
        for (x, rev) in ok {
            if let Some(n) = newest {
                if x.token < n.token {
                    out.push(Anomaly::new(
                        "write with a stale token accepted after a newer one",
                        vec![
                            format!("{} at revision {}", w(n), rev_of(n)),
                            format!("{} at revision {rev}", w(x)),
                        ],
                    ));
                    continue;
                }
            }
            newest = Some(x);
        }
    }
    out
}

fn rev_of(x: &FencedWrite) -> u64 {
    match x.result {
        WriteResult::Ok(r) => r,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(owner: &str, token: u64, sent: i64, ack: i64, end: i64) -> Grant {
        Grant {
            owner: owner.into(),
            resource: "r".into(),
            token,
            sent,
            ack,
            end,
        }
    }

    fn write(owner: &str, token: u64, sent: i64, result: WriteResult) -> FencedWrite {
        FencedWrite {
            owner: owner.into(),
            resource: "r".into(),
            token,
            value: format!("{owner}-{sent}"),
            sent,
            ack: sent + 5,
            result,
        }
    }

    fn kinds(h: &LockHistory) -> Vec<String> {
        check(h).into_iter().map(|a| a.kind).collect()
    }

    fn good() -> LockHistory {
        LockHistory {
            grants: vec![
                grant("a", 10, 0, 5, 100),
                grant("b", 20, 50, 120, 200),
                grant("c", 30, 150, 210, 300),
            ],
            writes: vec![
                write("a", 10, 10, WriteResult::Ok(11)),
                write("a", 10, 130, WriteResult::Fenced),
                write("b", 20, 125, WriteResult::Ok(21)),
                write("c", 30, 220, WriteResult::Ok(31)),
                write("b", 20, 230, WriteResult::Fenced),
            ],
        }
    }

    #[test]
    fn a_correct_history_passes() {
        assert!(check(&good()).is_empty(), "{:?}", check(&good()));
    }

    #[test]
    fn overlapping_leases_fail() {
        let mut h = good();
        h.grants[1].ack = 90; // b acknowledged while a still trusted its lease (until 100)
        assert_eq!(kinds(&h), vec!["two holders at the same time"]);
    }

    #[test]
    fn decreasing_tokens_fail() {
        let mut h = good();
        h.grants[2].token = 15;
        h.writes[3].token = 15;
        let k = kinds(&h);
        assert!(k.contains(&"token of a later grant is not larger".to_string()), "{k:?}");
    }

    #[test]
    fn duplicate_tokens_fail() {
        let mut h = good();
        h.grants[1].token = 10;
        h.writes[2].token = 10;
        let k = kinds(&h);
        assert!(k.contains(&"same token granted twice".to_string()), "{k:?}");
    }

    #[test]
    fn stale_write_accepted_fails() {
        let mut h = good();
        h.writes[1].result = WriteResult::Ok(25); // a's write after b's grant, accepted
        let k = kinds(&h);
        assert!(k.contains(&"write with a stale token accepted".to_string()), "{k:?}");
        assert!(
            k.contains(&"write with a stale token accepted after a newer one".to_string()),
            "{k:?}"
        );
    }

    #[test]
    fn stale_write_in_commit_order_fails() {
        let mut h = good();
        // Sent before b's grant was acknowledged, but committed after b's write.
        h.writes.push(write("a", 10, 115, WriteResult::Ok(22)));
        assert_eq!(kinds(&h), vec!["write with a stale token accepted after a newer one"]);
    }

    #[test]
    fn unknown_and_refused_writes_are_not_anomalies() {
        let mut h = good();
        h.writes.push(write("a", 10, 300, WriteResult::Unknown));
        h.writes.push(write("a", 10, 300, WriteResult::Failed));
        assert!(check(&h).is_empty());
    }
}
