//! Checkers: each takes a recorded history and returns the anomalies it proves.
//! Times are nanoseconds on the harness's monotonic clock, shared by every client.

pub mod lock;
pub mod register;
pub mod sequence;

use serde::{Deserialize, Serialize};

/// A guarantee the history shows broken, with the operations that show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: String,
    pub ops: Vec<String>,
}

impl Anomaly {
    pub fn new(kind: &str, ops: Vec<String>) -> Anomaly {
        Anomaly {
            kind: kind.to_owned(),
            ops,
        }
    }
}

/// Milliseconds for display.
pub fn ms(ns: i64) -> String {
    if ns == i64::MAX {
        "inf".into()
    } else {
        format!("{:.3}", ns as f64 / 1e6)
    }
}
