//! Sequences: ordered identifiers handed out as non-overlapping ranges, with
//! idempotency keys remembered for a window so a retried reservation gets the same
//! range. Windows are part of each command (set by the leader's configuration), so
//! every replica forgets the same keys at the same point.

use serde::{Deserialize, Serialize};

use super::{Map, Set};

/// Idempotency keys remembered per sequence at once. A key is never forgotten
/// inside its window (that would hand out a second range for it): a new key beyond
/// this is refused until the oldest window ends.
pub const MAX_KEYS_PER_SEQUENCE: usize = 10_000;

/// Why a reservation was refused.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SeqRefusal {
    /// The sequence would pass `u64::MAX`.
    Exhausted,
    /// [`MAX_KEYS_PER_SEQUENCE`] keys are inside their window; the oldest window
    /// ends at `free_at_ms`.
    KeysFull { free_at_ms: u64 },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Reserved {
    first: u64,
    count: u64,
    forget_at_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sequences {
    /// name -> next value to hand out (absent = 1).
    next: Map<String, u64>,
    /// (name, idempotency key) -> the range it reserved.
    reserved: Map<(String, String), Reserved>,
    /// (forget_at_ms, name, key), to forget keys in order.
    forget: Set<(u64, String, String)>,
    per_sequence: Map<String, usize>,
}

/// A reserved range `[first, first + count)`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Range {
    pub first: u64,
    pub count: u64,
    pub replayed: bool,
}

impl Sequences {
    /// Sequences that have handed out identifiers (they are never forgotten).
    pub fn len(&self) -> usize {
        self.next.len()
    }

    pub fn is_empty(&self) -> bool {
        self.next.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.next.contains_key(name)
    }

    pub fn peek(&self, name: &str) -> u64 {
        self.next.get(name).copied().unwrap_or(1)
    }

    /// Reserves `count` identifiers, or returns the range `key` reserved before.
    pub fn next(
        &mut self,
        now_ms: u64,
        name: &str,
        count: u64,
        key: Option<&str>,
        window_ms: u64,
    ) -> Result<Range, SeqRefusal> {
        if let Some(key) = key {
            if let Some(r) = self.reserved.get(&(name.to_owned(), key.to_owned())) {
                if r.forget_at_ms > now_ms {
                    return Ok(Range {
                        first: r.first,
                        count: r.count,
                        replayed: true,
                    });
                }
            }
            self.forget_expired(now_ms);
            if self.per_sequence.get(name).copied().unwrap_or(0) >= MAX_KEYS_PER_SEQUENCE
                && !self.reserved.contains_key(&(name.to_owned(), key.to_owned()))
            {
                let free_at_ms = self
                    .forget
                    .iter()
                    .find(|(_, n, _)| n == name)
                    .map_or(now_ms, |(at, _, _)| *at);
                return Err(SeqRefusal::KeysFull { free_at_ms });
            }
        }
        let first = self.peek(name);
        let next = first.checked_add(count).ok_or(SeqRefusal::Exhausted)?;
        self.next.insert(name.to_owned(), next);
        if let Some(key) = key {
            self.remember(name, key, first, count, now_ms.saturating_add(window_ms));
        }
        Ok(Range {
            first,
            count,
            replayed: false,
        })
    }

    fn remember(&mut self, name: &str, key: &str, first: u64, count: u64, forget_at_ms: u64) {
        let id = (name.to_owned(), key.to_owned());
        if let Some(old) = self.reserved.remove(&id) {
            self.forget.remove(&(old.forget_at_ms, id.0.clone(), id.1.clone()));
        } else {
            *self.per_sequence.entry(name.to_owned()).or_default() += 1;
        }
        self.reserved.insert(
            id.clone(),
            Reserved {
                first,
                count,
                forget_at_ms,
            },
        );
        self.forget.insert((forget_at_ms, id.0, id.1));
    }

    fn drop_key(&mut self, at: u64, name: String, key: String) {
        self.forget.remove(&(at, name.clone(), key.clone()));
        self.reserved.remove(&(name.clone(), key));
        if let Some(n) = self.per_sequence.get_mut(&name) {
            *n -= 1;
            if *n == 0 {
                self.per_sequence.remove(&name);
            }
        }
    }

    /// Forgets idempotency keys whose window has passed.
    pub fn forget_expired(&mut self, now_ms: u64) {
        while let Some((at, n, k)) = self.forget.get_min().cloned() {
            if at > now_ms {
                break;
            }
            self.drop_key(at, n, k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_do_not_overlap_and_keys_replay() {
        let mut s = Sequences::default();
        let a = s.next(0, "ids", 10, Some("k1"), 1000).expect("range");
        assert_eq!((a.first, a.count, a.replayed), (1, 10, false));
        let b = s.next(0, "ids", 5, None, 1000).expect("range");
        assert_eq!(b.first, 11);
        let again = s.next(500, "ids", 10, Some("k1"), 1000).expect("range");
        assert_eq!((again.first, again.replayed), (1, true));
        assert_eq!(s.peek("ids"), 16);
        // After the window the key is new again.
        s.forget_expired(1000);
        let fresh = s.next(1000, "ids", 1, Some("k1"), 1000).expect("range");
        assert_eq!((fresh.first, fresh.replayed), (16, false));
        assert_eq!(s.peek("other"), 1);
    }

    #[test]
    fn overflow_is_refused() {
        let mut s = Sequences::default();
        s.next.insert("x".into(), u64::MAX - 1);
        assert_eq!(s.next(0, "x", 2, None, 0), Err(SeqRefusal::Exhausted));
        assert!(s.next(0, "x", 1, None, 0).is_ok());
    }

    #[test]
    fn a_key_inside_its_window_is_never_forgotten_to_make_room() {
        let mut s = Sequences::default();
        for i in 0..MAX_KEYS_PER_SEQUENCE as u64 {
            s.next(i, "ids", 1, Some(&format!("k{i}")), 100_000).expect("range");
        }
        // The table is full: a new key is refused, naming when the oldest window ends...
        assert_eq!(
            s.next(50, "ids", 1, Some("new"), 100_000),
            Err(SeqRefusal::KeysFull { free_at_ms: 100_000 })
        );
        // ...while every remembered key still gets its own range back, the oldest too.
        let first = s.next(60, "ids", 1, Some("k0"), 100_000).expect("replay");
        assert_eq!((first.first, first.replayed), (1, true));
        // Keys without an idempotency key and other sequences are not affected.
        assert!(s.next(60, "ids", 1, None, 100_000).is_ok());
        assert!(s.next(60, "other", 1, Some("new"), 100_000).is_ok());
        // Once the oldest window ends, its slot is free for a new key.
        let fresh = s.next(100_000, "ids", 1, Some("new"), 100_000).expect("range");
        assert!(!fresh.replayed);
    }
}
