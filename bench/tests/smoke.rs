//! A few seconds of every workload against a single real node: the benchmark builds,
//! runs and reports. It does not judge speed.

use std::process::Command;

use kahuna_testkit::Cluster;

#[tokio::test(flavor = "multi_thread")]
async fn every_workload_runs_and_reports() {
    let c = Cluster::start(1, "memory", &["--max-ephemeral-ttl-ms", "1000"]).await;
    let endpoint = c.members[0].client_addr.clone();
    for workload in [
        "put",
        "get",
        "cas",
        "lock",
        "ephemeral-lock",
        "seq",
        "mixed",
        "handoff",
        "watch",
        "rate",
        "ephemeral-rate",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kahuna-bench"))
            .args(["--endpoints", &endpoint, "--workload", workload])
            .args([
                "--clients",
                "2",
                "--duration",
                "0.5",
                "--keys",
                "20",
                "--lock-ttl-ms",
                "1000",
            ])
            .output()
            .expect("run kahuna-bench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{workload}: {stderr}");
        let line = stdout.lines().find(|l| l.starts_with("RESULT")).expect("a RESULT line");
        let field = |name: &str| -> f64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing in {line}"))
        };
        assert!(field("ops") > 0.0, "{workload} did nothing: {line}");
        assert_eq!(field("errors"), 0.0, "{workload} had errors: {line}\n{stderr}");
        assert!(field("p99_us") >= field("p50_us"), "{line}");
        assert!(line.contains(&format!("workload={workload}")));
    }
    // Loading a data set and timing a snapshot of it.
    let out = Command::new(env!("CARGO_BIN_EXE_kahuna-bench"))
        .args([
            "--endpoints",
            &endpoint,
            "--workload",
            "load",
            "--keys",
            "200",
            "--clients",
            "4",
            "--snapshot",
        ])
        .output()
        .expect("run kahuna-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("workload=load") && stdout.contains("ops=200"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("SNAPSHOT keys=200 build_ms=")),
        "{stdout}"
    );
}
