//! Rate limiting: at most `limit` actions per key per fixed window, shared by every
//! process that uses the same cluster.
//!
//! Each window has one counter key, `ratelimit/<key>/<window number>`, that expires with
//! the window. Taking a permit is a compare-and-set by revision on that counter, so two
//! processes can never both take the last permit; a retried request is deduplicated by
//! the server, so a permit is never counted twice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kahuna_client::{Client, Result, SetCondition, SetOptions};

/// A fixed-window limiter.
#[derive(Clone)]
pub struct RateLimiter {
    client: Client,
    limit: u64,
    window: Duration,
}

impl RateLimiter {
    pub fn new(client: Client, limit: u64, window: Duration) -> Self {
        RateLimiter { client, limit, window }
    }

    /// Takes a permit for `key` in the current window: true if the action may go ahead.
    pub async fn try_acquire(&self, key: &str) -> Result<bool> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let window_ms = self.window.as_millis().max(1);
        let window_no = now.as_millis() / window_ms;
        let counter = format!("ratelimit/{key}/{window_no}");
        loop {
            let current = self.client.get(&counter).await?;
            let (used, revision) = match &current {
                Some(kv) => (kv.value_str().parse::<u64>().unwrap_or(u64::MAX), kv.mod_revision),
                None => (0, 0),
            };
            if used >= self.limit {
                return Ok(false);
            }
            let options = SetOptions {
                // Keep the counter a little past its window, then let it expire.
                ttl: Some(self.window * 2),
                condition: SetCondition::IfRevision(revision),
                ..SetOptions::default()
            };
            if self
                .client
                .set_with(&counter, (used + 1).to_string(), options)
                .await?
                .succeeded
            {
                return Ok(true);
            }
            // Someone else took a permit at the same moment: look again.
        }
    }
}
