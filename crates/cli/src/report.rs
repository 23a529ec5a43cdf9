//! How the flow is shown: arrows of the sequence diagram for people, one JSON document for scripts.

use serde_json::{Value, json};

/// `println!` that gives up quietly when stdout is gone (`playbook client --json | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The participants of the README's sequence diagram.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    Client,
    AuthServer,
    ResourceServer,
}

impl Actor {
    fn name(self) -> &'static str {
        match self {
            Self::Client => "Client",
            Self::AuthServer => "AuthServer",
            Self::ResourceServer => "ResourceServer",
        }
    }
}

pub struct Report {
    json: bool,
    events: Vec<Value>,
}

impl Report {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            events: Vec::new(),
        }
    }

    /// A heading for a numbered step or a lesson.
    pub fn heading(&mut self, title: &str) {
        if !self.json {
            out!("\n{title}");
        }
    }

    /// One arrow of the diagram with a short summary, and structured details for `--json`.
    pub fn arrow(&mut self, from: Actor, to: Actor, summary: &str, details: Value) {
        if self.json {
            self.events.push(json!({ "from": from.name(), "to": to.name(), "summary": summary, "details": details }));
        } else {
            out!("   {:<14} ──▶ {:<14} {summary}", from.name(), to.name());
        }
    }

    /// A plain line of commentary (people only).
    pub fn note(&mut self, text: &str) {
        if !self.json {
            out!("   {text}");
        }
    }

    /// An indented line of detail under the last arrow (people only).
    pub fn detail(&mut self, text: &str) {
        if !self.json {
            out!("   {:<14}     {:<14}   {text}", "", "");
        }
    }

    /// Prints the JSON document (in `--json` mode) with the outcome.
    pub fn finish(self, outcome: Value) {
        if self.json {
            let document = json!({ "events": self.events, "outcome": outcome });
            out!(
                "{}",
                serde_json::to_string_pretty(&document).expect("JSON values serialize")
            );
        }
    }
}
