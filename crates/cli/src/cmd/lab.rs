//! `playbook lab`: the attack lab. Each scenario runs for real against Keycloak and the resource
//! server, shows its arrows, and ends with what the defence answered and where that is specified.

use std::path::Path;
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use playbook_certs::CertSet;
use playbook_lab::{Lab, SCENARIOS, Scenario, Verdict};
use playbook_trace::Trace;
use serde_json::{Value, json};

use crate::args::{ApiPortArgs, ProfileArgs, StartArgs, TopologyArgs};
use crate::presenter::{ExportArgs, StageArgs};
use crate::report::Report;
use playbook_provider::Topology;

#[derive(clap::Args)]
pub struct Args {
    /// The scenario to run; with neither it nor --all, the list of scenarios.
    #[arg(value_parser = PossibleValuesParser::new(SCENARIOS.map(|s| s.name)))]
    name: Option<String>,

    /// Run every scenario, each in its own realm.
    #[arg(long, conflicts_with = "name")]
    all: bool,

    #[command(flatten)]
    start: StartArgs,

    #[command(flatten)]
    api: ApiPortArgs,

    #[command(flatten)]
    topology: TopologyArgs,

    #[command(flatten)]
    profile: ProfileArgs,

    /// Behind the proxy, Keycloak's own address past its proxy, where the lab's intruder sends
    /// a forged certificate header [default: known when the lab starts Keycloak itself;
    /// `playbook provider --topology proxy` prints it].
    #[arg(long, env = "PLAYBOOK_KEYCLOAK_DIRECT_URL")]
    keycloak_direct_url: Option<url::Url>,

    #[command(flatten)]
    stage: StageArgs,

    #[command(flatten)]
    export: ExportArgs,

    /// Print one JSON document instead of the arrows (for scripts).
    #[arg(long)]
    json: bool,

    /// Before each scenario, ask the room how the defence will answer the attack, and reveal
    /// it on Next (Enter here, or the stage's Next).
    #[arg(long, conflicts_with = "auto")]
    predict: bool,
}

/// What the room may predict of an attack: the answers the defences give, or none at all.
const PREDICTED_ANSWERS: [&str; 4] = [
    "it works: a token, or 200",
    "401 invalid_token at the API",
    "403 insufficient_scope at the API",
    "no token: Keycloak refuses",
];

pub async fn run(certs_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let topology = args.topology.topology;
    let behind_proxy = topology != Topology::Direct;
    let fapi2 = args.profile.fapi2();
    if fapi2 && behind_proxy {
        anyhow::bail!(
            "--profile fapi2 runs the lab in the direct topology: the proxy's and the cluster's scenarios are about the topology, not the profile"
        );
    }
    let runs = |s: &&Scenario| s.needs.met_by(topology) && (!fapi2 || s.fapi2.binding().is_some());
    let chosen: Vec<&'static Scenario> = match (&args.name, args.all) {
        (Some(name), _) => SCENARIOS.iter().filter(|s| s.name == name).collect(),
        // Scenarios that need a topology run in it; the others run in every one. Under FAPI
        // 2.0, those the profile forbids are left out.
        (None, true) => SCENARIOS.iter().filter(runs).collect(),
        (None, false) => {
            list(args.json);
            return Ok(ExitCode::SUCCESS);
        }
    };
    if let Some(scenario) = chosen.iter().find(|s| !s.needs.met_by(topology)) {
        anyhow::bail!(playbook_lab::LabError::NeedsTopology(
            scenario.name,
            scenario.needs.flag()
        ));
    }
    if let (true, Some(scenario)) = (fapi2, chosen.first())
        && let playbook_lab::UnderFapi2::Forbidden(why) = scenario.fapi2
    {
        anyhow::bail!(playbook_lab::LabError::ForbiddenByFapi2(scenario.name, why));
    }
    if args.all && !args.json {
        let skipped: Vec<String> = (SCENARIOS.iter().filter(|s| !runs(s)))
            .map(|s| match (s.needs.met_by(topology), s.fapi2) {
                (false, _) => format!("{} ({})", s.name, s.needs.flag()),
                (true, playbook_lab::UnderFapi2::Forbidden(why)) => {
                    format!("{} (under FAPI 2.0: {why})", s.name)
                }
                (true, _) => s.name.to_owned(),
            })
            .collect();
        if !skipped.is_empty() {
            eprintln!("not run here: {}", skipped.join("; "));
        }
    }
    let trace = Trace::new();
    trace.title(&match chosen.as_slice() {
        [one] => scenario_title(one),
        all => format!("The attack lab: {} scenarios", all.len()),
    });
    let pace = crate::presenter::terminal_pace(false, args.predict, args.json);
    let (pace, stage) = args.stage.open(&trace, pace).await?;
    let mut report = Report::new(args.json, trace.clone()).paced(pace);
    let (certs, _) = CertSet::ensure(certs_dir, false)?;
    let api_port = args.api.resolve()?;
    let keycloak = args
        .start
        .attach_or_start(certs_dir, &certs, topology)
        .await?;
    crate::presenter::note_keycloak(&trace, &keycloak, topology);
    let keycloak_itself = match (&keycloak.proxy(), &args.keycloak_direct_url) {
        (_, Some(given)) => Some(given.clone()),
        (Some(_), None) => Some(keycloak.direct_url().clone()),
        (None, None) => None,
    };
    if behind_proxy && keycloak_itself.is_none() {
        let url = keycloak.base_url().clone();
        keycloak.stop().await;
        anyhow::bail!(
            "the lab behind the proxy attacks Keycloak's own address too, past its proxy, and the Keycloak at {url} was started elsewhere: pass --keycloak-direct-url (`playbook provider --topology proxy` prints it as \"in front of Keycloak's own …\")"
        );
    }
    let keycloak_itself = keycloak_itself.filter(|_| behind_proxy);
    if topology == Topology::Cluster && keycloak.nodes().is_empty() {
        keycloak.stop().await;
        anyhow::bail!(
            "the lab's cluster scenarios kill a Keycloak node, so the lab starts the cluster itself: drop --keycloak-url"
        );
    }
    let parts = Parts {
        keycloak: &keycloak,
        keycloak_itself,
        certs: &certs,
        api_port,
        topology,
        fapi2,
    };
    let outcome = tokio::select! {
        outcome = lab(parts, &chosen, args.predict, &trace, &mut report) => outcome,
        _ = crate::cmd::shutdown_signal() => Err(anyhow::anyhow!(crate::cmd::demo::interrupted(&keycloak))),
    };
    keycloak.stop().await;
    let verdicts = match outcome {
        Ok(verdicts) => verdicts,
        Err(error) => {
            // What ran before the failure is still worth handing out.
            trace.finish(false);
            let _ = args.export.write(&trace.snapshot(), &[], &mut report);
            return Err(error);
        }
    };
    let held = verdicts.iter().filter(|v| v.verdict.held()).count();
    trace.finish(held == verdicts.len());
    // Each scenario's hand-out is the run from its step to the next scenario's.
    let run = trace.snapshot();
    let ends = (verdicts.iter().skip(1).map(|v| v.first_event)).chain([run.events.len()]);
    let parts: Vec<(&str, playbook_trace::Run)> = (verdicts.iter().zip(ends))
        .map(|(v, end)| {
            (
                v.verdict.scenario.name,
                run.part(
                    v.first_event..end,
                    v.verdict.held(),
                    &scenario_title(v.verdict.scenario),
                ),
            )
        })
        .collect();
    let exported = args.export.write(&run, &parts, &mut report);
    let verdicts: Vec<Verdict> = verdicts.into_iter().map(|v| v.verdict).collect();
    report.finish(json!({
        "held": held == verdicts.len(),
        "scenarios": verdicts.iter().map(verdict_json).collect::<Vec<_>>(),
    }));
    crate::presenter::linger(stage).await;
    exported?;
    if held < verdicts.len() {
        let failed: Vec<&str> = verdicts
            .iter()
            .filter(|v| !v.held())
            .map(|v| v.scenario.name)
            .collect();
        anyhow::bail!(
            "{} of {} scenarios found a defence that did not hold: {}",
            failed.len(),
            verdicts.len(),
            failed.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A scenario's verdict, and where its events begin in the run.
struct Ran {
    verdict: Verdict,
    first_event: usize,
}

/// A scenario's hand-out title.
fn scenario_title(scenario: &Scenario) -> String {
    format!("The attack lab: {}: {}", scenario.name, scenario.title)
}

/// What the lab runs against.
struct Parts<'a> {
    keycloak: &'a playbook_provider::Keycloak,
    /// Behind the proxy: Keycloak's own address, past its proxy.
    keycloak_itself: Option<url::Url>,
    certs: &'a CertSet,
    api_port: u16,
    topology: Topology,
    fapi2: bool,
}

async fn lab(
    parts: Parts<'_>,
    chosen: &[&'static Scenario],
    predict: bool,
    trace: &playbook_trace::Trace,
    report: &mut Report,
) -> anyhow::Result<Vec<Ran>> {
    let Parts {
        keycloak,
        keycloak_itself,
        certs,
        api_port,
        topology,
        fapi2,
    } = parts;
    let admin = keycloak.admin()?.traced(trace.clone());
    let mut lab = Lab::new(&admin, certs, trace.clone()).api_port(api_port);
    if fapi2 {
        lab = lab.under_fapi2();
    }
    let kill = |node: usize| keycloak.kill_node(node);
    let nodes_up = || {
        keycloak
            .proxy()
            .map(|balancer| balancer.replicas_up())
            .unwrap_or_default()
    };
    match (topology, keycloak_itself) {
        (Topology::Cluster, Some(keycloak_itself)) => {
            let control = playbook_lab::ClusterControl {
                kill_keycloak_node: &kill,
                keycloak_nodes_up: &nodes_up,
            };
            lab = lab.in_cluster(keycloak_itself, control);
        }
        (_, Some(keycloak_itself)) => lab = lab.behind_proxy(keycloak_itself),
        (_, None) => {}
    }
    let mut verdicts = Vec::new();
    for scenario in chosen {
        let first_event = trace.snapshot().events.len();
        report
            .step(&format!("Lab {}: {}", scenario.name, scenario.title))
            .await;
        if predict {
            let prompt = format!("{}: how will the defence answer?", scenario.title);
            report.predict(&prompt, &PREDICTED_ANSWERS).await;
        }
        let verdict = lab.run(scenario).await?;
        for attempt in &verdict.attempts {
            report.verdict(
                attempt.held(),
                &format!(
                    "{}: {} → {}",
                    attempt.outcome(),
                    attempt.tried,
                    attempt.answered()
                ),
            );
        }
        report.lesson(&format!("{} ({})", scenario.lesson, scenario.rfc));
        verdicts.push(Ran {
            verdict,
            first_event,
        });
    }
    Ok(verdicts)
}

fn list(json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&SCENARIOS).expect("scenarios serialize")
        );
        return;
    }
    println!("The attack lab: `cargo playbook lab NAME` runs one, `--all` runs every one.\n");
    let width = SCENARIOS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for scenario in &SCENARIOS {
        let needs = match scenario.needs.flag() {
            "" => String::new(),
            flag => format!(" [{flag}]"),
        };
        println!(
            "  {:<width$} {} ({}){needs}",
            scenario.name, scenario.title, scenario.rfc
        );
    }
}

fn verdict_json(verdict: &Verdict) -> Value {
    let s = verdict.scenario;
    json!({
        "name": s.name, "title": s.title, "rfc": s.rfc, "lesson": s.lesson,
        "held": verdict.held(),
        "attempts": verdict.attempts.iter().map(|a| json!({
            "tried": a.tried, "expected": a.expected, "answer": a.answer, "held": a.held(),
            "outcome": a.outcome(),
        })).collect::<Vec<_>>(),
    })
}
