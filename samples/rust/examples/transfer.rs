//! `cargo run -p kahuna-samples --example transfer -- 127.0.0.1:2070`
use kahuna_client::{Client, ClientOptions};
use kahuna_samples::transfer::{open, total, transfer};

#[tokio::main]
async fn main() -> kahuna_client::Result<()> {
    let client = Client::connect(kahuna_samples::endpoints_from_args(), ClientOptions::default()).await?;
    open(&client, "alice", 100).await?;
    open(&client, "bob", 0).await?;
    match transfer(&client, "alice", "bob", 30).await? {
        Ok(()) => println!("moved 30 from alice to bob"),
        Err(why) => println!("transfer refused: {why:?}"),
    }
    println!("total money: {}", total(&client).await?);
    Ok(())
}
