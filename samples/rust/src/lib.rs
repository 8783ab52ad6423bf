//! The four workflows every Kahuna SDK shows, in Rust. Each module is a small, complete
//! piece of application code; `examples/` runs each against a cluster
//! (`cargo run -p kahuna-samples --example rate_limit -- 127.0.0.1:2070`) and `tests/`
//! runs each against real servers.

pub mod allocate_ids;
pub mod leader_job;
pub mod rate_limit;
pub mod transfer;

/// The endpoints from the command line (`A,B,C` or separate arguments), or the default.
pub fn endpoints_from_args() -> Vec<String> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .flat_map(|a| a.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|a| !a.is_empty())
        .collect();
    if args.is_empty() {
        vec![kahuna_client::DEFAULT_ENDPOINT.to_owned()]
    } else {
        args
    }
}
