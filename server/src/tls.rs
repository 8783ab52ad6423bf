//! TLS on a listening port, with certificates that can be replaced while it serves:
//! every new connection is accepted with the configuration current at that moment,
//! and `reload` (on SIGHUP) reads the files again. Connections already open keep the
//! configuration they were made with, so a rotation drops nobody.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::poison::Recover;
use anyhow::Context;
use kahuna_proto::tls::server_config;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// How long a client may take to complete the handshake before it is dropped, so a
/// connection that never speaks cannot hold a slot.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const BACKLOG: usize = 128;

/// The files one port's TLS is made of.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, a client must present a certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
}

fn read(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}: cannot read", path.display()))
}

impl TlsFiles {
    fn load(&self, what: &str) -> anyhow::Result<Arc<ServerConfig>> {
        let cert = read("certificate", &self.cert)?;
        let key = read("key", &self.key)?;
        let ca = self.client_ca.as_deref().map(|p| read("client CA", p)).transpose()?;
        let config = server_config(&cert, &key, ca.as_deref())
            .map_err(|e| anyhow::anyhow!("{what} TLS ({}): {e}", self.cert.display()))?;
        Ok(Arc::new(config))
    }
}

/// A port's TLS configuration, replaceable while it serves.
pub struct Reloadable {
    what: &'static str,
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Reloadable {
    /// Loads the files now: a port never starts with a configuration it cannot use.
    pub fn load(what: &'static str, files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        let config = files.load(what)?;
        Ok(Arc::new(Self {
            what,
            files,
            current: RwLock::new(config),
        }))
    }

    /// Reads the files again; on any error the configuration in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = self.files.load(self.what)?;
        *self.current.write().recover() = config;
        Ok(())
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().recover().clone())
    }

    pub fn what(&self) -> &'static str {
        self.what
    }
}

/// The TLS connections accepted on `listener`, for tonic's `serve_with_incoming`.
/// Handshakes run concurrently; one that fails or stalls is logged and dropped
/// without affecting the others.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<Reloadable>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(port = tls.what(), "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            let _ = tcp.set_nodelay(true);
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            let what = tls.what();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => log_refused(what, peer, &e.to_string()),
                    Err(_) => log_refused(what, peer, "handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

fn log_refused(what: &str, peer: SocketAddr, why: &str) {
    // At info: a client with the wrong CA or no certificate is worth seeing, and each
    // attempt is one line.
    tracing::info!(port = what, %peer, "TLS handshake refused: {why}");
}
