//! `--stage` for the commands that tell a story (demo, lab): the live page, and a run paced by
//! the presenter's Next; and `--export`, the hand-outs of the run.

use std::path::PathBuf;

use playbook_stage::{Export, Stage};
use playbook_trace::{Run, Trace};

use crate::report::{Pace, Report};

#[derive(clap::Args, Debug, Clone)]
pub struct StageArgs {
    /// Draw the run live in a browser (http://127.0.0.1:<stage-port>/) and wait for Next
    /// there (Space, → or PageDown), or Enter here, before each step.
    #[arg(long)]
    pub stage: bool,

    #[command(flatten)]
    pub port: StageListenArgs,

    /// With --stage: run through without waiting for Next.
    #[arg(long, requires = "stage")]
    pub auto: bool,
}

/// Where the stage listens: `demo` and `lab` serve it there, `doctor --preflight` checks it is
/// free.
#[derive(clap::Args, Debug, Clone)]
pub struct StageListenArgs {
    /// Port of the stage page, on 127.0.0.1 only; 0 picks a free one.
    #[arg(long = "stage-port", env = "PLAYBOOK_STAGE_PORT", default_value_t = playbook_stage::DEFAULT_PORT)]
    pub stage_port: u16,

    /// The stage's audience page for the room, on this address (e.g. 0.0.0.0:8089 for the
    /// classroom network): read-only, it follows the run live and cannot step it. Served with
    /// --stage; `doctor --preflight` checks it can be.
    #[arg(long = "stage-listen", env = STAGE_LISTEN_ENV, value_name = "ADDR")]
    pub audience: Option<std::net::SocketAddr>,
}

/// The environment's way to ask for the audience page: a shell that keeps it set still runs
/// commands without `--stage`, where it does not apply.
const STAGE_LISTEN_ENV: &str = "PLAYBOOK_STAGE_LISTEN";

impl StageArgs {
    /// The stage, if asked for, and the pace it sets (else `otherwise`).
    pub async fn open(
        &self,
        trace: &Trace,
        otherwise: Pace,
    ) -> anyhow::Result<(Pace, Option<Stage>)> {
        if !self.stage {
            anyhow::ensure!(
                self.port.audience.is_none() || std::env::var_os(STAGE_LISTEN_ENV).is_some(),
                "--stage-listen serves the stage's audience page: add --stage"
            );
            return Ok((otherwise, None));
        }
        let (pace, next) = if self.auto {
            (Pace::Continuous, tokio::sync::mpsc::unbounded_channel().0)
        } else {
            Pace::on_next("Enter here or Next on the stage")
        };
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], self.port.stage_port));
        let stage = Stage::start(listen, self.port.audience, trace.clone(), next).await?;
        eprintln!(
            "stage: {} (open it in a browser; T switches the theme, F fits the whole run)",
            stage.url()
        );
        if let (Some(url), Some(listen)) = (stage.audience_url(), self.port.audience) {
            eprintln!("audience: {url} (read-only; the room follows the run there)");
            eprint!("{}", playbook_stage::audience::qr_terminal(url));
            if playbook_stage::audience::exposed(listen) {
                eprintln!(
                    "warning: the audience page on {listen} shows the run to anyone who can reach this machine: its arrows, decoded token claims and certificate thumbprints (never a token, secret or password)"
                );
            }
        }
        Ok((pace, Some(stage)))
    }
}

/// Keeps the finished run on screen (and its downloads) until Ctrl-C.
pub async fn linger(stage: Option<Stage>) {
    if let Some(stage) = stage {
        eprintln!(
            "The stage stays open at {} for the diagram and its downloads; Ctrl-C closes it.",
            stage.url()
        );
        crate::cmd::shutdown_signal().await;
    }
}

/// `--export`: hand-outs of the run, written when it ends.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Write hand-outs of the run when it ends: FILE.html (one file that opens offline and
    /// prints), FILE.svg or FILE.mmd (mermaid); or a DIR (a name without those extensions) for
    /// all three, where `lab` writes each scenario apart (NAME.html, ...). May be given several
    /// times.
    #[arg(long = "export", value_name = "FILE|DIR", value_parser = export_target)]
    pub export: Vec<ExportTarget>,
}

/// Where one `--export` goes.
#[derive(Debug, Clone)]
pub enum ExportTarget {
    /// One file, its format from its extension: the whole run.
    File(PathBuf),
    /// A directory: every part of the run in every format.
    Dir(PathBuf),
}

/// A path whose extension names a format, or a directory (one that exists, a name ending in
/// `/`, or a name without an extension); checked before anything starts.
fn export_target(value: &str) -> Result<ExportTarget, String> {
    let path = PathBuf::from(value);
    if path.is_dir() || value.ends_with(std::path::MAIN_SEPARATOR) {
        return Ok(ExportTarget::Dir(path));
    }
    match Export::for_path(&path) {
        Ok(_) => Ok(ExportTarget::File(path)),
        Err(_) if path.extension().is_none() => Ok(ExportTarget::Dir(path)),
        Err(error) => Err(format!("{error}, or name a directory (ending in /)")),
    }
}

impl ExportArgs {
    /// Writes every hand-out: a file gets `whole`, a directory gets each of `parts` (a name for
    /// its files, and its run) in every format. All are attempted even if one fails.
    pub fn write(
        &self,
        whole: &Run,
        parts: &[(&str, Run)],
        report: &mut Report,
    ) -> anyhow::Result<()> {
        let mut files: Vec<(PathBuf, &Run)> = Vec::new();
        let mut failed = None;
        for target in &self.export {
            match target {
                ExportTarget::File(path) => files.push((path.clone(), whole)),
                ExportTarget::Dir(dir) => match std::fs::create_dir_all(dir) {
                    Ok(()) => {
                        for (name, run) in parts {
                            for (_, extension) in Export::ALL {
                                files.push((dir.join(format!("{name}.{extension}")), run));
                            }
                        }
                    }
                    Err(error) => {
                        failed = Some(anyhow::anyhow!("cannot create {}: {error}", dir.display()))
                    }
                },
            }
        }
        for (path, run) in files {
            match Export::write(&path, run) {
                Ok(()) => report.note(&format!("wrote {}", path.display())),
                Err(error) => failed = Some(error.into()),
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// Notes on the run which Keycloak it runs against, for its hand-outs: the version only of
/// one this command started (an external one's is its own business).
///
/// Behind the proxy, requests to Keycloak's address are drawn through the proxy's lifeline (the
/// resource server's proxy registers itself when it starts).
pub fn note_keycloak(
    trace: &Trace,
    keycloak: &playbook_provider::Keycloak,
    topology: playbook_provider::Topology,
) {
    let which = match keycloak.is_owned() {
        true => format!(
            "{} ({})",
            playbook_provider::KEYCLOAK_VERSION,
            keycloak.backend_name()
        ),
        false => format!("at {}", keycloak.base_url()),
    };
    trace.context("Keycloak", &which);
    match topology {
        playbook_provider::Topology::Direct => {}
        playbook_provider::Topology::Proxy => {
            trace.through_proxy(keycloak.base_url().as_str());
            trace.context("topology", "behind a reverse proxy (HAProxy)");
        }
        playbook_provider::Topology::Cluster => {
            trace.through_proxy(keycloak.base_url().as_str());
            trace.context(
                "topology",
                "a load balancer (HAProxy) in front of 2 Keycloak nodes on PostgreSQL and 2 resource-server replicas",
            );
        }
    }
}

/// One line naming the proxy in front of `part` (balancing its `replicas` when there are
/// several) and its generated configuration.
pub fn note_proxy(
    report: &mut Report,
    part: &str,
    replicas: usize,
    proxy: Option<&playbook_provider::ReverseProxy>,
) {
    let Some(proxy) = proxy else {
        return;
    };
    let role = match replicas {
        0 | 1 => format!("in front of {part}"),
        n => format!("balancing {n} replicas of {part}"),
    };
    report.note(&format!(
        "{} {role} at {} (TLS ends there; configuration: {})",
        playbook_provider::proxy::PROGRAM,
        proxy.url(),
        proxy.config_path().display()
    ));
}

/// The terminal's pace: Enter before each step with `--step`, or before each answer with
/// `--predict` (never with `--json`, which is for scripts).
pub fn terminal_pace(step: bool, predict: bool, json: bool) -> Pace {
    if (step || predict) && !json {
        Pace::on_next("Enter").0
    } else {
        Pace::Continuous
    }
}
