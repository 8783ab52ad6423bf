//! What an open watch (`watch.rs`) and an election observer (`election.rs`) share: a core
//! stream read one message at a time by the Python package's iterators.
//!
//! The core stream needs `&mut` for each message, so it sits behind an async mutex
//! shared with the `next` in flight. `close()` (or dropping the handle) fires a token
//! that ends a pending `next` with "closed", and then drops the core stream, which
//! cancels its server stream. A cancelled `next` (asyncio cancellation, Ctrl-C) drops
//! between messages of the stream, so the following `next` loses nothing.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use kahuna_client::Error;
use tokio_util::sync::CancellationToken;

use super::{runtime, HANDLES};

/// A core stream read with `&mut`, one message per call.
pub(crate) trait Stream: Send + 'static {
    type Item: Send + 'static;
    fn next_message(&mut self) -> impl Future<Output = Result<Self::Item, Error>> + Send + '_;
}

/// An open core stream, counted among the live handles until dropped.
pub(crate) struct Open<S: Send + 'static> {
    /// `None` once closed.
    stream: Arc<tokio::sync::Mutex<Option<S>>>,
    closed: CancellationToken,
}

impl<S: Stream> Open<S> {
    pub(crate) fn new(stream: S) -> Open<S> {
        HANDLES.fetch_add(1, Ordering::SeqCst);
        Open {
            stream: Arc::new(tokio::sync::Mutex::new(Some(stream))),
            closed: CancellationToken::new(),
        }
    }

    /// The next message, or `None` once the stream is closed (before or while waiting).
    pub(crate) fn next(&self) -> impl Future<Output = Result<Option<S::Item>, Error>> + Send + 'static {
        let stream = self.stream.clone();
        let closed = self.closed.clone();
        async move {
            let next = async {
                let mut guard = stream.lock().await;
                match guard.as_mut() {
                    Some(s) => s.next_message().await.map(Some),
                    None => Ok(None),
                }
            };
            tokio::select! {
                biased;
                _ = closed.cancelled() => Ok(None),
                r = next => r,
            }
        }
    }
}

impl<S: Send + 'static> Open<S> {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Ends a pending `next`, then drops the core stream on the runtime once that `next`
    /// has let go of it.
    pub(crate) fn close(&self) {
        if self.closed.is_cancelled() {
            return;
        }
        self.closed.cancel();
        if let Ok(rt) = runtime() {
            let stream = self.stream.clone();
            rt.spawn(async move {
                stream.lock().await.take();
            });
        }
    }
}

impl<S: Send + 'static> Drop for Open<S> {
    fn drop(&mut self) {
        self.close();
        HANDLES.fetch_sub(1, Ordering::SeqCst);
    }
}
