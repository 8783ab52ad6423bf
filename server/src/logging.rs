//! Logs an operator can use: text or JSON lines (`--log-format`), a filter that can be
//! changed while the member runs (the operations port's `/log-level`), and a request
//! id (`x-request-id`) that follows each client request from the member that received
//! it to the leader that proposed it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use http::{HeaderName, HeaderValue};

use crate::around::Hook;
use tracing::Span;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// The metadata entry carrying a request's id, in requests and in responses.
pub const REQUEST_ID_KEY: &str = "x-request-id";
static REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_KEY);
/// Longest request id a client may give; a longer one is replaced by a generated id.
pub const MAX_REQUEST_ID_CHARS: usize = 128;
/// The filter when `RUST_LOG` sets none: openraft is chatty at info.
pub const DEFAULT_FILTER: &str = "info,openraft=warn";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, target, message, the event's
    /// fields, and `spans` (each with its fields, such as the request's `request_id`).
    Json,
}

/// Replaces the filter of the installed subscriber (set once, by [`init`]).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the process's subscriber: `RUST_LOG`'s filter (or [`DEFAULT_FILTER`]),
/// reloadable, writing `format` lines to stdout.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (filter, handle) = reload::Layer::new(filter);
    let (text, json) = match format {
        LogFormat::Text => (Some(fmt::layer()), None),
        LogFormat::Json => (
            None,
            Some(
                fmt::layer()
                    .json()
                    .with_ansi(false)
                    .flatten_event(true)
                    // The whole list, not only the innermost span: a library's span
                    // inside a request must not hide the request's id.
                    .with_span_list(true)
                    .with_current_span(false),
            ),
        ),
    };
    tracing_subscriber::registry().with(filter).with(text).with(json).init();
    let _ = FILTER.set(handle);
}

/// The filter in force, as directives; `None` when [`init`] did not run.
pub fn filter() -> Option<String> {
    FILTER.get()?.with_current(|f| f.to_string()).ok()
}

/// Why a new filter was not set.
#[derive(Debug, thiserror::Error)]
pub enum SetFilterError {
    #[error("invalid filter directive: {0}")]
    Invalid(String),
    #[error("run-time log levels are not available: this process did not install Kahuna's logging")]
    NotInstalled,
}

/// Replaces the filter with `directives` (`RUST_LOG` syntax, e.g.
/// `info,kahuna_server=debug`) and returns it as it is now in force. An invalid
/// directive changes nothing.
pub fn set_filter(directives: &str) -> Result<String, SetFilterError> {
    let directives = directives.trim();
    if directives.is_empty() {
        return Err(SetFilterError::Invalid(
            "empty: give at least a level, e.g. \"info\" or \"info,kahuna_server=debug\"".into(),
        ));
    }
    let new = EnvFilter::builder()
        .parse(directives)
        .map_err(|e| SetFilterError::Invalid(format!("{directives:?}: {e}")))?;
    let handle = FILTER.get().ok_or(SetFilterError::NotInstalled)?;
    let old = filter().unwrap_or_default();
    handle.reload(new).map_err(|_| SetFilterError::NotInstalled)?;
    let now = filter().unwrap_or_default();
    tracing::info!(old = %old, new = %now, "log filter changed");
    Ok(now)
}

/// Whether a client's request id is kept: 1 to [`MAX_REQUEST_ID_CHARS`] printable
/// ASCII characters (so it is safe in a log line and a header).
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_CHARS && id.iter().all(|b| (b' '..=b'~').contains(b))
}

/// Makes request ids unique across members and restarts: this member's id, a random
/// number drawn at start and a counter.
#[derive(Debug)]
struct IdSource {
    prefix: String,
    next: AtomicU64,
}

impl IdSource {
    fn new(node_id: u64) -> IdSource {
        IdSource {
            prefix: format!("{node_id}-{:08x}-", rand::random::<u32>()),
            next: AtomicU64::new(1),
        }
    }

    fn generate(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.prefix.len() + 16);
        id.push_str(&self.prefix);
        // Hexadecimal: short, and writing it needs no formatter allocation.
        let digits = if n == 0 {
            1
        } else {
            (64 - n.leading_zeros()).div_ceil(4)
        };
        for i in (0..digits).rev() {
            let d = ((n >> (i * 4)) & 0xf) as u8;
            id.push(char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 }));
        }
        // Only digits, letters and '-': always a valid header value.
        HeaderValue::try_from(id).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
    }
}

/// The client port's request-id hook (see `around`): gives each request its id (the client's
/// `x-request-id` when valid, else a generated one, also set on the request so a
/// forward carries it), runs the request in a `request` span with the id and the RPC
/// path, and returns the id in the response's `x-request-id` (errors included).
///
/// The span is at debug level: while the filter leaves debug off for this crate it
/// is never created, so the hot path pays only for the id.
#[derive(Clone, Debug)]
pub struct RequestIds {
    ids: Arc<IdSource>,
}

impl RequestIds {
    pub fn new(node_id: u64) -> RequestIds {
        RequestIds {
            ids: Arc::new(IdSource::new(node_id)),
        }
    }
}

impl Hook for RequestIds {
    type Seen = HeaderValue;

    fn before<B>(&self, req: &mut http::Request<B>) -> (HeaderValue, Span) {
        let id = match req.headers().get(&REQUEST_ID) {
            // Shares the received bytes: no copy.
            Some(given) if valid_request_id(given.as_bytes()) => given.clone(),
            _ => {
                let id = self.ids.generate();
                req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
                id
            }
        };
        // Fields are evaluated only when the span is enabled.
        let span = tracing::debug_span!(
            "request",
            request_id = id.to_str().unwrap_or_default(),
            rpc = req.uri().path()
        );
        span.in_scope(|| tracing::debug!("request received"));
        (id, span)
    }

    fn after<R>(id: HeaderValue, resp: &mut http::Response<R>) {
        resp.headers_mut().insert(REQUEST_ID.clone(), id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_printable_ascii() {
        assert!(valid_request_id(b"abc-123 x"));
        assert!(valid_request_id(&[b'a'; MAX_REQUEST_ID_CHARS]));
        assert!(!valid_request_id(&[b'a'; MAX_REQUEST_ID_CHARS + 1]));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"a\tb"));
        assert!(!valid_request_id("é".as_bytes()));
    }

    #[test]
    fn generated_ids_are_distinct_and_valid() {
        let ids = IdSource::new(7);
        let a = ids.generate();
        let b = ids.generate();
        assert_ne!(a, b);
        assert!(a.to_str().unwrap().starts_with("7-"), "{a:?}");
        assert!(a.to_str().unwrap().ends_with("-1"), "{a:?}");
        ids.next.store(0xab, Ordering::Relaxed);
        assert!(ids.generate().to_str().unwrap().ends_with("-ab"));
        assert!(valid_request_id(a.as_bytes()));
        assert_ne!(
            IdSource::new(7).prefix,
            IdSource::new(7).prefix,
            "a restart draws a new prefix"
        );
    }
}
