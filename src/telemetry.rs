//! Logging: a tracing subscriber writing to stderr, filtered by `POSTERN_LOG`
//! (e.g. `info`, `postern=debug`). Logs carry verbs, sizes and outcomes, never message
//! content or credentials.

use tracing_subscriber::EnvFilter;

pub fn init(filter: Option<&str>) {
    let filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
