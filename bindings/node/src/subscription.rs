//! What a watch (`watch.rs`) and an election observer (`election.rs`) share: a core
//! stream read one message per `next`, which JavaScript can close at any time.
//!
//! The core stream needs `&mut` for each message, so it sits behind an async mutex
//! shared with the `next` in flight. `close()` fires a token that ends a pending `next`
//! with nothing, and the core stream is dropped (cancelling its server stream) by
//! whichever of the two runs last. A `next` aborted through its signal drops between
//! messages of the stream, so the following `next` loses nothing.

use std::future::Future;
use std::sync::Arc;

use napi::Result;
use tokio_util::sync::CancellationToken;

use super::run;

/// A core stream of messages (a watch, an observer).
pub(crate) trait Source: Send + 'static {
    type Message: Send;

    fn next_message(&mut self) -> impl Future<Output = kahuna_client::Result<Self::Message>> + Send;
}

/// An open stream; closed by [`Subscription::close`] or when dropped (the handle
/// garbage-collected).
pub(crate) struct Subscription<S> {
    /// `None` once closed.
    source: Arc<tokio::sync::Mutex<Option<S>>>,
    closed: CancellationToken,
}

impl<S: Source> Subscription<S> {
    pub(crate) fn new(source: S) -> Subscription<S> {
        Subscription {
            source: Arc::new(tokio::sync::Mutex::new(Some(source))),
            closed: CancellationToken::new(),
        }
    }

    /// The next message, or `None` once closed (before the call or while it waited);
    /// cancelled by token `cancel`.
    pub(crate) async fn next(&self, cancel: Option<u32>) -> Result<Option<S::Message>> {
        let source = self.source.clone();
        let closed = self.closed.clone();
        let next = async {
            let mut guard = source.lock().await;
            let Some(s) = guard.as_mut() else {
                return Ok(None);
            };
            Ok::<_, kahuna_client::Error>(Some(s.next_message().await?))
        };
        let message = run(cancel, async {
            tokio::select! {
                biased;
                _ = closed.cancelled() => Ok(None),
                r = next => r,
            }
        })
        .await?;
        if closed.is_cancelled() {
            source.lock().await.take();
            return Ok(None);
        }
        Ok(message)
    }
}

impl<S> Subscription<S> {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Ends a pending `next` at once and drops the core stream unless that `next` still
    /// holds it (it drops it on its way out). Needs no runtime context, which matters at
    /// exit: the finalizer of a stream still open may run after napi's runtime is gone.
    pub(crate) fn close(&self) {
        self.closed.cancel();
        if let Ok(mut s) = self.source.try_lock() {
            s.take();
        }
    }
}

impl<S> Drop for Subscription<S> {
    fn drop(&mut self) {
        self.close();
    }
}
