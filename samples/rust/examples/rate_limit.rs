//! `cargo run -p kahuna-samples --example rate_limit -- 127.0.0.1:2070`
use std::time::Duration;

use kahuna_client::{Client, ClientOptions};
use kahuna_samples::rate_limit::RateLimiter;

#[tokio::main]
async fn main() -> kahuna_client::Result<()> {
    let client = Client::connect(kahuna_samples::endpoints_from_args(), ClientOptions::default()).await?;
    let limiter = RateLimiter::new(client, 3, Duration::from_secs(10));
    for i in 0..5 {
        let allowed = limiter.try_acquire("user-42").await?;
        println!("request {i}: {}", if allowed { "allowed" } else { "throttled" });
    }
    Ok(())
}
