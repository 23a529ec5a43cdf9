//! What happened on the wire, as the parties that made each exchange saw it.
//!
//! The client, the Admin API session and the resource server each record their own HTTP
//! exchanges into a [`Trace`] when the answer arrives; the instructor's stage and the exports
//! draw the sequence diagram from that record, so the diagram shows what really happened rather
//! than a list of what should. A run's steps and lessons are recorded by whoever runs it.
//!
//! A [`Trace`] is off by default and then costs nothing, so libraries take one unconditionally.
//! What is recorded is safe to show a room: a token is kept only as its decoded header and
//! claims (never the compact JWT or its signature), and admin tokens and passwords not at all.
//!
//! ```
//! use playbook_trace::{Exchange, Party, Trace};
//!
//! let trace = Trace::new();
//! trace.step("3. Client credentials token over mutual TLS");
//! let mut exchange = Exchange::new(Party::Client, Party::Keycloak, "POST", "https://localhost:9443/token");
//! exchange.answered(200, "access token");
//! trace.record(exchange);
//! assert_eq!(trace.snapshot().exchanges().count(), 1);
//! ```

mod model;
mod recorder;

pub use model::{CertView, Event, Exchange, Party, ProofView, SentView, TokenView};
pub use recorder::{Quiet, Run, Trace};
