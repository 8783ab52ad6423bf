//! Leader election for the package's `KahunaLeadership` and `KahunaElectionObserver`.
//!
//! A leadership is the election's lock guard, so `campaign` resolves with a
//! `NativeLock` holding it ([`Held::Leader`]): the lock's token, `waitLost` and
//! `release` serve as epoch, lost and resign, and only `proclaim` is new.
//!
//! An observer is read and closed as a [`Subscription`], as a watch is; a closed
//! observer's `next` resolves with the closed marker.

use std::future::Future;

use kahuna_client::{Error, Leader, Observer};
use napi::bindgen_prelude::Buffer;
use napi::Result;
use napi_derive::napi;

use super::subscription::{Source, Subscription};
use super::{num, CallOptions};

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

impl Source for Observer {
    type Message = Option<Leader>;

    fn next_message(&mut self) -> impl Future<Output = kahuna_client::Result<Option<Leader>>> + Send {
        Observer::next(self)
    }
}

/// An open election observer; closed by `close()` or when garbage-collected.
#[napi]
pub struct NativeObserver {
    observer: Subscription<Observer>,
}

impl NativeObserver {
    pub(crate) fn new(observer: Observer) -> NativeObserver {
        NativeObserver {
            observer: Subscription::new(observer),
        }
    }
}

#[napi]
impl NativeObserver {
    /// The leader now (first call), then after each change; `closed` once closed.
    #[napi]
    pub async fn next(&self, call: Option<CallOptions>) -> Result<NativeObserved> {
        let seen = self.observer.next(call.and_then(|c| c.cancel)).await?;
        Ok(NativeObserved {
            closed: seen.is_none(),
            leader: seen.flatten().map(leader_out),
        })
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.observer.is_closed()
    }

    /// Closes the observer: a pending `next` resolves with `closed` at once.
    #[napi]
    pub fn close(&self) {
        self.observer.close();
    }
}

/// Announces `value` as the leader; a plain lock has nothing to announce.
pub(crate) async fn proclaim(held: &Held, value: Vec<u8>) -> kahuna_client::Result<()> {
    match held {
        Held::Leader(l) => l.proclaim(value).await,
        Held::Lock(_) => Err(Error::InvalidArgument("this lock is not a leadership".into())),
    }
}
