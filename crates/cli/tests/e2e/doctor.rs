//! `playbook doctor` against the real Keycloak: all ✓ on a healthy setup, and each classic
//! mistake provoked for real, asserted line by line.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use playbook_certs::{Authority, CLIENT_CN, Leaf, LeafSpec};
use playbook_keycloak::{AuthMethod, READONLY_ROLE, TokenBinding};
use playbook_testkit::{TestRealm, certs, run};

use super::{playbook_with, stderr};

/// Runs doctor (off the async runtime) for `realm`, the resource server at `api` (if any) and
/// the certificates in `certs_dir`; returns the output and each check's mark.
async fn doctor(
    realm: TestRealm,
    certs_dir: &Path,
    api: Option<String>,
    issuer: Option<String>,
) -> (Output, BTreeMap<String, String>) {
    doctor_with(realm, certs_dir, api, issuer, &[]).await
}

/// [`doctor`] with more flags (`--auth`, `--bind`).
async fn doctor_with(
    realm: TestRealm,
    certs_dir: &Path,
    api: Option<String>,
    issuer: Option<String>,
    flags: &[&str],
) -> (Output, BTreeMap<String, String>) {
    let certs_dir = certs_dir.to_owned();
    let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        run_doctor(
            &realm,
            &certs_dir,
            api.as_deref(),
            issuer.as_deref(),
            &flags,
        )
    })
    .await
    .unwrap()
}

fn run_doctor(
    realm: &TestRealm,
    certs_dir: &Path,
    api: Option<&str>,
    issuer: Option<&str>,
    flags: &[String],
) -> (Output, BTreeMap<String, String>) {
    let admin = realm.keycloak.admin_credentials();
    let issuer = issuer.map_or_else(|| realm.issuer().to_string(), String::from);
    let mut args = vec!["doctor", "--realm", &realm.name, "--issuer", &issuer];
    if let Some(api) = api {
        args.extend(["--api-url", api]);
    }
    args.extend(flags.iter().map(String::as_str));
    let output = playbook_with(
        certs_dir,
        &args,
        &[
            ("PLAYBOOK_KEYCLOAK_URL", realm.keycloak.base_url().as_str()),
            ("PLAYBOOK_KEYCLOAK_ADMIN_USER", &admin.username),
            ("PLAYBOOK_KEYCLOAK_ADMIN_PASSWORD", admin.password.expose()),
        ],
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let marks = text
        .lines()
        .filter_map(|line| {
            let (mark, rest) = line.split_once(' ')?;
            let (name, _) = rest.split_once(": ")?;
            ["✓", "✗", "-"]
                .contains(&mark)
                .then(|| (name.to_owned(), mark.to_owned()))
        })
        .collect();
    (output, marks)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The run's certificates with the client leaf replaced, in a directory of their own.
fn certs_with_client(client: &Leaf) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(certs().files.dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let files = playbook_certs::Files::new(dir.path());
    std::fs::write(files.client_cert(), client.cert_pem()).unwrap();
    playbook_certs::write_private(&files.client_key(), client.key_pem().as_bytes()).unwrap();
    dir
}

fn our_ca() -> Authority {
    certs().authority().unwrap()
}

fn assert_marks(marks: &BTreeMap<String, String>, expected: &[(&str, &str)], output: &Output) {
    for (name, mark) in expected {
        assert_eq!(
            marks.get(*name).map(String::as_str),
            Some(*mark),
            "{name}:\n{}{}",
            stdout(output),
            stderr(output)
        );
    }
}

#[test]
fn a_healthy_setup_passes_every_check() {
    run(async {
        let realm = TestRealm::new().await;
        realm.grant_readonly_role().await;
        let server = realm.resource_server().await;
        let api = server.base_url().to_string();
        let dir = certs().files.dir().to_owned();
        let (output, marks) = doctor(realm, &dir, Some(api), None).await;
        assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        assert_eq!(marks.len(), 12, "{}", stdout(&output));
        assert!(marks.values().all(|m| m == "✓"), "{}", stdout(&output));
        server.shutdown().await;
    })
}

#[test]
fn an_issuer_on_another_port_is_named_with_the_one_tokens_carry() {
    run(async {
        let realm = TestRealm::new().await;
        realm.grant_readonly_role().await;
        let dir = certs().files.dir().to_owned();
        let wrong = format!("https://localhost:1/realms/{}", realm.name);
        let (output, marks) = doctor(realm, &dir, None, Some(wrong)).await;
        assert_eq!(output.status.code(), Some(3));
        assert_marks(
            &marks,
            &[("issuer", "✗"), ("token", "✓"), ("role", "✓")],
            &output,
        );
        assert!(
            stdout(&output).contains("start the resource server with --issuer https://localhost:")
        );
    })
}

#[test]
fn a_role_never_assigned_is_found_and_the_api_says_403() {
    run(async {
        let realm = TestRealm::new().await;
        let server = realm.resource_server().await;
        let api = server.base_url().to_string();
        let dir = certs().files.dir().to_owned();
        let (output, marks) = doctor(realm, &dir, Some(api), None).await;
        assert_eq!(output.status.code(), Some(3));
        assert_marks(
            &marks,
            &[("role", "✗"), ("resource server", "✗"), ("token", "✓")],
            &output,
        );
        assert!(stdout(&output).contains("run `cargo playbook client` (step 2 assigns it)"));
        assert!(stdout(&output).contains("403"));
        server.shutdown().await;
    })
}

#[test]
fn a_client_certificate_from_another_ca_stops_at_the_certificates() {
    run(async {
        let realm = TestRealm::new().await;
        let stranger = Authority::generate()
            .unwrap()
            .issue(&LeafSpec::client(CLIENT_CN))
            .unwrap();
        let dir = certs_with_client(&stranger);
        let path = dir.path().to_owned();
        let (output, marks) = doctor(realm, &path, None, None).await;
        assert_eq!(output.status.code(), Some(3));
        assert_marks(
            &marks,
            &[("certificates", "✗"), ("Keycloak", "-"), ("token", "-")],
            &output,
        );
        assert!(stdout(&output).contains("is not signed by the CA"));
        assert!(stdout(&output).contains("skipped: needs certificates"));
    })
}

#[test]
fn a_client_certificate_with_another_cn_fails_subject_and_token() {
    run(async {
        let realm = TestRealm::new().await;
        let intruder = our_ca()
            .issue(&LeafSpec::client("intruder.example"))
            .unwrap();
        let dir = certs_with_client(&intruder);
        let path = dir.path().to_owned();
        let (output, marks) = doctor(realm, &path, None, None).await;
        assert_eq!(output.status.code(), Some(3));
        assert_marks(
            &marks,
            &[
                ("certificates", "✗"),
                ("Keycloak", "✓"),
                ("client subject", "✗"),
                ("token", "✗"),
                ("issuer", "-"),
            ],
            &output,
        );
        assert!(stdout(&output).contains("CN=intruder.example does not match"));
    })
}

#[test]
fn a_taken_api_port_is_reported_as_taken() {
    run(async {
        let realm = TestRealm::new().await;
        realm.grant_readonly_role().await;
        // Something that is no resource server: it accepts connections and closes them.
        let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = squatter.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for connection in squatter.incoming() {
                drop(connection);
            }
        });
        let api = format!("https://localhost:{port}/");
        let dir = certs().files.dir().to_owned();
        let (output, marks) = doctor(realm, &dir, Some(api), None).await;
        assert_eq!(output.status.code(), Some(3));
        assert_marks(&marks, &[("ports", "✗"), ("token", "✓")], &output);
        assert!(stdout(&output).contains(&format!("port {port} is taken")));
    })
}

#[test]
fn a_client_certificate_about_to_expire_is_reported() {
    run(async {
        let realm = TestRealm::new().await;
        let expiring = our_ca()
            .issue(&LeafSpec::client(CLIENT_CN).valid_for(Duration::from_secs(3 * 86_400)))
            .unwrap();
        let dir = certs_with_client(&expiring);
        let path = dir.path().to_owned();
        let (output, marks) = doctor(realm, &path, None, None).await;
        assert_eq!(output.status.code(), Some(3));
        assert_marks(&marks, &[("certificates", "✗")], &output);
        assert!(stdout(&output).contains("in less than 7 days"));
        assert!(stdout(&output).contains("cargo playbook certs --force"));
    })
}

/// `doctor --auth METHOD` checks that method's own setup: before `client --auth` set it up, it
/// says so and asks for no token; after, every check passes, bound or not as asked; a binding
/// Keycloak was not set up for is named with the command that sets it.
#[test]
fn each_method_is_checked_with_what_it_needs() {
    run(async {
        let realm = TestRealm::new().await;
        let dir = certs_with_client(&certs().client);
        let flags = |method: AuthMethod| ["--auth", method.name()];
        let (output, marks) = doctor_with(
            realm.clone(),
            dir.path(),
            None,
            None,
            &flags(AuthMethod::Secret),
        )
        .await;
        assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
        assert_marks(
            &marks,
            &[("client authentication", "✗"), ("token", "-")],
            &output,
        );
        assert!(
            stdout(&output).contains("`cargo playbook client --auth secret` sets it up"),
            "{}",
            stdout(&output)
        );

        let server = realm.resource_server().await;
        let api = server.base_url().to_string();
        let certs = playbook_certs::CertSet::load(playbook_certs::Files::new(dir.path())).unwrap();
        let provisioner = realm.provisioner();
        for method in [
            AuthMethod::SecretJwt,
            AuthMethod::PrivateKeyJwt,
            AuthMethod::Federated,
        ] {
            let (account, role) = provisioner
                .account_and_role(method.client_id(), READONLY_ROLE)
                .await
                .unwrap();
            provisioner.assign(&account, &role).await.unwrap();
            playbook_client::provision(&provisioner, method, TokenBinding::None, &certs)
                .await
                .unwrap();
            let (output, marks) = doctor_with(
                realm.clone(),
                dir.path(),
                Some(api.clone()),
                None,
                &flags(method),
            )
            .await;
            assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
            assert_eq!(marks.len(), 12, "{}", stdout(&output));
            assert!(marks.values().all(|m| m == "✓"), "{}", stdout(&output));
            assert!(stdout(&output).contains(method.oauth_name()));
        }
        let bound = ["--auth", "secret-jwt", "--bind", "certificate"];
        let (output, marks) = doctor_with(realm.clone(), dir.path(), None, None, &bound).await;
        assert_marks(&marks, &[("client authentication", "✗")], &output);
        assert!(
            stdout(&output).contains("--bind certificate` sets it"),
            "{}",
            stdout(&output)
        );
        server.shutdown().await;
    })
}
