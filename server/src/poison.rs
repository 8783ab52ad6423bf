//! The one way this server treats a std lock poisoned by a panic: it recovers the
//! guard and goes on ([`Recover::recover`]).
//!
//! A lock is poisoned when a thread panicked while holding it; the data is then as the
//! interrupted critical section left it. Every lock outside the stores guards data that is
//! whole between statements (a map insert, a counter, a swapped `Arc`, a queue whose
//! invariants hold between calls), so recovering is sound, and refusing would turn
//! one failed request into a member that fails every later one, or worse, silently
//! skip work such as recording a leader's contact. The exceptions are the stores
//! (`store`): the state machine, which an apply changes over many statements, and the
//! memory and SQLite backends, which a write batch does. There a poisoned lock is not
//! recovered but reported as a storage error, which stops the Raft core, and the member
//! exits to replay its durable log on restart.

use std::sync::{LockResult, PoisonError};

/// Recovers the guard of a poisoned lock (see the module's comment for why).
pub trait Recover<G> {
    fn recover(self) -> G;
}

impl<G> Recover<G> for LockResult<G> {
    fn recover(self) -> G {
        self.unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_data() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = m2.lock().recover();
            *g = 2;
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*m.lock().recover(), 2);
    }
}
