//! `cargo run -p kahuna-samples --example leader_job -- 127.0.0.1:2070`
use std::time::Duration;

use kahuna_client::{Client, ClientOptions};
use kahuna_samples::leader_job::run_worker;

#[tokio::main]
async fn main() -> kahuna_client::Result<()> {
    let client = Client::connect(kahuna_samples::endpoints_from_args(), ClientOptions::default()).await?;
    let worker = format!("worker-{}", std::process::id());
    let outcome = run_worker(
        &client,
        "nightly-report",
        &worker,
        5,
        Duration::from_millis(200),
        Duration::ZERO,
    )
    .await?;
    println!("{worker}: {outcome:?}");
    Ok(())
}
