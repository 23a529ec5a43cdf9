//! The executed docs: every shell block README.md, docs/tutorial.md, the client-authentication
//! and DPoP pages tell a learner to paste,
//! run as written (see `playbook_testkit::docs` for the few things the runner stands in for),
//! so a page whose commands or promised output drifted from the program turns the suite red, and
//! the test's name says which page.

use std::path::Path;

use playbook_testkit::docs::Session;

fn run_page(page: &str) {
    // Each page runs in a realm of its own and on ports of its own (see Session), so pages run
    // in parallel with each other and with every other test.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let markdown = std::fs::read_to_string(root.join(page)).expect("the page");
    let mut session = Session::new(page, Path::new(env!("CARGO_BIN_EXE_playbook")));
    let ran = session.run_page(&markdown);
    eprintln!("{page}: {ran} blocks ran");
    assert!(ran > 0, "{page} has no executed block");
}

#[test]
fn readme_every_block_a_learner_pastes_runs_as_shown() {
    run_page("README.md");
}

#[test]
fn tutorial_every_block_a_learner_pastes_runs_as_shown() {
    run_page("docs/tutorial.md");
}

#[test]
fn client_authentication_every_block_a_learner_pastes_runs_as_shown() {
    run_page("docs/client-authentication.md");
}

#[test]
fn dpop_every_block_a_learner_pastes_runs_as_shown() {
    run_page("docs/dpop.md");
}

#[test]
fn workload_identity_every_block_a_learner_pastes_runs_as_shown() {
    run_page("docs/workload-identity.md");
}

#[test]
fn production_every_block_a_learner_pastes_runs_as_shown_in_the_cluster() {
    let page = "docs/production.md";
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let markdown = std::fs::read_to_string(root.join(page)).expect("the page");
    let Some(mut session) = Session::in_cluster(page, Path::new(env!("CARGO_BIN_EXE_playbook")))
    else {
        return;
    };
    let ran = session.run_page(&markdown);
    assert!(ran > 0, "{page} has no executed block");
}

#[test]
fn proxy_every_block_a_learner_pastes_runs_as_shown_behind_the_proxy() {
    let page = "docs/proxy.md";
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let markdown = std::fs::read_to_string(root.join(page)).expect("the page");
    let Some(mut session) = Session::behind_proxy(page, Path::new(env!("CARGO_BIN_EXE_playbook")))
    else {
        return;
    };
    let ran = session.run_page(&markdown);
    assert!(ran > 0, "{page} has no executed block");
}
