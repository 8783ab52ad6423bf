//! Sequence checker: no identifier is handed out twice, and every answer for one
//! idempotency key is the same range.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ms, Anomaly};

/// One answered `next` call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alloc {
    pub name: String,
    pub key: String,
    pub first: u64,
    pub count: u64,
    pub replayed: bool,
    pub sent: i64,
    pub ack: i64,
}

fn a(x: &Alloc) -> String {
    format!(
        "next({}, key {}) -> [{}, {}) replayed={} sent {} ack {} (ms)",
        x.name,
        x.key,
        x.first,
        x.first + x.count,
        x.replayed,
        ms(x.sent),
        ms(x.ack)
    )
}

pub fn check(allocs: &[Alloc]) -> Vec<Anomaly> {
    let mut out = Vec::new();
    // The answer per (name, key): every later answer must be the same range.
    let mut by_key: BTreeMap<(&str, &str), &Alloc> = BTreeMap::new();
    for x in allocs {
        match by_key.get(&(x.name.as_str(), x.key.as_str())) {
            Some(first) if (first.first, first.count) != (x.first, x.count) => {
                out.push(Anomaly::new(
                    "retry with the same idempotency key got a different range",
                    vec![a(first), a(x)],
                ));
            }
            Some(_) => {}
            None => {
                by_key.insert((x.name.as_str(), x.key.as_str()), x);
            }
        }
    }
    // Distinct keys: ranges of one sequence never overlap.
    let mut by_name: BTreeMap<&str, Vec<&Alloc>> = BTreeMap::new();
    for x in by_key.values() {
        by_name.entry(x.name.as_str()).or_default().push(x);
    }
    for ranges in by_name.values_mut() {
        ranges.sort_by_key(|x| x.first);
        let mut reach: Option<&Alloc> = None;
        for x in ranges.iter() {
            if x.count == 0 || x.first == 0 {
                out.push(Anomaly::new("empty or zero range", vec![a(x)]));
                continue;
            }
            if let Some(r) = reach {
                if x.first < r.first + r.count {
                    out.push(Anomaly::new("identifier handed out twice", vec![a(r), a(x)]));
                }
                if x.first + x.count <= r.first + r.count {
                    continue;
                }
            }
            reach = Some(x);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(key: &str, first: u64, count: u64) -> Alloc {
        Alloc {
            name: "s".into(),
            key: key.into(),
            first,
            count,
            replayed: false,
            sent: 0,
            ack: 1,
        }
    }

    #[test]
    fn disjoint_ranges_and_same_replays_pass() {
        let h = vec![alloc("a", 1, 3), alloc("b", 4, 1), alloc("a", 1, 3), alloc("c", 5, 10)];
        assert!(check(&h).is_empty());
    }

    #[test]
    fn overlapping_ranges_fail() {
        let h = vec![alloc("a", 1, 3), alloc("b", 3, 2)];
        let k: Vec<_> = check(&h).into_iter().map(|a| a.kind).collect();
        assert_eq!(k, vec!["identifier handed out twice"]);
    }

    #[test]
    fn different_replay_fails() {
        let h = vec![alloc("a", 1, 3), alloc("a", 4, 3)];
        let k: Vec<_> = check(&h).into_iter().map(|a| a.kind).collect();
        assert_eq!(k, vec!["retry with the same idempotency key got a different range"]);
    }

    #[test]
    fn a_range_inside_another_fails() {
        let h = vec![alloc("a", 1, 10), alloc("b", 3, 2), alloc("c", 5, 1)];
        let k: Vec<_> = check(&h).into_iter().map(|a| a.kind).collect();
        assert_eq!(k, vec!["identifier handed out twice", "identifier handed out twice"]);
    }
}
