use clap::Parser;
use kahuna_server::config::Config;
use kahuna_server::logging::LogFormat;

// The request path allocates and frees many small buffers (gRPC frames, log
// entries, history records); see docs/performance.md for what mimalloc gained.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: 0 after a clean shutdown (SIGTERM, SIGINT), 1 when the member cannot
/// start or stops serving on its own (its Raft core stopped: storage error, panic).
#[tokio::main]
async fn main() {
    let config = Config::parse();
    let format = config.log_format;
    kahuna_server::logging::init(format);
    if let Err(e) = kahuna_server::server::run(config).await {
        tracing::error!("{e:#}");
        // Also on stderr, plainly, for whoever started it by hand; not among JSON
        // lines, which a log shipper expects to parse one by one.
        if format == LogFormat::Text {
            eprintln!("kahuna-server: {e:#}");
        }
        // Not a return from main: that would wait for blocked storage threads.
        std::process::exit(1);
    }
}
