//! Progress of the slow stages (download, build, start), reported without knowing about terminals.

/// Receives the stages of a Keycloak start. The CLI draws a spinner; tests log lines.
pub trait Progress: Send + Sync {
    /// A slow stage begins, e.g. "building Keycloak 26.7.3".
    fn stage(&self, message: &str);
    /// The stage is over, with a short summary, e.g. "Keycloak ready in 9.1 s".
    fn finished(&self, message: &str);
}

/// Plain log lines through `tracing`.
pub struct LogProgress;

impl Progress for LogProgress {
    fn stage(&self, message: &str) {
        tracing::info!("{message}");
    }
    fn finished(&self, message: &str) {
        tracing::info!("{message}");
    }
}
