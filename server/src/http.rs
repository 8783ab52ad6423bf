//! The operations port (`--metrics-listen`): `GET /metrics` (Prometheus text format),
//! `GET /livez` (the process answers), `GET /readyz` (this member knows a leader,
//! so it can serve requests), and `GET`/`PUT /log-level` (the log filter in force;
//! replace it with the directives in the body). Plain HTTP/1.1, one request per
//! connection: a scraper or a probe needs no more, and bounded reads keep a bad
//! client from holding a task. No authentication: the port belongs on a private
//! network (docs/operations.md).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::raft::node::Node;

/// Longest request head read; a GET with a few headers is far smaller.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Longest request body (a `PUT /log-level` filter).
const MAX_BODY_BYTES: usize = 4 * 1024;
/// How long a connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;

/// Whether this member can serve: it knows a leader (itself or another) and is not
/// shutting down. The gRPC health service reports the same.
pub fn ready(node: &Node) -> bool {
    !node.stopping.is_cancelled() && node.raft.metrics().borrow().current_leader.is_some()
}

/// Serves the operations port until `stop` is cancelled.
pub async fn serve(listener: TcpListener, node: Arc<Node>, stop: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("metrics port accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &node).await {
                tracing::debug!("metrics port: {e}");
            }
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, node: &Node) -> std::io::Result<()> {
    let (head, rest) = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(read))) => read,
        Ok(Ok(None)) => return respond(&mut stream, 431, "text/plain", "request head too large\n").await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return respond(&mut stream, 408, "text/plain", "request timed out\n").await,
    };
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let get = method == "GET" || method == "HEAD";
    match path {
        "/metrics" | "/livez" | "/readyz" if !get => respond(&mut stream, 405, "text/plain", "only GET\n").await,
        "/metrics" => {
            let body = crate::scrape::render(node);
            respond(&mut stream, 200, "text/plain; version=0.0.4; charset=utf-8", &body).await
        }
        "/livez" => respond(&mut stream, 200, "text/plain", "ok\n").await,
        "/readyz" if ready(node) => respond(&mut stream, 200, "text/plain", "ok\n").await,
        "/readyz" => respond(&mut stream, 503, "text/plain", "no leader known\n").await,
        "/log-level" if get => match crate::logging::filter() {
            Some(filter) => respond(&mut stream, 200, "text/plain", &format!("{filter}\n")).await,
            None => {
                respond(
                    &mut stream,
                    503,
                    "text/plain",
                    "run-time log levels are not available\n",
                )
                .await
            }
        },
        "/log-level" if method == "PUT" => {
            let body = match tokio::time::timeout(READ_TIMEOUT, read_body(&mut stream, &head, rest)).await {
                Ok(Ok(Ok(body))) => body,
                Ok(Ok(Err((status, why)))) => return respond(&mut stream, status, "text/plain", why).await,
                Ok(Err(e)) => return Err(e),
                Err(_) => return respond(&mut stream, 408, "text/plain", "request timed out\n").await,
            };
            let Ok(directives) = std::str::from_utf8(&body) else {
                return respond(&mut stream, 400, "text/plain", "the filter is not UTF-8\n").await;
            };
            match crate::logging::set_filter(directives) {
                Ok(now) => respond(&mut stream, 200, "text/plain", &format!("{now}\n")).await,
                Err(e @ crate::logging::SetFilterError::Invalid(_)) => {
                    respond(&mut stream, 400, "text/plain", &format!("{e}\n")).await
                }
                Err(e) => respond(&mut stream, 503, "text/plain", &format!("{e}\n")).await,
            }
        }
        "/log-level" => respond(&mut stream, 405, "text/plain", "only GET and PUT\n").await,
        _ => {
            let known = "not found: /metrics, /livez, /readyz, /log-level\n";
            respond(&mut stream, 404, "text/plain", known).await
        }
    }
}

/// Reads up to the blank line ending the request head; returns the head and the
/// bytes read past it (the start of a body), or `None` when the head is too large.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before the request head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let end = [&b"\r\n\r\n"[..], &b"\n\n"[..]]
            .iter()
            .filter_map(|sep| buf.windows(sep.len()).position(|w| w == *sep).map(|at| at + sep.len()))
            .min();
        if let Some(end) = end {
            let rest = buf.split_off(end);
            return Ok(Some((String::from_utf8_lossy(&buf).into_owned(), rest)));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
    }
}

/// Reads the body that `head`'s `content-length` announces (`rest`: its bytes read
/// with the head). The error is the status and the reason to answer with.
async fn read_body(
    stream: &mut TcpStream,
    head: &str,
    mut rest: Vec<u8>,
) -> std::io::Result<Result<Vec<u8>, (u16, &'static str)>> {
    let length = head.lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim())
    });
    let Some(length) = length else {
        return Ok(Err((411, "a content-length header is required\n")));
    };
    let Ok(length) = length.parse::<usize>() else {
        return Ok(Err((400, "the content-length is not a number\n")));
    };
    if length > MAX_BODY_BYTES {
        return Ok(Err((413, "the body is larger than 4096 bytes\n")));
    }
    if rest.len() > length {
        return Ok(Err((400, "more bytes than the content-length\n")));
    }
    let have = rest.len();
    rest.resize(length, 0);
    stream.read_exact(&mut rest[have..]).await?;
    Ok(Ok(rest))
}

async fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
