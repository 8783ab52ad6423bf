//! The operations port (`--metrics-listen`): `GET /metrics` (Prometheus text format),
//! `GET /livez` (the process answers) and `GET /readyz` (this member knows a leader,
//! so it can serve requests). Plain HTTP/1.1, one request per connection: a scraper
//! or a probe needs no more, and bounded reads keep a bad client from holding a task.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::raft::node::Node;

/// Longest request head read; a GET with a few headers is far smaller.
const MAX_HEAD_BYTES: usize = 8 * 1024;
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
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return respond(&mut stream, 431, "text/plain", "request head too large\n").await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return respond(&mut stream, 408, "text/plain", "request timed out\n").await,
    };
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, 405, "text/plain", "only GET\n").await;
    }
    match path {
        "/metrics" => {
            let body = crate::metrics::render(node);
            respond(&mut stream, 200, "text/plain; version=0.0.4; charset=utf-8", &body).await
        }
        "/livez" => respond(&mut stream, 200, "text/plain", "ok\n").await,
        "/readyz" if ready(node) => respond(&mut stream, 200, "text/plain", "ok\n").await,
        "/readyz" => respond(&mut stream, 503, "text/plain", "no leader known\n").await,
        _ => respond(&mut stream, 404, "text/plain", "not found: /metrics, /livez, /readyz\n").await,
    }
}

/// Reads up to the blank line ending the request head; `None` when it is too large.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
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
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
    }
}

async fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
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
