//! Register checker: the history goes to the Porcupine program in
//! `tests/faults/checker` (Go), which checks it for linearizability key by key.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::Anomaly;

/// One operation, in the checker's JSON format (see checker/main.go).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RegisterOp {
    pub client: usize,
    pub op: String,
    pub key: String,
    pub value: String,
    pub expected: String,
    pub out_value: String,
    pub out_exists: bool,
    pub out_ok: bool,
    pub unknown: bool,
    pub call: i64,
    #[serde(rename = "return")]
    pub ret: i64,
}

#[derive(Debug, Deserialize)]
struct CheckerIllegal {
    key: String,
    ops: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct CheckerResult {
    result: String,
    keys: usize,
    illegal: Vec<CheckerIllegal>,
    timed_out: Vec<String>,
}

pub struct Verdict {
    pub anomalies: Vec<Anomaly>,
    /// Keys Porcupine could not decide in time.
    pub undecided: Vec<String>,
    pub keys: usize,
}

/// Writes `ops` to `path` and checks them with the Porcupine program `checker`;
/// visualizations of failing keys go to `html_dir`.
pub fn check(checker: &Path, ops: &[RegisterOp], path: &Path, html_dir: &Path) -> Result<Verdict> {
    std::fs::write(path, serde_json::to_vec(ops)?)?;
    let out = Command::new(checker)
        .arg("-html")
        .arg(html_dir)
        .arg(path)
        .output()
        .with_context(|| format!("running the Porcupine checker {}", checker.display()))?;
    if !out.status.success() {
        bail!("the Porcupine checker failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let r: CheckerResult = serde_json::from_slice(&out.stdout).context("the Porcupine checker's answer")?;
    let anomalies = r
        .illegal
        .into_iter()
        .map(|i| {
            let mut ops = vec![format!(
                "key {} is not linearizable (visualization: {}/{}.html)",
                i.key,
                html_dir.display(),
                i.key.replace(['/', ' '], "_")
            )];
            ops.extend(i.ops);
            Anomaly::new("not linearizable", ops)
        })
        .collect();
    if r.result != "Ok" && r.result != "Illegal" && r.timed_out.is_empty() {
        bail!("the Porcupine checker answered {}", r.result);
    }
    Ok(Verdict {
        anomalies,
        undecided: r.timed_out,
        keys: r.keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds the Go checker (the Go toolchain and the module proxy are required).
    fn build_checker(dir: &Path) -> std::path::PathBuf {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("checker");
        let bin = dir.join("porcupine-checker");
        let status = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(&src)
            .status()
            .expect("the Go toolchain (go) is needed to build the Porcupine checker");
        assert!(status.success(), "go build of {} failed", src.display());
        bin
    }

    fn op(client: usize, op: &str, value: &str, expected: &str, call: i64, ret: i64) -> RegisterOp {
        RegisterOp {
            client,
            op: op.into(),
            key: "k".into(),
            value: value.into(),
            expected: expected.into(),
            out_ok: true,
            call,
            ret,
            ..Default::default()
        }
    }

    fn read(client: usize, value: &str, call: i64, ret: i64) -> RegisterOp {
        RegisterOp {
            client,
            op: "get".into(),
            key: "k".into(),
            out_value: value.into(),
            out_exists: !value.is_empty(),
            call,
            ret,
            ..Default::default()
        }
    }

    #[test]
    fn porcupine_passes_a_linearizable_history_and_fails_a_stale_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let checker = build_checker(dir.path());
        let mut lost = op(2, "set", "c", "", 35, 0);
        lost.unknown = true;
        let good = vec![
            op(0, "set", "a", "", 0, 10),
            read(1, "a", 5, 15),
            op(1, "cas", "b", "a", 20, 30),
            lost.clone(),
            read(0, "b", 31, 40),
            read(0, "c", 50, 60),
        ];
        let v = check(&checker, &good, &dir.path().join("good.json"), dir.path()).expect("check");
        assert!(v.anomalies.is_empty(), "{:?}", v.anomalies);
        assert_eq!(v.keys, 1);

        // A read that returns a value overwritten before the read began.
        let stale = vec![
            op(0, "set", "a", "", 0, 10),
            op(0, "set", "b", "", 20, 30),
            read(1, "a", 40, 50),
        ];
        let v = check(&checker, &stale, &dir.path().join("stale.json"), dir.path()).expect("check");
        assert_eq!(v.anomalies.len(), 1, "a stale read must be caught");
        assert_eq!(v.anomalies[0].kind, "not linearizable");

        // An unknown write, once observed, cannot be undone.
        let flip = vec![
            op(0, "set", "a", "", 0, 10),
            lost,
            read(1, "c", 40, 50),
            read(1, "a", 60, 70),
        ];
        let v = check(&checker, &flip, &dir.path().join("flip.json"), dir.path()).expect("check");
        assert_eq!(v.anomalies.len(), 1, "a lost acknowledged value must be caught");
    }
}
