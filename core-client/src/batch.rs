//! Batches and ranges (anchors: Kahuna.Client's `GetManyKeyValues`,
//! `SetManyKeyValues`, `DeleteManyKeyValues`, `GetByRange`, `ScanByRange`): several
//! keys read at one revision, written or deleted atomically at one revision (one
//! transaction), and scans of a key range `[start, end)` in pages.

use kahuna_proto::v1 as pb;

use crate::client::{Client, HasHeader};
use crate::error::{Error, Result};
use crate::kv::{GetOptions, KeyValue, ScanOptions, ScanPage};
use crate::retry::Safety;
use crate::txn::TxnOp;

/// Keys read together by [`Client::get_many`].
///
/// ```
/// # use kahuna_client::ManyKeys;
/// let m = ManyKeys { kvs: vec![], revision: 7 };
/// assert!(m.get("a").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManyKeys {
    /// The keys that exist, in the order asked.
    pub kvs: Vec<KeyValue>,
    /// The revision every key was read at.
    pub revision: u64,
}

impl ManyKeys {
    /// The key `key`, if it exists.
    pub fn get(&self, key: &str) -> Option<&KeyValue> {
        self.kvs.iter().find(|kv| kv.key == key)
    }
}

impl Client {
    /// Reads `keys` (at most 1,000) at one revision; missing keys are left out.
    /// `options.revision` must be `None`: the read is of the latest state.
    ///
    /// ```no_run
    /// # async fn run(client: kahuna_client::Client) -> kahuna_client::Result<()> {
    /// let got = client.get_many(&["config/a", "config/b"], Default::default()).await?;
    /// println!("{} of 2 exist at revision {}", got.kvs.len(), got.revision);
    /// # Ok(()) }
    /// ```
    pub async fn get_many(&self, keys: &[&str], options: GetOptions) -> Result<ManyKeys> {
        if options.revision.is_some() {
            return Err(Error::InvalidArgument(
                "get_many reads the latest revision; read past revisions key by key".into(),
            ));
        }
        let msg = pb::GetManyRequest {
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            consistency: options.consistency.pb(),
            durability: options.durability.pb(),
        };
        let r = self.unary(Safety::Idempotent, msg).await?;
        Ok(ManyKeys {
            revision: r.revision(),
            kvs: r.kvs.into_iter().map(KeyValue::from_pb).collect(),
        })
    }

    /// Writes every `(key, value)` atomically, at one revision (persistent keys; at
    /// most 128 per call, and 2 MiB in all). Returns that revision.
    pub async fn set_many<V: AsRef<[u8]>>(&self, items: &[(&str, V)]) -> Result<u64> {
        let txn = items
            .iter()
            .fold(self.txn(), |txn, (key, value)| txn.then(TxnOp::set(key, value)));
        Ok(txn.commit().await?.revision)
    }

    /// Deletes every key of `keys` atomically, at one revision (persistent keys; at most
    /// 128 per call). Returns how many existed.
    pub async fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        let txn = keys.iter().fold(self.txn(), |txn, key| txn.then(TxnOp::delete(key)));
        Ok(txn.commit().await?.results.iter().filter(|r| r.succeeded).count())
    }

    /// One page of the keys in `[start, end)` (an empty `end` = to the last key), in
    /// byte order.
    pub async fn scan_range(&self, start: &str, end: &str, options: ScanOptions) -> Result<ScanPage> {
        if start.is_empty() && end.is_empty() {
            // The server reads that as a scan of every key, which is what it is.
            return self.scan("", options).await;
        }
        let msg = pb::ScanRequest {
            prefix: Vec::new(),
            limit: options.limit,
            page_token: options.page_token.unwrap_or_default(),
            consistency: options.consistency.pb(),
            keys_only: options.keys_only,
            durability: options.durability.pb(),
            range_start: start.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
        };
        self.scan_page(msg).await
    }

    /// Every key in `[start, end)`, paging through the range (each page is a separate
    /// read).
    pub async fn scan_range_all(&self, start: &str, end: &str, mut options: ScanOptions) -> Result<Vec<KeyValue>> {
        let mut out = Vec::new();
        loop {
            let page = self.scan_range(start, end, options.clone()).await?;
            out.extend(page.kvs);
            match page.next_page_token {
                Some(t) => options.page_token = Some(t),
                None => return Ok(out),
            }
        }
    }
}
