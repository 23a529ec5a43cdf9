//! The verdict of each check and the report that prints them: ✓, ✗ with what to do, or
//! skipped because an earlier check failed; the first failure decides the exit code.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cmd::{EXIT_REFUSED, EXIT_UNREACHABLE};

/// Why a check failed: the user's setup, or a party that does not answer.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Misconfigured,
    Unreachable,
}

pub enum Verdict {
    Pass(String),
    Fail {
        said: String,
        fix: String,
        kind: Failure,
    },
    Skipped(&'static str),
}

pub fn fail(kind: Failure, said: impl Into<String>, fix: impl Into<String>) -> Verdict {
    Verdict::Fail {
        said: said.into(),
        fix: fix.into(),
        kind,
    }
}

pub use Failure::{Misconfigured, Unreachable};

/// The checks run so far, printed as they come.
pub struct Report {
    json: bool,
    lines: Vec<Value>,
    first_failure: Option<Failure>,
}

impl Report {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            lines: Vec::new(),
            first_failure: None,
        }
    }

    pub fn record(&mut self, name: &str, verdict: Verdict) -> bool {
        let passed = matches!(verdict, Verdict::Pass(_));
        let (mark, said, fix) = match verdict {
            Verdict::Pass(said) => ("✓", said, None),
            Verdict::Fail { said, fix, kind } => {
                self.first_failure.get_or_insert(kind);
                ("✗", said, Some(fix))
            }
            Verdict::Skipped(needs) => ("-", format!("skipped: needs {needs}"), None),
        };
        if !self.json {
            println!("{mark} {name}: {said}");
            if let Some(fix) = &fix {
                println!("    → {fix}");
            }
        }
        self.lines
            .push(json!({ "check": name, "mark": mark, "said": said, "fix": fix }));
        passed
    }
}

pub fn finish(report: Report) -> anyhow::Result<ExitCode> {
    if report.json {
        let ok = report.first_failure.is_none();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "ok": ok, "checks": report.lines }))?
        );
    }
    Ok(match report.first_failure {
        None => ExitCode::SUCCESS,
        Some(Misconfigured) => ExitCode::from(EXIT_REFUSED),
        Some(Unreachable) => ExitCode::from(EXIT_UNREACHABLE),
    })
}
