//! Kahuna's wire protocol (`kahuna.v1`), generated from `proto/kahuna/v1/*.proto`
//! by tonic/prost at build time.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("kahuna.v1");
}

mod error_kind;

pub use v1::ErrorKind;
pub mod tls;
