//! One tower middleware shape for the client port's per-request hooks (request ids in
//! `logging`, latency in `metrics`): a hook looks at the request before the service
//! runs, may give the call a tracing span, and looks at the response headers after.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::{Instrument, Span};

/// What runs around every request.
pub trait Hook: Clone {
    /// What [`Hook::after`] needs from the request.
    type Seen: Send + 'static;

    /// Sees (and may change) the request; returns what `after` needs and the span the
    /// call runs in (`Span::none()` for none).
    fn before<B>(&self, req: &mut http::Request<B>) -> (Self::Seen, Span);

    /// Sees (and may change) a response; not called when the service failed.
    fn after<R>(seen: Self::Seen, resp: &mut http::Response<R>);
}

/// The layer of hook `H`.
#[derive(Clone, Debug)]
pub struct Around<H>(pub H);

impl<S, H: Hook> tower::Layer<S> for Around<H> {
    type Service = AroundService<S, H>;

    fn layer(&self, inner: S) -> AroundService<S, H> {
        AroundService {
            inner,
            hook: self.0.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AroundService<S, H> {
    inner: S,
    hook: H,
}

impl<S, H, B, R> tower::Service<http::Request<B>> for AroundService<S, H>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    H: Hook,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let (seen, span) = self.hook.before(&mut req);
        let answer = span.in_scope(|| self.inner.call(req));
        Box::pin(
            async move {
                let mut answer = answer.await;
                if let Ok(resp) = &mut answer {
                    H::after(seen, resp);
                }
                answer
            }
            .instrument(span),
        )
    }
}
