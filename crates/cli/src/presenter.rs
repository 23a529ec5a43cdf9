//! `--stage` for the commands that tell a story (demo, lab): the live page, and a run paced by
//! the presenter's Next.

use playbook_stage::Stage;
use playbook_trace::Trace;

use crate::report::Pace;

#[derive(clap::Args, Debug, Clone)]
pub struct StageArgs {
    /// Draw the run live in a browser (http://127.0.0.1:<stage-port>/) and wait for Next
    /// there (Space, → or PageDown), or Enter here, before each step.
    #[arg(long)]
    pub stage: bool,

    /// Port of the stage page, on 127.0.0.1 only; 0 picks a free one.
    #[arg(long = "stage-port", env = "PLAYBOOK_STAGE_PORT", default_value_t = playbook_stage::DEFAULT_PORT)]
    pub stage_port: u16,

    /// With --stage: run through without waiting for Next.
    #[arg(long, requires = "stage")]
    pub auto: bool,
}

impl StageArgs {
    /// The stage, if asked for, and the pace it sets (else `otherwise`).
    pub async fn open(
        &self,
        trace: &Trace,
        otherwise: Pace,
    ) -> anyhow::Result<(Pace, Option<Stage>)> {
        if !self.stage {
            return Ok((otherwise, None));
        }
        let (pace, next) = if self.auto {
            (Pace::Continuous, tokio::sync::mpsc::unbounded_channel().0)
        } else {
            Pace::on_next("Enter here or Next on the stage")
        };
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], self.stage_port));
        let stage = Stage::start(listen, trace.clone(), next).await?;
        eprintln!(
            "stage: {} (open it in a browser; T switches the theme, F fits the whole run)",
            stage.url()
        );
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
