//! N sequential gets through the Rust core client, for comparing with the C# path
//! (`dotnet/test.sh` runs both against the same cluster):
//! `bench_get ENDPOINTS N` prints `rust get: N calls, X us/call`.

use std::time::Instant;

use kahuna_client::{Client, ClientOptions};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoints: Vec<String> = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:2070".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let client = Client::connect(endpoints, ClientOptions::default()).await?;
    client.set("bench/get", "value").await?;
    for _ in 0..200 {
        client.get("bench/get").await?;
    }
    let started = Instant::now();
    for _ in 0..n {
        client.get("bench/get").await?;
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(n.max(1));
    println!("rust get: {n} calls, {us:.1} us/call");
    Ok(())
}
