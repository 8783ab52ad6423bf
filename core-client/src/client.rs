//! The connection: endpoints, leader tracking, failover, deadlines and retries.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kahuna_proto::tls::{ClientTls, TlsConnector};
use kahuna_proto::v1 as pb;
use rand::Rng;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::{InterceptedService, Interceptor};
use tonic::transport::{Channel, Endpoint};
use tonic::{Response, Status};
use tracing::{debug, trace};

use crate::error::{classify, Error, Failure, Result};
use crate::retry::{RetryPolicy, Safety};
use crate::rpc::Unary;

/// The port a member listens on for clients when none is given.
///
/// ```
/// assert_eq!(kahuna_client::DEFAULT_PORT, 2070);
/// ```
pub const DEFAULT_PORT: u16 = 2070;
/// The endpoint used when none is given.
///
/// ```
/// assert!(kahuna_client::DEFAULT_ENDPOINT.ends_with(":2070"));
/// ```
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:2070";

/// Options of a [`Client`], with defaults suited to a cluster on a LAN.
///
/// ```
/// use std::time::Duration;
/// use kahuna_client::ClientOptions;
///
/// let options = ClientOptions {
///     timeout: Duration::from_secs(5),
///     client_id: Some("billing-worker-1".into()),
///     ..ClientOptions::default()
/// };
/// assert_eq!(options.attempt_timeout, Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Identifies this client in request ids (UTF-8, at most 128 bytes). `None` picks a
    /// random one. Two live clients must never share an id.
    pub client_id: Option<String>,
    /// Deadline of one call, retries included.
    pub timeout: Duration,
    /// Deadline of one attempt: a member that does not answer within it is skipped.
    pub attempt_timeout: Duration,
    /// How long opening a connection to a member may take.
    pub connect_timeout: Duration,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// Learn the other members' client addresses from the cluster at connect time, so
    /// one endpoint is enough to fail over to all of them.
    pub discover_members: bool,
    /// TLS to every member: how to trust their certificates and, for a cluster that
    /// requires one, this client's certificate. `https://` endpoints turn TLS on with
    /// the system's trusted roots when this is `None`.
    pub tls: Option<ClientTls>,
    /// A bearer token sent with every request, for a cluster started with
    /// `--auth-tokens` (printable ASCII).
    pub token: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_id: None,
            timeout: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            retry: RetryPolicy::default(),
            discover_members: true,
            tls: None,
            token: None,
        }
    }
}

/// Per-call settings (a [`Client`] handle carries one set).
#[derive(Debug, Clone)]
pub(crate) struct CallOptions {
    pub timeout: Duration,
    pub attempt_timeout: Duration,
}

/// Responses that carry a [`pb::ResponseHeader`].
pub(crate) trait HasHeader {
    fn header(&self) -> Option<&pb::ResponseHeader>;

    /// The store revision of the answer (0 when it has no header).
    fn revision(&self) -> u64 {
        self.header().map_or(0, |h| h.revision)
    }
}

macro_rules! has_header {
    ($($t:ty),* $(,)?) => {
        $(impl HasHeader for $t {
            fn header(&self) -> Option<&pb::ResponseHeader> {
                self.header.as_ref()
            }
        })*
    };
}

has_header!(
    pb::SetResponse,
    pb::GetResponse,
    pb::GetManyResponse,
    pb::DeleteResponse,
    pb::ExtendResponse,
    pb::ExistsResponse,
    pb::ScanResponse,
    pb::HistoryResponse,
    pb::TxnResponse,
    pb::TryLockResponse,
    pb::ExtendLockResponse,
    pb::UnlockResponse,
    pb::GetLockResponse,
    pb::ProclaimResponse,
    pb::RateCheckResponse,
    pb::NextResponse,
    pb::PeekResponse,
    pb::StatusResponse,
    pb::MembershipResponse,
    pb::TriggerSnapshotResponse,
    pb::TransferLeaderResponse,
    pb::WatchResponse,
    pb::ObserveResponse,
    pb::SnapshotChunk,
);

#[derive(Default)]
struct Routes {
    /// Members to try, as `host:port`: the configured endpoints, then discovered ones.
    endpoints: Vec<String>,
    /// Client address of each member id, from `Status`.
    addr_of: HashMap<u64, String>,
    /// Where the leader is believed to be.
    leader: Option<String>,
    channels: HashMap<String, Channel>,
}

pub(crate) struct Inner {
    routes: Mutex<Routes>,
    cursor: AtomicUsize,
    client_id: String,
    next_request_id: AtomicU64,
    pub(crate) options: ClientOptions,
    /// `Some` when members are reached over TLS.
    tls: Option<Arc<rustls::ClientConfig>>,
    credentials: Credentials,
    pub(crate) runtime: tokio::runtime::Handle,
    owner_seq: AtomicU64,
}

/// A connection to a Kahuna cluster. Cheap to clone; clones share connections, the
/// leader cache and the client id.
///
/// Every call finds the leader (any member also forwards), retries what is safe to retry
/// (see [`crate::retry`]) and gives up at its deadline.
///
/// ```no_run
/// use kahuna_client::{Client, ClientOptions};
///
/// # async fn run() -> kahuna_client::Result<()> {
/// let client = Client::connect(["10.0.0.1:2070", "10.0.0.2:2070"], ClientOptions::default()).await?;
/// client.set("greeting", "hello").await?;
/// let kv = client.get("greeting").await?;
/// assert_eq!(kv.map(|kv| kv.value), Some(b"hello".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    pub(crate) call: CallOptions,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.inner.client_id)
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

/// The scheme an endpoint names, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Unspecified,
    Plain,
    Tls,
}

/// `host:port` from `host:port`, `http://host:port[/]`, `https://host:port[/]` or a
/// bare host, with the scheme it named.
fn normalize(endpoint: &str) -> Result<(String, Scheme)> {
    let e = endpoint.trim();
    let (e, scheme) = if let Some(rest) = e.strip_prefix("https://") {
        (rest, Scheme::Tls)
    } else if let Some(rest) = e.strip_prefix("http://").or_else(|| e.strip_prefix("grpc://")) {
        (rest, Scheme::Plain)
    } else {
        (e, Scheme::Unspecified)
    };
    let e = e.trim_end_matches('/');
    if e.is_empty() {
        return Err(Error::Config(format!("endpoint {endpoint:?} is empty")));
    }
    if e.contains('/') || e.contains("://") {
        return Err(Error::Config(format!(
            "endpoint {endpoint:?} is not HOST:PORT, http://HOST:PORT or https://HOST:PORT"
        )));
    }
    let has_port = match e.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && !host.ends_with(':') && port.parse::<u16>().is_ok(),
        None => false,
    };
    if has_port {
        Ok((e.to_owned(), scheme))
    } else if e.starts_with('[') || !e.contains(':') {
        Ok((format!("{e}:{DEFAULT_PORT}"), scheme))
    } else {
        Err(Error::Config(format!("endpoint {endpoint:?} is not HOST:PORT")))
    }
}

/// The TLS configuration for these endpoints and options: `None` for plain HTTP/2.
/// Every member is reached the same way, so endpoints may not mix schemes.
fn tls_config(schemes: &[Scheme], options: &ClientOptions) -> Result<Option<Arc<rustls::ClientConfig>>> {
    let https = schemes.contains(&Scheme::Tls);
    if https && schemes.contains(&Scheme::Plain) {
        return Err(Error::Config(
            "endpoints mix http:// and https://; every member is reached the same way".into(),
        ));
    }
    if schemes.contains(&Scheme::Plain) && options.tls.is_some() {
        return Err(Error::Config(
            "TLS options are given but an endpoint says http://".into(),
        ));
    }
    match (&options.tls, https) {
        (None, false) => Ok(None),
        (None, true) => ClientTls::default().config().map(Some),
        (Some(tls), _) => tls.config().map(Some),
    }
    .map_err(|e| Error::Config(format!("TLS: {e}")))
}

fn random_client_id() -> String {
    let mut rng = rand::thread_rng();
    format!("kahuna-rs-{:016x}{:08x}", rng.gen::<u64>(), rng.gen::<u32>())
}

/// Request ids start at the wall clock in microseconds, so a process that reuses a fixed
/// client id after a restart does not collide with answers the server still remembers.
fn first_request_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
        .max(1)
}

impl Client {
    /// Connects to a cluster through any of `endpoints` (`host:port`; the port defaults
    /// to 2070), finds the leader and learns the other members.
    ///
    /// Fails with [`Error::Unavailable`] when no endpoint answers within
    /// [`ClientOptions::timeout`], and [`Error::Config`] on a malformed endpoint or
    /// client id. Must be called inside a tokio runtime.
    ///
    /// ```no_run
    /// # use kahuna_client::{Client, ClientOptions};
    /// # async fn run() -> kahuna_client::Result<()> {
    /// let client = Client::connect(["127.0.0.1:2070"], ClientOptions::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect<I, S>(endpoints: I, options: ClientOptions) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let client = Client::connect_lazy(endpoints, options)?;
        client.discover().await?;
        Ok(client)
    }

    /// Like [`Client::connect`] but without any I/O: connections are opened by the first
    /// call. Must be called inside a tokio runtime.
    ///
    /// ```no_run
    /// # use kahuna_client::{Client, ClientOptions};
    /// # async fn run() -> kahuna_client::Result<()> {
    /// let client = Client::connect_lazy(["127.0.0.1:2070"], ClientOptions::default())?;
    /// let value = client.get("k").await?;
    /// # Ok(()) }
    /// ```
    pub fn connect_lazy<I, S>(endpoints: I, options: ClientOptions) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Vec::new();
        let mut schemes = Vec::new();
        for e in endpoints {
            let (e, scheme) = normalize(e.as_ref())?;
            schemes.push(scheme);
            if !list.contains(&e) {
                list.push(e);
            }
        }
        let tls = tls_config(&schemes, &options)?;
        let credentials = Credentials::new(options.token.as_deref())?;
        if list.is_empty() {
            return Err(Error::Config("no endpoints given".into()));
        }
        let client_id = match &options.client_id {
            Some(id) if id.is_empty() || id.len() > 128 => {
                return Err(Error::Config(format!(
                    "client id must be 1 to 128 bytes of UTF-8, got {} bytes",
                    id.len()
                )))
            }
            Some(id) => id.clone(),
            None => random_client_id(),
        };
        if options.timeout.is_zero() || options.attempt_timeout.is_zero() {
            return Err(Error::Config("timeouts must be greater than zero".into()));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("Client must be created inside a tokio runtime".into()))?;
        let call = CallOptions {
            timeout: options.timeout,
            attempt_timeout: options.attempt_timeout,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                routes: Mutex::new(Routes {
                    endpoints: list,
                    ..Routes::default()
                }),
                cursor: AtomicUsize::new(0),
                client_id,
                next_request_id: AtomicU64::new(first_request_id()),
                options,
                tls,
                credentials,
                runtime,
                owner_seq: AtomicU64::new(1),
            }),
            call,
        })
    }

    /// A handle to the same connection whose calls use `timeout` as their deadline
    /// (retries included).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let quick = client.with_timeout(Duration::from_millis(300));
    /// quick.get("k").await?;
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        let mut c = self.clone();
        c.call.timeout = timeout.max(Duration::from_millis(1));
        c.call.attempt_timeout = c.call.attempt_timeout.min(c.call.timeout);
        c
    }

    /// This client's id, sent with every mutation for exactly-once retries.
    ///
    /// ```no_run
    /// # fn f(client: kahuna_client::Client) {
    /// println!("client id: {}", client.client_id());
    /// # }
    /// ```
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The members this client knows, as `host:port`: the given endpoints first, then
    /// any it discovered.
    ///
    /// ```no_run
    /// # fn f(client: kahuna_client::Client) {
    /// for e in client.endpoints() { println!("{e}"); }
    /// # }
    /// ```
    pub fn endpoints(&self) -> Vec<String> {
        self.routes().endpoints.clone()
    }

    /// Where the client currently believes the leader is (`None` until it has learned).
    ///
    /// ```no_run
    /// # fn f(client: kahuna_client::Client) {
    /// if let Some(leader) = client.leader() { println!("leader at {leader}"); }
    /// # }
    /// ```
    pub fn leader(&self) -> Option<String> {
        self.routes().leader.clone()
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        // A panic while holding this lock cannot leave the routes inconsistent.
        self.inner.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn request_id(&self) -> pb::RequestId {
        pb::RequestId {
            client_id: self.inner.client_id.as_bytes().to_vec(),
            request_id: self.inner.next_request_id.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A lock owner name unique to this client and guard.
    pub(crate) fn new_owner(&self) -> String {
        format!(
            "{}/{}",
            self.inner.client_id,
            self.inner.owner_seq.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The connection to `addr`, sending this client's credentials.
    fn channel(&self, addr: &str) -> Result<Transport> {
        Ok(InterceptedService::new(
            self.plain_channel(addr)?,
            self.inner.credentials.clone(),
        ))
    }

    fn plain_channel(&self, addr: &str) -> Result<Channel> {
        let mut routes = self.routes();
        if let Some(c) = routes.channels.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Error::Config(format!("endpoint {addr:?}: {e}")))?
            .connect_timeout(self.inner.options.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = match &self.inner.tls {
            None => endpoint.connect_lazy(),
            Some(config) => endpoint
                .connect_with_connector_lazy(TlsConnector::new(config.clone(), self.inner.options.connect_timeout)),
        };
        routes.channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// The member to try next: the leader if known, else the next endpoint in turn.
    fn pick(&self) -> String {
        let routes = self.routes();
        if let Some(l) = &routes.leader {
            return l.clone();
        }
        let i = self.inner.cursor.load(Ordering::Relaxed) % routes.endpoints.len().max(1);
        routes
            .endpoints
            .get(i)
            .cloned()
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
    }

    fn learn(&self, status: &pb::StatusResponse, from: &str) {
        let mut routes = self.routes();
        for m in &status.members {
            if m.client_addr.is_empty() {
                continue;
            }
            if let Ok((addr, _)) = normalize(&m.client_addr) {
                routes.addr_of.insert(m.id, addr.clone());
                if self.inner.options.discover_members && !routes.endpoints.contains(&addr) {
                    routes.endpoints.push(addr);
                }
            }
        }
        let leader = if status.state == "leader" {
            Some(from.to_owned())
        } else {
            routes.addr_of.get(&status.leader_id).cloned()
        };
        if leader.is_some() {
            routes.leader = leader;
        }
    }

    /// Asks every endpoint in turn for its status until one answers.
    async fn discover(&self) -> Result<()> {
        let started = Instant::now();
        let mut retry = 0;
        let mut last = String::from("no endpoint answered");
        loop {
            for addr in self.endpoints() {
                let remaining = self.call.timeout.saturating_sub(started.elapsed());
                if remaining.is_zero() {
                    return Err(Error::Unavailable(format!(
                        "no endpoint answered within {:?}: {last}",
                        self.call.timeout
                    )));
                }
                let t = remaining.min(self.call.attempt_timeout);
                let status = pb::StatusRequest {}.send(self.channel(&addr)?, t);
                match tokio::time::timeout(t, status).await {
                    Ok(Ok(resp)) => {
                        self.learn(resp.get_ref(), &addr);
                        return Ok(());
                    }
                    Ok(Err(s)) => {
                        let e = classify(&s);
                        // A definite answer (a refused token, say) is the same from every
                        // member and will not change by asking again.
                        if e.failure == Failure::Final {
                            return Err(e.error);
                        }
                        last = format!("{addr}: {}", e.error);
                    }
                    Err(_) => last = format!("{addr}: no answer within {t:?}"),
                }
            }
            let remaining = self.call.timeout.saturating_sub(started.elapsed());
            tokio::time::sleep(self.inner.options.retry.backoff(retry).min(remaining)).await;
            retry += 1;
        }
    }

    /// The member `addr` failed an attempt: stop treating it as the leader and move
    /// on to the next endpoint (or to the leader it named).
    fn failed(&self, addr: &str, hint: Option<&str>, leaderless: bool) {
        let mut routes = self.routes();
        if let Some((h, _)) = hint.and_then(|h| normalize(h).ok()) {
            if h != addr {
                if !routes.endpoints.contains(&h) {
                    routes.endpoints.push(h.clone());
                }
                routes.leader = Some(h);
                return;
            }
        }
        if routes.leader.as_deref() == Some(addr) || leaderless {
            routes.leader = None;
        }
        // Move the cursor past `addr` so the next pick is another member.
        let n = routes.endpoints.len().max(1);
        let i = self.inner.cursor.load(Ordering::Relaxed) % n;
        if routes.endpoints.get(i).map(String::as_str) == Some(addr) || !routes.endpoints.iter().any(|e| e == addr) {
            self.inner.cursor.store((i + 1) % n, Ordering::Relaxed);
        }
    }

    /// `addr` answered; if the header names a leader we know, go there next time.
    fn succeeded(&self, addr: &str, header: Option<&pb::ResponseHeader>) {
        let mut routes = self.routes();
        let leader = match header {
            // A forwarded answer comes from the leader, so prefer its known address.
            Some(h) if h.leader_id != 0 => routes
                .addr_of
                .get(&h.leader_id)
                .cloned()
                .or_else(|| (h.leader_id == h.member_id).then(|| addr.to_owned())),
            _ => None,
        };
        match leader {
            Some(l) => routes.leader = Some(l),
            None if routes.leader.is_none() => routes.leader = Some(addr.to_owned()),
            None => {}
        }
    }

    /// Runs one logical call: attempts `f` against the leader (or the next member) until
    /// it succeeds, fails for good, or the deadline passes. `f` gets a channel and the
    /// attempt's timeout.
    pub(crate) async fn call<T, F, Fut>(&self, what: &'static str, safety: Safety, mut f: F) -> Result<T>
    where
        T: HasHeader,
        F: FnMut(Transport, Duration) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let started = Instant::now();
        let policy = &self.inner.options.retry;
        let mut attempts = 0u32;
        let mut backoffs = 0u32;
        let mut last_addr = String::new();
        loop {
            let remaining = self.call.timeout.saturating_sub(started.elapsed());
            let addr = self.pick();
            let t = remaining.min(self.call.attempt_timeout).max(Duration::from_millis(1));
            attempts += 1;
            trace!(what, %addr, attempts, "attempt");
            let channel = self.channel(&addr)?;
            let outcome = tokio::time::timeout(t, f(channel, t)).await;
            let failure = match outcome {
                Ok(Ok(resp)) => {
                    let resp = resp.into_inner();
                    self.succeeded(&addr, resp.header());
                    return Ok(resp);
                }
                Ok(Err(status)) => classify(&status),
                Err(_) => crate::error::AttemptError {
                    failure: Failure::Unknown,
                    leader_hint: None,
                    leaderless: false,
                    error: Error::Unavailable(format!("{addr} did not answer within {t:?}")),
                },
            };
            debug!(what, %addr, attempts, error = %failure.error, "attempt failed");
            if !crate::retry::should_retry(failure.failure, safety) {
                return Err(failure.error);
            }
            self.failed(&addr, failure.leader_hint.as_deref(), failure.leaderless);
            if policy.max_attempts.is_some_and(|m| attempts >= m) {
                return Err(failure.error);
            }
            let remaining = self.call.timeout.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(Error::Timeout {
                    elapsed: started.elapsed(),
                    last: failure.error.to_string(),
                });
            }
            // Go straight to a leader we were just told about; otherwise back off.
            let next = self.pick();
            let hinted = failure.leader_hint.is_some() && next != addr && next != last_addr;
            last_addr = addr;
            if !hinted {
                let pause = policy.backoff(backoffs).min(remaining);
                backoffs += 1;
                tokio::time::sleep(pause).await;
            }
            if started.elapsed() >= self.call.timeout {
                return Err(Error::Timeout {
                    elapsed: started.elapsed(),
                    last: failure.error.to_string(),
                });
            }
        }
    }
}

/// A connection to one member that adds this client's credentials to each request.
pub(crate) type Transport = InterceptedService<Channel, Credentials>;

/// The bearer token, sent as `authorization: Bearer <token>` on every request.
#[derive(Clone, Default)]
pub(crate) struct Credentials(Option<MetadataValue<Ascii>>);

impl Credentials {
    fn new(token: Option<&str>) -> Result<Self> {
        let Some(t) = token else { return Ok(Self(None)) };
        let value = MetadataValue::try_from(format!("Bearer {t}"))
            .ok()
            .filter(|_| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| Error::Config("the token must be non-empty printable ASCII without spaces".into()))?;
        Ok(Self(Some(value)))
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A request with the attempt's deadline, so the server gives up when the client does.
pub(crate) fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(timeout);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use kahuna_proto::tls::ServerTrust;

    #[test]
    fn endpoints_are_normalized() {
        let n = |e: &str| normalize(e).ok();
        assert_eq!(
            n("127.0.0.1:2070"),
            Some(("127.0.0.1:2070".into(), Scheme::Unspecified))
        );
        assert_eq!(n("http://a:1/"), Some(("a:1".into(), Scheme::Plain)));
        assert_eq!(
            n("https://kahuna-1.internal:2070"),
            Some(("kahuna-1.internal:2070".into(), Scheme::Tls))
        );
        assert_eq!(n("localhost"), Some(("localhost:2070".into(), Scheme::Unspecified)));
        assert!(normalize("").is_err());
        assert!(normalize("a:b:c").is_err());
        assert!(normalize("ftp://x:1").is_err());
        assert!(normalize("https://x:1/path").is_err());
    }

    #[tokio::test]
    async fn schemes_do_not_mix() {
        let mixed = Client::connect_lazy(["https://a:1", "http://b:1"], ClientOptions::default());
        assert!(matches!(mixed, Err(Error::Config(_))));
        let insecure = ClientOptions {
            tls: Some(ClientTls {
                trust: ServerTrust::InsecureAnyCertificate,
                identity: None,
            }),
            ..ClientOptions::default()
        };
        assert!(matches!(
            Client::connect_lazy(["http://a:1"], insecure.clone()),
            Err(Error::Config(_))
        ));
        // Bare endpoints with TLS options use TLS.
        assert!(Client::connect_lazy(["a:1"], insecure).is_ok());
    }

    #[tokio::test]
    async fn options_are_checked() {
        assert!(Client::connect_lazy(Vec::<String>::new(), ClientOptions::default()).is_err());
        let long = ClientOptions {
            client_id: Some("x".repeat(129)),
            ..ClientOptions::default()
        };
        assert!(Client::connect_lazy(["a:1"], long).is_err());
        let c = Client::connect_lazy(["a:1", "a:1", "b"], ClientOptions::default()).map_err(|e| e.to_string());
        assert_eq!(
            c.map(|c| c.endpoints()),
            Ok(vec!["a:1".to_string(), "b:2070".to_string()])
        );
    }

    #[tokio::test]
    async fn an_unreachable_cluster_times_out_with_the_last_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let options = ClientOptions {
            timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        };
        let started = Instant::now();
        let e = Client::connect([format!("127.0.0.1:{port}")], options).await.err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(e.map(|e| e.code().to_owned()).as_deref(), Some("UNAVAILABLE"));
    }
}
