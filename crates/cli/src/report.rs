//! How the flow is shown: arrows of the sequence diagram for people (wrapped to the terminal,
//! coloured on one), one JSON document for scripts; steps and lessons also go to the run's
//! trace, and a presenter's run waits for Next before each of them.

use playbook_trace::{Exchange, Trace};
use serde_json::{Value, json};
use tokio::sync::mpsc;

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

/// Where an arrow's summary starts: `   Client         ──▶ AuthServer     `.
const ARROW_INDENT: usize = 3 + 14 + 5 + 14 + 1;
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
    events: Vec<Value>,
    style: Style,
    trace: Trace,
    pace: Pace,
}

impl Report {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            events: Vec::new(),
            style: Style::detect(),
            trace: Trace::off(),
            pace: Pace::Continuous,
        }
    }

    /// Steps and lessons are recorded in `trace` too.
    pub fn traced(mut self, trace: Trace) -> Self {
        self.trace = trace;
        self
    }

    pub fn paced(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    /// A heading outside the paced steps (setup, the end).
    pub fn heading(&mut self, title: &str) {
        if !self.json {
            out!("\n{}", self.style.paint("1", title));
        }
    }

    /// A step that begins at once, even when paced (setup, while Keycloak starts).
    pub fn step_now(&mut self, title: &str) {
        self.trace.step(title);
        self.heading(title);
    }

    /// A numbered step or a lesson begins: after the presenter's Next when paced.
    pub async fn step(&mut self, title: &str) {
        if let Pace::OnNext { nexts, how } = &mut self.pace {
            self.trace.waiting_for(Some(title));
            if !self.json {
                out!();
                for line in self.style.wrap(&format!("⏎ {how} for: "), 2, title) {
                    out!("{}", self.style.paint("2", &line));
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
        self.trace.step(title);
        if !self.json {
            let colour = if title.starts_with("Lesson") {
                "1;33"
            } else {
                "1;36"
            };
            for line in self.style.wrap("", 0, title) {
                out!("\n{}", self.style.paint(colour, &line));
            }
        }
    }

    /// What the arrows just shown teach, in one sentence (on the stage, a note on the diagram).
    pub fn lesson(&mut self, text: &str) {
        self.trace.lesson(text);
        if !self.json {
            for line in self.style.wrap("   => ", 6, text) {
                out!("{}", self.style.paint("33", &line));
            }
        }
    }

    /// One arrow of the diagram with a short summary, and structured details for `--json`.
    pub fn arrow(&mut self, from: Actor, to: Actor, summary: &str, details: Value) {
        if self.json {
            self.events.push(json!({ "from": from.name(), "to": to.name(), "summary": summary, "details": details }));
        } else {
            self.print_arrow(from.name(), to.name(), summary);
        }
    }

    /// An exchange as its party recorded it: the request's arrow and the answer's (people only).
    pub fn exchange(&mut self, exchange: &Exchange) {
        if !self.json {
            let (from, to) = (exchange.from.name(), exchange.to.name());
            self.print_arrow(from, to, &playbook_stage::request_label(exchange));
            self.print_arrow(to, from, &playbook_stage::answer_label(exchange));
        }
    }

    fn print_arrow(&self, from: &str, to: &str, summary: &str) {
        let lead = format!("   {from:<14} ──▶ {to:<14} ");
        let lines = self.style.wrap(&lead, ARROW_INDENT, summary);
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                let (lead, summary) = line.split_at(lead.len().min(line.len()));
                out!("{lead}{}", self.style.status(summary));
            } else {
                out!("{line}");
            }
        }
    }

    /// A verdict: whether a defence held, what was tried and what it answered (people only).
    pub fn verdict(&mut self, held: bool, text: &str) {
        if !self.json {
            let mark = if held {
                self.style.paint("32", "✓")
            } else {
                self.style.paint("31", "✗")
            };
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

    /// A plain line of commentary (people only).
    pub fn note(&mut self, text: &str) {
        if !self.json {
            for line in self.style.wrap("   ", 3, text) {
                out!("{line}");
            }
        }
    }

    /// A labelled line of detail under the last arrow (people only).
    pub fn detail(&mut self, label: &str, value: &str) {
        if !self.json {
            let lead = format!("{:DETAIL_INDENT$}{label:<DETAIL_LABEL$}", "");
            for line in self.style.wrap(&lead, DETAIL_INDENT + DETAIL_LABEL, value) {
                out!("{line}");
            }
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
        let lines = style.wrap("   Client ──▶ AuthServer ", 25, text);
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
