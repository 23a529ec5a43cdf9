//! How a run is shown in the terminal: drawn from the run's trace, the same record the stage
//! and the hand-outs draw, so the terminal and the page cannot disagree. For people, the
//! arrows of the sequence diagram (wrapped to the terminal, coloured on one) with a decoded
//! token's claims under the answer that issued it; for scripts, one JSON document of the same
//! events. A presenter's run waits for Next before each step and lesson.

use playbook_trace::{CertView, Event, Exchange, Party, SentView, Trace};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// `println!` that gives up quietly when stdout is gone (`playbook client --json | head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// How wide a lifeline's name is at least, so the flow's three line up (`ResourceServer`).
const NAME_WIDTH: usize = 14;
/// Where an arrow's summary starts: `   Client         ──▶ Keycloak       `.
const ARROW_INDENT: usize = 3 + NAME_WIDTH + 5 + NAME_WIDTH + 1;
/// Where a detail line starts, under the summary.
const DETAIL_INDENT: usize = ARROW_INDENT + 2;
/// The width of a detail's label column (`cnf.x5t#S256` and a space).
const DETAIL_LABEL: usize = 13;

/// How the terminal wants its text: colour or not, wrapped to a width or not.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
    /// `None` when stdout is not a terminal: a file or a pipe keeps whole lines.
    pub width: Option<usize>,
}

impl Style {
    /// Colour only on a terminal and without `NO_COLOR`; the terminal's width.
    pub fn detect() -> Self {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        Self {
            color: terminal && std::env::var_os("NO_COLOR").is_none(),
            width: terminal
                .then(|| terminal_size::terminal_size().map(|(w, _)| w.0 as usize))
                .flatten(),
        }
    }

    /// `first` then `text` wrapped at word boundaries, continuation lines indented by `indent`.
    fn wrap(&self, first: &str, indent: usize, text: &str) -> Vec<String> {
        let Some(width) = self.width.filter(|w| *w > indent + 20) else {
            return vec![format!("{first}{text}")];
        };
        let continuation = " ".repeat(indent);
        let options = playbook_stage::word_wrap(width)
            .initial_indent(first)
            .subsequent_indent(&continuation);
        textwrap::wrap(text, options)
            .into_iter()
            .map(String::from)
            .collect()
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// An answer's leading status in green (2xx) or red (4xx, 5xx).
    fn status(&self, line: &str) -> String {
        let Some((code, rest)) = line.trim_start().split_once(' ') else {
            return line.to_owned();
        };
        let colour = match code.parse::<u16>() {
            Ok(200..=299) => "32",
            Ok(400..=599) => "31",
            _ => return line.to_owned(),
        };
        let lead = &line[..line.len() - line.trim_start().len()];
        format!("{lead}{} {rest}", self.paint(colour, code))
    }
}

/// When the run goes on: at once, or when the presenter says next (Enter in the terminal, or
/// Next on the stage, both sent to one channel).
pub enum Pace {
    Continuous,
    OnNext {
        nexts: mpsc::UnboundedReceiver<()>,
        /// How the presenter says next, shown before each step.
        how: &'static str,
    },
}

impl Pace {
    /// Paced by Enter in this terminal (a closed stdin lets the run go on); the sender is for
    /// a stage's Next button, which `how` then mentions.
    pub fn on_next(how: &'static str) -> (Self, mpsc::UnboundedSender<()>) {
        let (next, nexts) = mpsc::unbounded_channel();
        let enter = next.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin()
                .read_line(&mut line)
                .is_ok_and(|read| read > 0)
            {
                if enter.send(()).is_err() {
                    break;
                }
                line.clear();
            }
        });
        (Self::OnNext { nexts, how }, next)
    }
}

pub struct Report {
    json: bool,
    style: Style,
    trace: Trace,
    /// How many of the trace's events are shown already.
    shown: usize,
    pace: Pace,
}

impl Report {
    /// A report of `trace`: the parties record into it, the report shows what they recorded.
    pub fn new(json: bool, trace: Trace) -> Self {
        Self {
            json,
            style: Style::detect(),
            trace,
            shown: 0,
            pace: Pace::Continuous,
        }
    }

    pub fn paced(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    /// Shows whatever the parties recorded since the last call, in order.
    fn catch_up(&mut self) {
        let run = self.trace.snapshot();
        for event in run.events.iter().skip(self.shown) {
            if !self.json {
                self.show(event);
            }
        }
        self.shown = run.events.len();
    }

    fn show(&self, event: &Event) {
        match event {
            Event::Step { title } => {
                let colour = if title.starts_with("Lesson") {
                    "1;33"
                } else {
                    "1;36"
                };
                for line in self.style.wrap("", 0, title) {
                    out!("\n{}", self.style.paint(colour, &line));
                }
            }
            Event::Exchange(exchange) => self.show_exchange(exchange),
            Event::Lesson { text } => {
                for line in self.style.wrap("   => ", 6, text) {
                    out!("{}", self.style.paint("33", &line));
                }
            }
            Event::Question { prompt, choices } => {
                for line in self.style.wrap("   ? ", 5, prompt) {
                    out!("{}", self.style.paint("1;34", &line));
                }
                for choice in Event::lettered(choices) {
                    out!("     {}", self.style.paint("1", &choice));
                }
            }
            Event::Verdict { held, text } => {
                let mark = Event::verdict_mark(*held);
                let mark = self.style.paint(if *held { "32" } else { "31" }, mark);
                let lines = self.style.wrap("     ", 5, text);
                for (i, line) in lines.iter().enumerate() {
                    if i == 0 {
                        out!("   {mark} {}", line.trim_start());
                    } else {
                        out!("{line}");
                    }
                }
            }
        }
    }

    /// An exchange as two arrows, with what the stage's details panel would show of it: the
    /// challenge of a refusal, the claims of a token Keycloak issued.
    fn show_exchange(&self, exchange: &Exchange) {
        let request = match exchange.purpose.as_str() {
            "" => playbook_stage::request_label(exchange),
            purpose => format!("{} — {purpose}", playbook_stage::request_label(exchange)),
        };
        self.print_arrow(exchange.from, exchange.to, &request);
        self.print_arrow(
            exchange.to,
            exchange.from,
            &playbook_stage::answer_label(exchange),
        );
        if let Some(via) = exchange.via {
            self.detail(
                "via",
                &format!("{} (the client's TLS ends there)", via.name()),
            );
        }
        if let Some(challenge) = &exchange.www_authenticate {
            self.detail("challenge", challenge);
        }
        if let Some(error) = &exchange.error {
            self.detail("error", error);
        }
        if let Some(sent) = &exchange.sent {
            self.show_sent(sent, exchange.client_certificate.as_ref());
        }
        if let Some(proof) = &exchange.proof {
            self.detail("dpop header", &proof.header.to_string());
            self.detail("dpop claims", &proof.claims.to_string());
            self.detail("proof key", &format!("jkt {}", proof.thumbprint));
        }
        if let Some(bound) = exchange.token.as_ref().and_then(|t| t.jkt())
            && exchange.to != Party::Keycloak
        {
            let verdict = match exchange.dpop_binding_holds() {
                Some(true) => "equal: the proof is signed by the key the token is bound to",
                _ if exchange.proof.is_none() => "no proof: the token must be refused",
                _ => "not equal: the proof is not by the key the token is bound to",
            };
            self.detail("cnf.jkt", &format!("{bound} ({verdict})"));
        }
        let issued = exchange.to == Party::Keycloak && exchange.path().ends_with("/token");
        if let (true, Some(token)) = (issued, &exchange.token) {
            let claims = &token.claims;
            let text = |name: &str| claims[name].as_str().unwrap_or("-").to_owned();
            let list = |value: &serde_json::Value| match value {
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.as_str().unwrap_or("-").to_owned(),
            };
            let scope = text("scope");
            self.detail("sub", &text("sub"));
            self.detail("scope", if scope.is_empty() { "(none)" } else { &scope });
            self.detail("realm roles", &list(&claims["realm_access"]["roles"]));
            self.detail("aud", &list(&claims["aud"]));
            if let Some(exp) = claims["exp"].as_i64() {
                let left = exp - playbook_keycloak::unix_now();
                self.detail("exp", &format!("{exp} (in {left} s)"));
            }
            match token.jkt() {
                Some(jkt) => self.detail("cnf.jkt", jkt),
                None => self.detail("cnf.x5t#S256", token.x5t_s256().unwrap_or("(not bound)")),
            }
        }
    }

    /// How a request authenticated its client, as it crossed the wire: the header, the form
    /// with secrets masked, an assertion's header and claims, the certificate presented.
    fn show_sent(&self, sent: &SentView, certificate: Option<&CertView>) {
        for (name, value) in &sent.headers {
            self.detail("header", &format!("{name}: {value}"));
        }
        self.detail("form", &sent.form_line());
        if let Some(assertion) = &sent.assertion {
            self.detail("jwt header", &assertion.header.to_string());
            self.detail("jwt claims", &assertion.claims.to_string());
        }
        self.detail(
            "certificate",
            &certificate.map_or("(none presented)".into(), |cert| {
                format!("{}, x5t#S256 {}", cert.subject, cert.thumbprint)
            }),
        );
    }

    /// A heading outside the paced steps (setup, the end).
    pub fn heading(&mut self, title: &str) {
        self.catch_up();
        if !self.json {
            out!("\n{}", self.style.paint("1", title));
        }
    }

    /// A step that begins at once, even when paced (setup, while Keycloak starts).
    pub fn step_now(&mut self, title: &str) {
        self.trace.step(title);
        self.catch_up();
    }

    /// A numbered step or a lesson begins: after the presenter's Next when paced.
    pub async fn step(&mut self, title: &str) {
        self.catch_up();
        self.wait_for_next(title).await;
        self.trace.step(title);
        self.catch_up();
    }

    /// When paced, says what Next will do and waits for it.
    async fn wait_for_next(&mut self, title: &str) {
        if let Pace::OnNext { nexts, how } = &mut self.pace {
            self.trace.waiting_for(Some(title));
            if !self.json {
                out!();
                // Bold yellow, not dim: a faint prompt disappears on a projector.
                for line in self.style.wrap(&format!("⏎ {how} for: "), 2, title) {
                    out!("{}", self.style.paint("1;33", &line));
                }
            }
            // A Next pressed while the previous step ran counts for that one, not this one.
            while nexts.try_recv().is_ok() {}
            if nexts.recv().await.is_none() {
                // No terminal input and no stage: nobody can say next, so go on.
                self.pace = Pace::Continuous;
            }
            self.trace.waiting_for(None);
        }
    }

    /// Predict mode: asks the room `prompt` with its `choices`, then waits for the presenter
    /// to reveal the answer (Next) before the run shows it.
    pub async fn predict(&mut self, prompt: &str, choices: &[&str]) {
        self.trace.question(prompt, choices);
        self.catch_up();
        self.wait_for_next("Reveal the answer").await;
    }

    /// What the arrows just shown teach, in one sentence (on the stage, a note on the diagram).
    pub fn lesson(&mut self, text: &str) {
        self.trace.lesson(text);
        self.catch_up();
    }

    fn print_arrow(&self, from: Party, to: Party, summary: &str) {
        let lead = format!(
            "   {:<NAME_WIDTH$} ──▶ {:<NAME_WIDTH$} ",
            from.name(),
            to.name()
        );
        // A long lifeline name (the lab's second resource servers) pushes its summary along.
        let indent = lead.chars().count().max(ARROW_INDENT);
        let lines = self.style.wrap(&lead, indent, summary);
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                let (lead, summary) = line.split_at(lead.len().min(line.len()));
                out!("{lead}{}", self.style.status(summary));
            } else {
                out!("{line}");
            }
        }
    }

    /// The lab's judgement of an attempt, recorded so that the stage and the hand-outs show it
    /// too.
    pub fn verdict(&mut self, held: bool, text: &str) {
        self.trace.verdict(held, text);
        self.catch_up();
    }

    /// A plain line of commentary (people only).
    pub fn note(&mut self, text: &str) {
        self.catch_up();
        if !self.json {
            for line in self.style.wrap("   ", 3, text) {
                out!("{line}");
            }
        }
    }

    /// A labelled line of detail under the last arrow (people only).
    pub fn detail(&self, label: &str, value: &str) {
        if !self.json {
            let lead = format!("{:DETAIL_INDENT$}{label:<DETAIL_LABEL$}", "");
            for line in self.style.wrap(&lead, DETAIL_INDENT + DETAIL_LABEL, value) {
                out!("{line}");
            }
        }
    }

    /// Shows the rest of the run and, in `--json` mode, prints the document: the run's events
    /// as the trace holds them, and the outcome.
    pub fn finish(mut self, outcome: Value) {
        self.catch_up();
        if self.json {
            let run = self.trace.snapshot();
            let document = json!({ "events": run.events, "outcome": outcome });
            out!(
                "{}",
                serde_json::to_string_pretty(&document).expect("JSON values serialize")
            );
        }
    }
}

impl Drop for Report {
    /// A run that stopped at an error still shows what was exchanged before it.
    fn drop(&mut self) {
        self.catch_up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_wrap_at_words_with_indented_continuations() {
        let style = Style {
            color: false,
            width: Some(60),
        };
        let text = "POST /realms/oauth2-playbook/protocol/openid-connect/token grant_type=client_credentials client_id=oauth2-playbook-client-credentials-mtls";
        let lines = style.wrap("   Client ──▶ Keycloak ", 25, text);
        assert!(lines.len() > 1);
        for line in &lines[1..] {
            assert!(line.starts_with(&" ".repeat(25)), "{line:?}");
        }
        let words: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        for word in text.split_whitespace() {
            assert!(words.contains(&word), "{word} was split");
        }
        for line in &lines {
            assert!(
                line.chars().count() <= 60 || !line.trim().contains(' '),
                "{line:?}"
            );
        }
    }

    #[test]
    fn without_a_terminal_lines_stay_whole_and_uncoloured() {
        let style = Style::default();
        assert_eq!(style.wrap("   ", 3, "a b c"), ["   a b c"]);
        assert_eq!(style.status("403 Bearer error"), "403 Bearer error");
        assert_eq!(style.paint("1", "x"), "x");
    }

    #[test]
    fn statuses_are_coloured_by_class_on_a_terminal() {
        let style = Style {
            color: true,
            width: None,
        };
        assert_eq!(
            style.status("200 OK, 3 user(s)"),
            "\x1b[32m200\x1b[0m OK, 3 user(s)"
        );
        assert_eq!(style.status("401 Bearer"), "\x1b[31m401\x1b[0m Bearer");
        assert_eq!(style.status("access token (eyJ…)"), "access token (eyJ…)");
    }
}
