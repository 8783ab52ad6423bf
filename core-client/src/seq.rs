//! Sequences: non-overlapping ranges of identifiers.

use kahuna_proto::v1 as pb;

use crate::client::Client;
use crate::error::Result;
use crate::kv::Consistency;
use crate::retry::Safety;

/// A reserved range of identifiers `[first, first + count)`.
///
/// ```
/// use kahuna_client::IdRange;
/// let r = IdRange { first: 10, count: 3, replayed: false };
/// assert_eq!(r.ids().collect::<Vec<_>>(), vec![10, 11, 12]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// The first identifier.
    pub first: u64,
    /// How many identifiers.
    pub count: u64,
    /// True when the range was reserved earlier under the same idempotency key.
    pub replayed: bool,
}

impl IdRange {
    /// The identifiers of the range.
    ///
    /// ```
    /// # use kahuna_client::IdRange;
    /// assert_eq!(IdRange { first: 1, count: 2, replayed: false }.ids().last(), Some(2));
    /// ```
    pub fn ids(&self) -> std::ops::Range<u64> {
        self.first..self.first.saturating_add(self.count)
    }
}

impl Client {
    /// Reserves `count` identifiers (1 to 1,000,000; 0 is refused with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument)) of the sequence `name`, which starts at 1.
    /// Ranges never overlap. With an `idempotency_key`, a retry (also from another
    /// process) within the server's idempotency window gets the same range back.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let ids = client.next("orders", 100, Some("import-2024-06-01")).await?;
    /// for id in ids.ids() { /* ... */ }
    /// # Ok(()) }
    /// ```
    pub async fn next(&self, name: &str, count: u64, idempotency_key: Option<&str>) -> Result<IdRange> {
        let msg = pb::NextRequest {
            name: name.as_bytes().to_vec(),
            count,
            idempotency_key: idempotency_key.unwrap_or_default().as_bytes().to_vec(),
            request_id: Some(self.request_id()),
        };
        let r = self.unary(Safety::Deduplicated, msg).await?;
        Ok(IdRange {
            first: r.first,
            count: r.count,
            replayed: r.replayed,
        })
    }

    /// The next identifier `name` would hand out (1 for an unused sequence).
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// println!("next order id: {}", client.peek_sequence("orders").await?);
    /// # Ok(()) }
    /// ```
    pub async fn peek_sequence(&self, name: &str) -> Result<u64> {
        let msg = pb::PeekRequest {
            name: name.as_bytes().to_vec(),
            consistency: Consistency::Linearizable.pb(),
        };
        let r = self.unary(Safety::Idempotent, msg).await?;
        Ok(r.next)
    }
}
