//! Leader election for the package's `KahunaLeadership` and `KahunaElectionObserver`.
//!
//! A leadership is the election's lock guard, so `campaign` resolves with a
//! `NativeLock` holding it ([`Held::Leader`]): the lock's token, `waitLost` and
//! `release` serve as epoch, lost and resign, and only `proclaim` is new.
//!
//! Observers follow watches (see `watch.rs`): the core [`Observer`] needs `&mut` for
//! each `next`, so it sits behind an async mutex shared with the `next` in flight;
//! `close()` ends a pending `next` with the closed marker.

use std::sync::Arc;

use kahuna_client::{Leader, Observer};
use napi::bindgen_prelude::Buffer;
use napi::Result;
use napi_derive::napi;
use tokio_util::sync::CancellationToken;

use super::{num, run, CallOptions};

/// A lock handle holds either kind of lock (see [`kahuna_client::HeldLock`]).
pub(crate) use kahuna_client::HeldLock as Held;

/// An election's leader.
#[napi(object)]
pub struct NativeLeader {
    pub owner: String,
    /// Its fencing token, larger for every later leader.
    pub epoch: f64,
    pub value: Buffer,
}

pub(crate) fn leader_out(l: Leader) -> NativeLeader {
    NativeLeader {
        owner: l.owner,
        epoch: num(l.epoch),
        value: l.value.into(),
    }
}

/// One `next` of an observer: `closed` once it is closed, else `leader` (absent: none).
#[napi(object)]
pub struct NativeObserved {
    pub closed: bool,
    pub leader: Option<NativeLeader>,
}

/// An open election observer; closed by `close()` or when garbage-collected.
#[napi]
pub struct NativeObserver {
    /// `None` once closed.
    observer: Arc<tokio::sync::Mutex<Option<Observer>>>,
    closed: CancellationToken,
}

impl NativeObserver {
    pub(crate) fn new(observer: Observer) -> NativeObserver {
        NativeObserver {
            observer: Arc::new(tokio::sync::Mutex::new(Some(observer))),
            closed: CancellationToken::new(),
        }
    }
}

/// Drops the core observer (and its stream) unless a `next` still holds it; that
/// `next` drops it on its way out. Needs no runtime context (finalizers at exit).
fn drop_observer(observer: &tokio::sync::Mutex<Option<Observer>>) {
    if let Ok(mut o) = observer.try_lock() {
        o.take();
    }
}

impl Drop for NativeObserver {
    fn drop(&mut self) {
        self.closed.cancel();
        drop_observer(&self.observer);
    }
}

const CLOSED: NativeObserved = NativeObserved {
    closed: true,
    leader: None,
};

#[napi]
impl NativeObserver {
    /// The leader now (first call), then after each change; `closed` once closed.
    #[napi]
    pub async fn next(&self, call: Option<CallOptions>) -> Result<NativeObserved> {
        let observer = self.observer.clone();
        let closed = self.closed.clone();
        let next = async {
            let mut guard = observer.lock().await;
            let Some(o) = guard.as_mut() else {
                return Ok(None);
            };
            Ok::<_, kahuna_client::Error>(Some(o.next().await?))
        };
        let seen = run(call.and_then(|c| c.cancel), async {
            tokio::select! {
                biased;
                _ = closed.cancelled() => Ok(None),
                r = next => r,
            }
        })
        .await?;
        if closed.is_cancelled() {
            observer.lock().await.take();
            return Ok(CLOSED);
        }
        Ok(match seen {
            None => CLOSED,
            Some(l) => NativeObserved {
                closed: false,
                leader: l.map(leader_out),
            },
        })
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Closes the observer: a pending `next` resolves with `closed` at once.
    #[napi]
    pub fn close(&self) {
        self.closed.cancel();
        drop_observer(&self.observer);
    }
}
