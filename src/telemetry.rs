//! Logging: a tracing subscriber writing to stderr, filtered by `POSTERN_LOG`
//! (e.g. `info`, `postern=debug`), as text or, with `POSTERN_LOG_FORMAT=json`, one JSON
//! object per line (`timestamp`, `level`, `message` and the event's fields at the top level)
//! for log collectors. Logs carry verbs, sizes and outcomes, never message content or
//! credentials; each message handled is one line (inbound: `id`, `address`, `status`,
//! `http_status`, `ms`; outbound: `id`, `domain`, `outcome`).

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// For people: `2026-01-01T00:00:00Z  INFO message handled id=1 …`.
    #[default]
    Text,
    /// For machines: one JSON object per line.
    Json,
}

/// `POSTERN_LOG_FORMAT` is neither `text` nor `json`.
#[derive(Debug, thiserror::Error)]
#[error("POSTERN_LOG_FORMAT is {0:?}; set it to `text` (the default) or `json`")]
pub struct UnknownFormat(String);

impl LogFormat {
    /// The format `POSTERN_LOG_FORMAT` names (unset or empty: text).
    pub fn parse(value: Option<&str>) -> Result<LogFormat, UnknownFormat> {
        match value.map(str::trim) {
            None | Some("") => Ok(LogFormat::Text),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(LogFormat::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            Some(other) => Err(UnknownFormat(other.to_string())),
        }
    }
}

/// `filter` from `POSTERN_LOG`, else `default` (`info` for the servers; one-shot commands
/// say what they did on stdout and log only warnings); text lines.
pub fn init(filter: Option<&str>, default: &str) {
    init_as(filter, default, LogFormat::Text);
}

/// [`init`] in `format`.
pub fn init_as(filter: Option<&str>, default: &str, format: LogFormat) {
    let filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // Colours only for a person at a terminal: journald, files and pipes get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_text_json_or_a_clear_error() {
        assert_eq!(LogFormat::parse(None).unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::parse(Some("JSON")).unwrap(), LogFormat::Json);
        assert_eq!(LogFormat::parse(Some("text")).unwrap(), LogFormat::Text);
        let error = LogFormat::parse(Some("yaml")).unwrap_err().to_string();
        assert!(error.contains("`json`"), "{error}");
    }
}
