//! Batches and ranges over the C ABI (Kahuna.Client's `GetManyKeyValues`,
//! `SetManyKeyValues`, `DeleteManyKeyValues`, `GetByRange`): several keys read at one
//! revision, written or deleted atomically at one revision, and one page of a key range
//! `[start, end)`.

use super::*;

/// The UTF-8 keys of a request.
unsafe fn keys(p: *const KahunaBytes, len: usize) -> Result<Vec<String>, FfiError> {
    array(p, len, "keys")?.iter().map(|k| string(*k, "key")).collect()
}

/// Reads keys at one revision (1 to 1,000 keys; more, or none, fail with
/// `KAHUNA_STATUS_INVALID_ARGUMENT`). Result: `kvs` (the keys that exist, in the order
/// asked: missing keys are left out), `revision` (the one every key was read at).
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_get_many(
    client_handle: *const KahunaClient,
    req: *const KahunaGetManyRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(client_handle, req, cancel, user_data, callback, |c, r| {
        let keys = keys(r.keys, r.keys_len)?;
        let options = GetOptions {
            revision: None,
            consistency: consistency(r.consistency)?,
            durability: durability(r.durability)?,
        };
        Ok(async move {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let many = c.client.get_many(&refs, options).await?;
            Ok(Answer {
                succeeded: true,
                revision: many.revision,
                kvs: found(many.kvs),
                ..Answer::default()
            })
        })
    })
}

/// Writes every item atomically, at one revision (persistent keys; at most 128 items
/// and 2 MiB in all). Result: `revision`.
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_set_many(
    client_handle: *const KahunaClient,
    req: *const KahunaSetManyRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(client_handle, req, cancel, user_data, callback, |c, r| {
        let mut items = Vec::with_capacity(r.items_len);
        for item in array(r.items, r.items_len, "items")? {
            items.push((string(item.key, "key")?, owned_bytes(item.value)?));
        }
        Ok(async move {
            let refs: Vec<(&str, &[u8])> = items.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            let revision = c.client.set_many(&refs).await?;
            Ok(Answer {
                succeeded: true,
                revision,
                ..Answer::default()
            })
        })
    })
}

/// Deletes keys atomically, at one revision (persistent keys; at most 128). Result:
/// `count` (how many of them existed).
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_delete_many(
    client_handle: *const KahunaClient,
    req: *const KahunaDeleteManyRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(client_handle, req, cancel, user_data, callback, |c, r| {
        let keys = keys(r.keys, r.keys_len)?;
        Ok(async move {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let existed = c.client.delete_many(&refs).await?;
            Ok(Answer {
                succeeded: true,
                count: existed as u64,
                ..Answer::default()
            })
        })
    })
}

/// One page of the keys in `[start, end)` (an empty `end`: to the last key), in byte
/// order. Result: `kvs`, `next_page_token` (empty on the last page), `revision`.
#[no_mangle]
pub unsafe extern "C" fn kahuna_kv_scan_range(
    client_handle: *const KahunaClient,
    req: *const KahunaScanRangeRequest,
    cancel: *const KahunaCancel,
    user_data: u64,
    callback: KahunaCallback,
) {
    call(client_handle, req, cancel, user_data, callback, |c, r| {
        let start_key = string(r.start, "range start")?;
        let end_key = string(r.end, "range end")?;
        let options = scan_options(&r.page)?;
        Ok(async move { Ok(page_answer(c.client.scan_range(&start_key, &end_key, options).await?)) })
    })
}
