//! `cargo run -p kahuna-samples --example allocate_ids -- 127.0.0.1:2070`
use kahuna_client::{Client, ClientOptions};
use kahuna_samples::allocate_ids::invoice_numbers_for_batch;

#[tokio::main]
async fn main() -> kahuna_client::Result<()> {
    let client = Client::connect(kahuna_samples::endpoints_from_args(), ClientOptions::default()).await?;
    let first = invoice_numbers_for_batch(&client, "2024-06-01", 100).await?;
    // A retry (here simply a second call) gets the same block back.
    let again = invoice_numbers_for_batch(&client, "2024-06-01", 100).await?;
    println!(
        "batch 2024-06-01: invoices {:?} (retry got {:?}, replayed: {})",
        first.ids(),
        again.ids(),
        again.replayed
    );
    Ok(())
}
