//! `kahuna-dev-certs DIR [NAME...]`: a throwaway CA and the certificates a TLS cluster
//! needs for development and the SDK tests, as PEM files in DIR:
//!
//! - `ca.pem`: the CA to trust (`--cacert`, `--tls-client-ca`, `--peer-tls-ca`)
//! - `server.pem`, `server-key.pem`: for NAMEs (default `localhost 127.0.0.1 ::1`),
//!   usable on the client and peer ports
//! - `client.pem`, `client-key.pem`: a client certificate (CN `client`)
//! - `server.sha256`, `client.sha256`: their SHA-256 fingerprints (`--pin`, and the
//!   `cert-sha256:` lines of `--auth-tokens`)
//!
//! Not for production: the CA's key is thrown away and nothing is kept secret.

use std::path::PathBuf;
use std::process::ExitCode;

use kahuna_testkit::pki::Ca;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: kahuna-dev-certs DIR [NAME...]  (names default to localhost 127.0.0.1 ::1)");
        return ExitCode::from(2);
    };
    let mut names: Vec<String> = args.collect();
    if names.is_empty() {
        names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ca = Ca::new(&dir, "ca");
    let server = ca.issue("server", &names);
    let client = ca.issue("client", &["client"]);
    for (file, fp) in [
        ("server.sha256", server.fingerprint_hex()),
        ("client.sha256", client.fingerprint_hex()),
    ] {
        let path = dir.join(file);
        if let Err(e) = std::fs::write(&path, format!("{fp}\n")) {
            eprintln!("kahuna-dev-certs: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!(
        "{}: ca.pem, server.pem/server-key.pem for {}, client.pem/client-key.pem; server sha256 {}",
        dir.display(),
        names.join(" "),
        server.fingerprint_hex()
    );
    ExitCode::SUCCESS
}
