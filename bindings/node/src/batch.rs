//! Batches and ranges for the package's `getMany`, `setMany`, `deleteMany`,
//! `getByRange` and `scanByRange`: the shapes that cross; the calls themselves are
//! `NativeClient` methods in `lib.rs`, each one core call.

use kahuna_client::ManyKeys;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use super::{kv_out, num, NativeKv};

/// Keys read together at one revision: those that exist, in the order asked.
#[napi(object)]
pub struct NativeManyKeys {
    pub items: Vec<NativeKv>,
    /// The revision every key was read at.
    pub revision: f64,
}

pub(crate) fn many_out(m: ManyKeys) -> NativeManyKeys {
    NativeManyKeys {
        items: m.kvs.into_iter().map(kv_out).collect(),
        revision: num(m.revision),
    }
}

/// One write of `setMany`.
#[napi(object)]
pub struct NativeSetManyItem {
    pub key: String,
    pub value: Buffer,
}

pub(crate) fn items_in(items: &[NativeSetManyItem]) -> Vec<(&str, &[u8])> {
    items.iter().map(|i| (i.key.as_str(), i.value.as_ref())).collect()
}

pub(crate) fn strs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}
