//! The instructor's stage: the sequence diagram of a run, drawn from its [`Trace`] as the
//! exchanges complete, served live to any number of browsers and written as hand-outs.
//!
//! Everything the page needs is compiled in (no CDN, no npm): one HTML page with its CSS and
//! a little script, and a server-side renderer that the live page, the standalone HTML export
//! and the SVG export share, so what the room saw is what the learners take home.
//!
//! ```
//! use playbook_stage::Export;
//! use playbook_trace::{Exchange, Party, Trace};
//!
//! let trace = Trace::new();
//! let mut exchange = Exchange::new(Party::Client, Party::ResourceServer, "GET", "https://localhost:8443/api/users");
//! exchange.answered(200, "3 user(s)");
//! trace.record(exchange);
//! let mermaid = Export::Mermaid.render(&trace.snapshot());
//! assert!(mermaid.contains("C->>R: GET /api/users"));
//! ```
//!
//! [`Trace`]: playbook_trace::Trace

pub mod audience;
mod export;
mod render;
mod server;
mod votes;

pub use export::{Export, ExportError};
pub use render::{PageFor, answer_label, request_label, word_wrap};
pub use server::{DEFAULT_PORT, Stage, StageError};
