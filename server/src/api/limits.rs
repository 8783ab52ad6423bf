//! Bounds on everything a client controls, checked before anything is proposed, so
//! bad input never reaches the log. Each violation is INVALID_ARGUMENT naming the limit.

use tonic::Status;

use crate::errors::invalid;

pub const MAX_KEY_BYTES: usize = 4096;
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Largest request accepted on the client port (a maximal key and value fit).
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
pub const MAX_TTL_MS: u64 = 365 * 24 * 60 * 60 * 1000;
pub const DEFAULT_SCAN_LIMIT: u32 = 100;
pub const MAX_SCAN_LIMIT: u32 = 1000;
/// A scan or history page stops early once its encoded keys, values and framing would
/// pass this many bytes: below the clients' 4 MiB receive limit, with room for the
/// response's header.
pub const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024;
pub const DEFAULT_HISTORY_LIMIT: u32 = 100;
pub const MAX_HISTORY_LIMIT: u32 = 1000;
pub const MAX_CLIENT_ID_BYTES: usize = 128;
pub const MAX_RESOURCE_BYTES: usize = 1024;
pub const MAX_OWNER_BYTES: usize = 1024;
pub const MAX_LOCK_TTL_MS: u64 = 24 * 60 * 60 * 1000;
pub const MAX_SEQUENCE_NAME_BYTES: usize = 1024;
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
pub const MAX_SEQUENCE_COUNT: u64 = 1_000_000;
/// Compares plus operations of both branches of one transaction.
pub const MAX_TXN_OPS: usize = 128;

/// Checks UTF-8 text of at most `max` bytes; `what` names the field in the error.
pub fn text<'a>(what: &str, bytes: &'a [u8], max: usize, allow_empty: bool) -> Result<&'a str, Status> {
    if bytes.is_empty() && !allow_empty {
        return Err(invalid(format!("{what} must not be empty")));
    }
    if bytes.len() > max {
        return Err(invalid(format!(
            "{what} is {} bytes; the limit is {max} bytes",
            bytes.len()
        )));
    }
    std::str::from_utf8(bytes).map_err(|e| invalid(format!("{what} is not valid UTF-8: {e}")))
}

pub fn key(bytes: &[u8]) -> Result<(), Status> {
    text("key", bytes, MAX_KEY_BYTES, false).map(|_| ())
}

pub fn value(bytes: &[u8]) -> Result<(), Status> {
    if bytes.len() > MAX_VALUE_BYTES {
        return Err(invalid(format!(
            "value is {} bytes; the limit is {MAX_VALUE_BYTES} bytes",
            bytes.len()
        )));
    }
    Ok(())
}

/// A lock resource name: UTF-8 text, 1..=[`MAX_RESOURCE_BYTES`].
pub fn resource(what: &str, bytes: &[u8]) -> Result<(), Status> {
    text(what, bytes, MAX_RESOURCE_BYTES, false).map(|_| ())
}

/// A lock owner: any bytes, 1..=[`MAX_OWNER_BYTES`].
pub fn owner(bytes: &[u8]) -> Result<(), Status> {
    if bytes.is_empty() {
        return Err(invalid("owner must not be empty"));
    }
    if bytes.len() > MAX_OWNER_BYTES {
        return Err(invalid(format!(
            "owner is {} bytes; the limit is {MAX_OWNER_BYTES} bytes",
            bytes.len()
        )));
    }
    Ok(())
}

/// A time to live that must be given (locks, ephemeral keys): 1 ms up to `max_ms`.
pub fn bounded_ttl(ttl_ms: u64, max_ms: u64, what: &str) -> Result<(), Status> {
    if ttl_ms == 0 {
        return Err(invalid(format!("ttl_ms must be at least 1 ms for {what}")));
    }
    if ttl_ms > max_ms {
        return Err(invalid(format!(
            "ttl_ms is {ttl_ms}; the limit for {what} is {max_ms} ms"
        )));
    }
    Ok(())
}

/// A sequence reservation size: 1..=[`MAX_SEQUENCE_COUNT`].
pub fn sequence_count(count: u64) -> Result<(), Status> {
    if count == 0 || count > MAX_SEQUENCE_COUNT {
        return Err(invalid(format!(
            "count is {count}; it must be between 1 and {MAX_SEQUENCE_COUNT}"
        )));
    }
    Ok(())
}

/// A key's time to live: 0 (none) up to [`MAX_TTL_MS`].
pub fn key_ttl(ttl_ms: u64) -> Result<(), Status> {
    if ttl_ms > MAX_TTL_MS {
        return Err(invalid(format!(
            "ttl_ms is {ttl_ms}; the limit is {MAX_TTL_MS} ms (365 days)"
        )));
    }
    Ok(())
}

/// A page size: 0 means `default`, otherwise 1..=`max`.
pub fn page(what: &str, limit: u32, default: u32, max: u32) -> Result<usize, Status> {
    match limit {
        0 => Ok(default as usize),
        n if n > max => Err(invalid(format!("{what} is {n}; the limit is {max}"))),
        n => Ok(n as usize),
    }
}

/// Parses an enum field, rejecting values this server does not know.
pub fn enumeration<E: TryFrom<i32>>(what: &str, raw: i32) -> Result<E, Status> {
    E::try_from(raw).map_err(|_| invalid(format!("{what} has unknown value {raw}")))
}

/// `(client_id, request_id)` for dedupe; absent or empty means none.
pub fn request_id(id: Option<&kahuna_proto::v1::RequestId>) -> Result<Option<(String, u64)>, Status> {
    match id {
        None => Ok(None),
        Some(r) if r.client_id.is_empty() && r.request_id == 0 => Ok(None),
        Some(r) => {
            let client = text("request_id.client_id", &r.client_id, MAX_CLIENT_ID_BYTES, false)?;
            Ok(Some((client.to_owned(), r.request_id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_limit() {
        let e = key(&vec![b'a'; MAX_KEY_BYTES + 1]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("4096"), "{}", e.message());
        assert!(key(b"").is_err());
        assert!(key(&[0xff, 0xfe]).unwrap_err().message().contains("UTF-8"));
        assert!(key_ttl(MAX_TTL_MS + 1).unwrap_err().message().contains("365 days"));
        assert_eq!(page("limit", 0, 100, 1000).ok(), Some(100));
        assert!(page("limit", 1001, 100, 1000).is_err());
    }
}
