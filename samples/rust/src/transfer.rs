//! Transactional compare-and-set: move money between two accounts atomically. The
//! transaction applies only if neither balance changed since it was read (compared by
//! revision); on a conflict it reads again and retries. Concurrent transfers never lose
//! or create money.

use kahuna_client::{Client, Compare, CompareOp, Result, TxnOp};

/// Why a transfer did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum TransferError {
    InsufficientFunds,
    NoSuchAccount(String),
}

async fn balance(client: &Client, account: &str) -> Result<Option<(i64, u64)>> {
    Ok(client
        .get(&format!("accounts/{account}"))
        .await?
        .map(|kv| (kv.value_str().parse().unwrap_or(0), kv.mod_revision)))
}

/// Opens `account` with `amount` unless it exists.
pub async fn open(client: &Client, account: &str, amount: i64) -> Result<bool> {
    Ok(client
        .txn()
        .when(Compare::missing(&format!("accounts/{account}")))
        .then(TxnOp::set(&format!("accounts/{account}"), amount.to_string()))
        .commit()
        .await?
        .succeeded)
}

/// Moves `amount` from `from` to `to`, retrying on conflicting concurrent updates.
pub async fn transfer(client: &Client, from: &str, to: &str, amount: i64) -> Result<Result<(), TransferError>> {
    loop {
        let Some((a, rev_a)) = balance(client, from).await? else {
            return Ok(Err(TransferError::NoSuchAccount(from.to_owned())));
        };
        let Some((b, rev_b)) = balance(client, to).await? else {
            return Ok(Err(TransferError::NoSuchAccount(to.to_owned())));
        };
        if a < amount {
            return Ok(Err(TransferError::InsufficientFunds));
        }
        let (ka, kb) = (format!("accounts/{from}"), format!("accounts/{to}"));
        let r = client
            .txn()
            .when(Compare::mod_revision(&ka, CompareOp::Equal, rev_a))
            .when(Compare::mod_revision(&kb, CompareOp::Equal, rev_b))
            .then(TxnOp::set(&ka, (a - amount).to_string()))
            .then(TxnOp::set(&kb, (b + amount).to_string()))
            .commit()
            .await;
        match r {
            Ok(r) if r.succeeded => return Ok(Ok(())),
            Ok(_) => continue, // a balance changed under us: read again
            Err(e) => return Err(e),
        }
    }
}

/// The sum of every account's balance.
pub async fn total(client: &Client) -> Result<i64> {
    Ok(client
        .scan_all("accounts/", Default::default())
        .await?
        .iter()
        .map(|kv| kv.value_str().parse::<i64>().unwrap_or(0))
        .sum())
}
