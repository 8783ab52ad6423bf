//! A cap on the connections one port holds open. Each connection costs buffers and a
//! task, and HTTP/2 lets each carry many requests, so without a cap a client that
//! opens connections in a loop exhausts the member's memory or file descriptors. A
//! connection past the cap is closed as soon as it is accepted (the client sees the
//! connection reset and tries another member or again later); one that ends frees its
//! slot.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;

/// An accepted connection holding one of its port's slots until it is dropped.
pub struct Counted<S> {
    inner: S,
    _slot: OwnedSemaphorePermit,
}

/// The connections of `incoming` that fit in `max` open at once; the rest are closed.
pub fn limit<S, E>(
    incoming: impl Stream<Item = Result<S, E>>,
    max: usize,
    port: &'static str,
) -> impl Stream<Item = Result<Counted<S>, E>> {
    let slots = Arc::new(Semaphore::new(max));
    let mut last_warning: Option<Instant> = None;
    incoming.filter_map(move |accepted| match accepted {
        Err(e) => Some(Err(e)),
        Ok(stream) => match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(Ok(Counted {
                inner: stream,
                _slot: slot,
            })),
            Err(_) => {
                // One line per second at most: a flood must not flood the log too.
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(
                        port,
                        max,
                        "connection refused: the port holds its maximum of open connections"
                    );
                }
                None
            }
        },
    })
}

impl<S: Connected> Connected for Counted<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
