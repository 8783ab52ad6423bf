use clap::Parser;
use kahuna_server::config::Config;

// The request path allocates and frees many small buffers (gRPC frames, log
// entries, history records); see docs/performance.md for what mimalloc gained.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .init();
    kahuna_server::server::run(Config::parse()).await
}
