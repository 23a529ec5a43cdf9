//! Progress of slow stages: a spinner on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use playbook_provider::{LogProgress, Progress};

/// The right [`Progress`] for where stderr goes.
pub fn for_stderr() -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Arc::new(Spinner(ProgressBar::new_spinner()))
    } else {
        Arc::new(LogProgress)
    }
}

struct Spinner(ProgressBar);

impl Progress for Spinner {
    fn stage(&self, message: &str) {
        self.0.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
        );
        self.0.enable_steady_tick(Duration::from_millis(100));
        self.0.set_message(message.to_owned());
    }

    fn finished(&self, message: &str) {
        self.0.disable_steady_tick();
        self.0
            .set_style(ProgressStyle::with_template("✔ {msg}").expect("valid template"));
        self.0.finish_with_message(message.to_owned());
        self.0.reset();
    }
}
