//! The shared record of a run, and the signal that it changed (for live viewers).

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

use crate::{Event, Exchange, Party};

/// A run as recorded so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Run {
    pub events: Vec<Event>,
    /// The step that starts when the presenter says next, while the run waits for that.
    pub waiting_for: Option<String>,
    /// `Some(ok)` once the run is over.
    pub finished: Option<bool>,
    /// What the run ran against, as `(what, which)` pairs (Keycloak's version, the realm, the
    /// client's method and binding): what a hand-out says next to its date.
    pub context: Vec<(String, String)>,
    /// What the run is, as its page's title says; the flow's when the command said nothing.
    pub title: Option<String>,
}

impl Run {
    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.events.iter().filter_map(|event| match event {
            Event::Exchange(exchange) => Some(&**exchange),
            _ => None,
        })
    }

    /// What the run is, for a page's title.
    pub fn title(&self) -> &str {
        self.title
            .as_deref()
            .unwrap_or("Client credentials over mutual TLS")
    }

    /// The question the run waits on the presenter to reveal (predict mode): its event's
    /// index and its choices.
    pub fn open_question(&self) -> Option<(usize, &[String])> {
        self.waiting_for.as_ref()?;
        self.latest_question()
            .filter(|(index, _)| *index + 1 == self.events.len())
    }

    /// The latest question asked, open or revealed: its event's index and its choices.
    pub fn latest_question(&self) -> Option<(usize, &[String])> {
        self.events
            .iter()
            .enumerate()
            .rev()
            .find_map(|(index, event)| match event {
                Event::Question { choices, .. } => Some((index, choices.as_slice())),
                _ => None,
            })
    }

    /// Some of the events, as a finished run of their own titled `title` (a lab scenario's
    /// hand-out).
    pub fn part(&self, events: std::ops::Range<usize>, finished: bool, title: &str) -> Run {
        Run {
            events: self.events.get(events).unwrap_or_default().to_vec(),
            waiting_for: None,
            finished: Some(finished),
            context: self.context.clone(),
            title: Some(title.into()),
        }
    }

    /// The lifelines to draw, in column order: the flow's three, and any other party an
    /// exchange involved.
    pub fn parties(&self) -> Vec<Party> {
        Party::ALL
            .into_iter()
            .filter(|party| {
                Party::FLOW.contains(party)
                    || self
                        .exchanges()
                        .any(|e| e.from == *party || e.to == *party || e.via == Some(*party))
            })
            .collect()
    }
}

/// Where the parties record a run: cheap to clone, shared by all of them; [`Trace::off`] (the
/// default) records nothing.
#[derive(Clone, Default)]
pub struct Trace(Option<Arc<Shared>>);

struct Shared {
    run: Mutex<Run>,
    /// While above zero, exchanges are not recorded (see [`Trace::quiet`]).
    quiet: std::sync::atomic::AtomicUsize,
    /// Bumped at every change, so viewers wake up and redraw.
    changed: watch::Sender<u64>,
    /// The addresses (scheme, host and port) a reverse proxy serves: requests to them are
    /// drawn through the proxy's lifeline.
    proxied: Mutex<Vec<String>>,
}

impl Trace {
    pub fn new() -> Self {
        Self(Some(Arc::new(Shared {
            run: Mutex::new(Run::default()),
            quiet: std::sync::atomic::AtomicUsize::new(0),
            changed: watch::Sender::new(0),
            proxied: Mutex::new(Vec::new()),
        })))
    }

    /// Requests to `origin` (`https://localhost:9443`) pass the reverse proxy: the parties
    /// address the proxy as if it were the part behind it, and only the trace draws the hop.
    pub fn through_proxy(&self, origin: &str) {
        if let Some(shared) = &self.0 {
            let origin = origin.trim_end_matches('/').to_owned();
            shared
                .proxied
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(origin);
        }
    }

    /// A trace that records nothing.
    pub fn off() -> Self {
        Self(None)
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    pub fn record(&self, mut exchange: Exchange) {
        if let Some(shared) = &self.0 {
            let proxied = shared.proxied.lock().unwrap_or_else(|e| e.into_inner());
            let behind = |origin: &String| {
                exchange
                    .url
                    .strip_prefix(origin.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            };
            if proxied.iter().any(behind) {
                exchange.via = Some(Party::Proxy);
            }
        }
        let quiet = self
            .0
            .as_ref()
            .is_some_and(|shared| shared.quiet.load(std::sync::atomic::Ordering::Acquire) > 0);
        if !quiet {
            self.update(|run| run.events.push(Event::Exchange(Box::new(exchange))));
        }
    }

    /// Exchanges are not recorded until the guard is dropped: housekeeping (importing a realm,
    /// cleaning up) that is not part of the story being told.
    pub fn quiet(&self) -> Quiet {
        if let Some(shared) = &self.0 {
            shared
                .quiet
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        Quiet(self.clone())
    }

    pub fn step(&self, title: &str) {
        self.update(|run| {
            run.events.push(Event::Step {
                title: title.into(),
            })
        });
    }

    pub fn lesson(&self, text: &str) {
        self.update(|run| run.events.push(Event::Lesson { text: text.into() }));
    }

    /// Names the run (its page's title); the command knows what it runs, the trace does not.
    pub fn title(&self, title: &str) {
        self.update(|run| run.title = Some(title.into()));
    }

    /// Notes what the run runs against (shown on its hand-outs); a second note of the same
    /// `what` replaces the first.
    pub fn context(&self, what: &str, which: &str) {
        self.update(|run| {
            run.context.retain(|(w, _)| w != what);
            run.context.push((what.into(), which.into()));
        });
    }

    /// Predict mode: the room is asked `prompt`, with `choices`, before the run shows it.
    pub fn question(&self, prompt: &str, choices: &[&str]) {
        self.update(|run| {
            run.events.push(Event::Question {
                prompt: prompt.into(),
                choices: choices.iter().map(|c| c.to_string()).collect(),
            })
        });
    }

    /// The lab's judgement of an attempt.
    pub fn verdict(&self, held: bool, text: &str) {
        self.update(|run| {
            run.events.push(Event::Verdict {
                held,
                text: text.into(),
            })
        });
    }

    /// The run waits for the presenter before `next` (or no longer waits, with `None`).
    pub fn waiting_for(&self, next: Option<&str>) {
        self.update(|run| run.waiting_for = next.map(String::from));
    }

    pub fn finish(&self, ok: bool) {
        self.update(|run| {
            run.waiting_for = None;
            run.finished = Some(ok);
        });
    }

    /// The run so far (empty when off).
    pub fn snapshot(&self) -> Run {
        self.0
            .as_ref()
            .map(|shared| shared.run.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Changes whenever the run does; `None` when off.
    pub fn subscribe(&self) -> Option<watch::Receiver<u64>> {
        self.0.as_ref().map(|shared| shared.changed.subscribe())
    }

    fn update(&self, change: impl FnOnce(&mut Run)) {
        if let Some(shared) = &self.0 {
            change(&mut shared.run.lock().unwrap_or_else(|e| e.into_inner()));
            shared.changed.send_modify(|version| *version += 1);
        }
    }
}

/// Recording resumes when this is dropped.
pub struct Quiet(Trace);

impl Drop for Quiet {
    fn drop(&mut self) {
        if let Some(shared) = &self.0.0 {
            shared
                .quiet
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_on() {
            "Trace(on)"
        } else {
            "Trace(off)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Party;

    #[test]
    fn events_keep_their_order_and_viewers_are_told_of_each_change() {
        let trace = Trace::new();
        let mut viewer = trace.subscribe().unwrap();
        trace.step("1. Admin token");
        trace.record(Exchange::new(
            Party::Client,
            Party::Keycloak,
            "POST",
            "https://k/token",
        ));
        trace.lesson("why");
        trace.waiting_for(Some("2. next"));
        assert!(viewer.has_changed().unwrap());
        viewer.mark_unchanged();
        trace.finish(true);
        assert!(viewer.has_changed().unwrap());
        let run = trace.snapshot();
        let kinds: Vec<_> = run
            .events
            .iter()
            .map(|e| {
                serde_json::to_value(e).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(kinds, ["step", "exchange", "lesson"]);
        assert_eq!(run.waiting_for, None, "finishing ends the wait");
        assert_eq!(run.finished, Some(true));
    }

    #[test]
    fn a_quiet_trace_drops_exchanges_until_the_guard_goes() {
        let trace = Trace::new();
        let quiet = trace.quiet();
        trace.record(Exchange::new(
            Party::Client,
            Party::Keycloak,
            "POST",
            "https://k/admin",
        ));
        drop(quiet);
        trace.record(Exchange::new(
            Party::Client,
            Party::Keycloak,
            "POST",
            "https://k/token",
        ));
        let urls: Vec<_> = trace
            .snapshot()
            .exchanges()
            .map(|e| e.url.clone())
            .collect();
        assert_eq!(urls, ["https://k/token"]);
    }

    #[test]
    fn an_off_trace_records_nothing() {
        let trace = Trace::off();
        trace.step("x");
        assert!(trace.snapshot().events.is_empty());
        assert!(trace.subscribe().is_none());
    }
}
