//! Shared helpers for the process tests: a client for a testkit cluster.
#![allow(dead_code)]

use std::time::Duration;

use kahuna_client::{Client, ClientOptions};
use kahuna_testkit::Cluster;

/// Every member's client address.
pub fn endpoints(cluster: &Cluster) -> Vec<String> {
    cluster.members.iter().map(|m| m.client_addr.clone()).collect()
}

/// A client for every member of `cluster`, with a generous deadline for a loaded machine.
pub async fn client(cluster: &Cluster) -> Client {
    client_with(
        cluster,
        ClientOptions {
            timeout: Duration::from_secs(20),
            ..ClientOptions::default()
        },
    )
    .await
}

pub async fn client_with(cluster: &Cluster, options: ClientOptions) -> Client {
    init_logging();
    Client::connect(endpoints(cluster), options).await.expect("connect")
}

/// Client logs on stderr when `KAHUNA_TEST_LOG` is set (e.g. `kahuna_client=debug`).
pub fn init_logging() {
    if let Ok(filter) = std::env::var("KAHUNA_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}
