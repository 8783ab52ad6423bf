//! Idempotent ID allocation: reserve blocks of identifiers from a sequence. Blocks never
//! overlap, and a block requested with an idempotency key (say, the id of the import
//! batch that needs it) comes back the same when the request is retried — also from
//! another process after a crash — so no identifiers are wasted or handed out twice.

use kahuna_client::{Client, IdRange, Result};

/// Reserves `count` invoice numbers for `batch`; calling it again for the same batch
/// returns the same numbers.
pub async fn invoice_numbers_for_batch(client: &Client, batch: &str, count: u64) -> Result<IdRange> {
    client.next("invoices", count, Some(&format!("batch:{batch}"))).await
}

/// Reserves `count` fresh numbers (no idempotency key: every call gets a new block).
pub async fn fresh_numbers(client: &Client, count: u64) -> Result<IdRange> {
    client.next("invoices", count, None).await
}
