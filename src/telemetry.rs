//! Logging: `tracing` with `RUST_LOG`-style filtering (default `info`), JSON lines when
//! `BALER_LOG_FORMAT=json`. Spans per webhook delivery and per job carry project and item.

use tracing_subscriber::EnvFilter;

/// How log lines are written, from `BALER_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines (the default, and for any other value).
    Text,
    /// One JSON object per line (`json`), for log collectors.
    Json,
}

impl LogFormat {
    fn from_env() -> LogFormat {
        match std::env::var("BALER_LOG_FORMAT").as_deref() {
            Ok("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests start several apps in one process) is not an error.
    let _ = match LogFormat::from_env() {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
