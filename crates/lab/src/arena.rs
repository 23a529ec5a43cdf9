//! Where a scenario runs: a realm of its own, the clients and resource servers it needs, all
//! recording into the lab's trace, and the realm deleted afterwards whatever happened.

use std::sync::Arc;

use playbook_certs::{CertSet, Leaf, LeafSpec};
use playbook_client::{ClientError, ResourceApi, TokenClient, TokenClientConfig};
use playbook_keycloak::{Admin, KeycloakError, Provisioner};
use playbook_keycloak::{CLIENT_ID, READONLY_ROLE, RealmTemplate, RealmUrl};
use playbook_resource_server::server::{self, RunningServer, ServerConfig, ServerError};
use playbook_trace::Trace;

use crate::{Answer, Attempt, Expect, Scenario, Verdict};

/// Why a scenario could not be run at all (not: an attack that succeeded, which is a verdict
/// that did not hold).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Keycloak(#[from] KeycloakError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    ResourceServer(#[from] ServerError),
    #[error(transparent)]
    Certs(#[from] playbook_certs::CertsError),
    #[error("{0}")]
    Setup(String),
}

/// The lab: a Keycloak (through its Admin API session), the playbook's certificates, and the
/// trace every scenario records into.
pub struct Lab<'a> {
    admin: &'a Admin,
    certs: &'a CertSet,
    trace: Trace,
    api_port: u16,
}

impl<'a> Lab<'a> {
    /// `admin` records into `trace` too when its role and key changes should show as arrows.
    pub fn new(admin: &'a Admin, certs: &'a CertSet, trace: Trace) -> Self {
        Self {
            admin,
            certs,
            trace,
            api_port: 0,
        }
    }

    /// The port of each scenario's main resource server (0, the default: a free one).
    pub fn api_port(mut self, port: u16) -> Self {
        self.api_port = port;
        self
    }

    /// Runs one scenario in a realm of its own, deleted afterwards. Its exchanges go to the
    /// trace (the realm's import and deletion do not); steps and lessons are the caller's.
    pub async fn run(&self, scenario: &'static Scenario) -> Result<Verdict, LabError> {
        let arena = Arena::open(self, scenario).await?;
        let attempts = crate::scenarios::run(scenario.name, &arena).await;
        arena.close().await;
        Ok(Verdict {
            scenario,
            attempts: attempts?,
        })
    }
}

/// One scenario's realm and the parties in it.
pub(crate) struct Arena<'a> {
    pub lab: &'a Lab<'a>,
    pub realm: String,
    pub urls: RealmUrl,
    /// The tutorial's client, holding the read-only role: the victim of the attacks.
    pub victim: Arc<TokenClient>,
}

impl<'a> Arena<'a> {
    async fn open(lab: &'a Lab<'a>, scenario: &Scenario) -> Result<Self, LabError> {
        let _housekeeping = lab.trace.quiet();
        let realm = format!("lab-{}-{:06x}", scenario.name, rand::random::<u32>() >> 8);
        lab.admin
            .create_realm(&RealmTemplate::bundled().named(&realm))
            .await?;
        let urls = lab.admin.keycloak().realm(&realm);
        let arena = Self {
            victim: Self::token_client(
                lab,
                TokenClientConfig::playbook(urls.token(), &lab.certs.ca_pem, &lab.certs.client),
            )?,
            lab,
            realm,
            urls,
        };
        let provisioner = arena.provisioner();
        let (account, role) = provisioner
            .account_and_role(CLIENT_ID, READONLY_ROLE)
            .await?;
        provisioner.assign(&account, &role).await?;
        Ok(arena)
    }

    async fn close(self) {
        let _housekeeping = self.lab.trace.quiet();
        if let Err(error) = self.lab.admin.delete_realm(&self.realm).await {
            tracing::warn!(realm = %self.realm, %error, "could not delete the lab's realm");
        }
    }

    fn token_client(
        lab: &Lab,
        mut config: TokenClientConfig,
    ) -> Result<Arc<TokenClient>, LabError> {
        config.trace = lab.trace.clone();
        Ok(Arc::new(TokenClient::new(config)?))
    }

    pub fn admin(&self) -> &Admin {
        self.lab.admin
    }

    pub fn certs(&self) -> &CertSet {
        self.lab.certs
    }

    pub fn provisioner(&self) -> Provisioner<'_> {
        Provisioner::new(self.lab.admin, &self.realm)
    }

    /// A token client of `client_id` presenting `identity`, asking for `scope`.
    pub fn client(
        &self,
        client_id: &str,
        identity: &Leaf,
        scope: &str,
    ) -> Result<Arc<TokenClient>, LabError> {
        let mut config =
            TokenClientConfig::playbook(self.urls.token(), &self.lab.certs.ca_pem, identity);
        config.client_id = client_id.into();
        config.scope = scope.into();
        Self::token_client(self.lab, config)
    }

    /// A new client certificate from the playbook's CA (held in memory only).
    pub fn issue(&self, spec: &LeafSpec) -> Result<Leaf, LabError> {
        Ok(self.lab.certs.authority()?.issue(spec)?)
    }

    /// The scenario's resource server for this realm (on the lab's API port), adjusted.
    pub async fn resource_server(
        &self,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<RunningServer, LabError> {
        self.resource_server_on(self.lab.api_port, adjust).await
    }

    /// A second resource server next to the main one, on a free port.
    pub async fn another_resource_server(
        &self,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<RunningServer, LabError> {
        self.resource_server_on(0, adjust).await
    }

    async fn resource_server_on(
        &self,
        port: u16,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<RunningServer, LabError> {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut config = ServerConfig::new(self.urls.issuer().clone(), listen, self.lab.certs);
        config.trace = self.lab.trace.clone();
        adjust(&mut config);
        Ok(server::start(config).await?)
    }

    /// `GET /api/users` with `token`, over a connection presenting `caller`'s certificate.
    pub async fn call(
        &self,
        server: &RunningServer,
        caller: &Arc<TokenClient>,
        token: &str,
        tried: impl Into<String>,
        expected: Expect,
    ) -> Result<Attempt, LabError> {
        let answer = ResourceApi::new(server.base_url(), caller.clone())
            .get_with(playbook_resource_server::api::LIST_USERS.path, token)
            .await?;
        Ok(Attempt {
            tried: tried.into(),
            expected,
            answer: Answer::Status {
                status: answer.status,
                www_authenticate: answer.www_authenticate,
            },
        })
    }
}
