//! Logging: a tracing subscriber writing to stderr, filtered by `POSTERN_LOG`
//! (e.g. `info`, `postern=debug`). Logs carry verbs, sizes and outcomes, never message
//! content or credentials.

use tracing_subscriber::EnvFilter;

/// `filter` from `POSTERN_LOG`, else `default` (`info` for the servers; one-shot commands
/// say what they did on stdout and log only warnings).
pub fn init(filter: Option<&str>, default: &str) {
    let filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
