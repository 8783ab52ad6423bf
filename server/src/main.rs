use clap::Parser;
use kahuna_server::config::Config;

// The request path allocates and frees many small buffers (gRPC frames, log
// entries, history records); see docs/performance.md for what mimalloc gained.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: 0 after a clean shutdown (SIGTERM, SIGINT), 1 when the member cannot
/// start or stops serving on its own (its Raft core stopped: storage error, panic).
#[tokio::main]
async fn main() {
    let config = Config::parse();
    kahuna_server::logging::init(config.log_format);
    if let Err(e) = kahuna_server::server::run(config).await {
        tracing::error!("{e:#}");
        eprintln!("kahuna-server: {e:#}");
        // Not a return from main: that would wait for blocked storage threads.
        std::process::exit(1);
    }
}
