//! Where a scenario runs: a realm of its own, the clients and resource servers it needs, all
//! recording into the lab's trace, and the realm removed afterwards whatever happened: deleted,
//! or renamed out of the way in a test run's Keycloak (`Admin::retire_realm`), which is thrown
//! away with it and leaves a spare realm in place.

use std::sync::{Arc, Mutex};

use playbook_certs::{CertSet, Leaf, LeafSpec};
use playbook_client::{
    ClientError, Credential, Presenting, ResourceApi, TokenClient, TokenClientConfig,
};
use playbook_dpop::ProofKey;
use playbook_keycloak::RealmUrl;
use playbook_keycloak::platform;
use playbook_keycloak::{Admin, AuthMethod, KeycloakError, Provisioner, RealmKey, TokenBinding};
use playbook_keycloak::{CLIENT_ID, INTRUDER_CLIENT_ID, READONLY_ROLE, RealmOrigin};
use playbook_proxy::Topology;
use playbook_resource_server::server::{ServerConfig, ServerError};
use playbook_trace::{Party, Trace};
use url::Url;

use crate::{Answer, Attempt, Expect, Scenario, ServedApi, Verdict};

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
    #[error("the scenario {0} needs what {1} sets up: run it with {1}")]
    NeedsTopology(&'static str, &'static str),
    #[error("the scenario {0} does not run under --profile fapi2: {1}")]
    ForbiddenByFapi2(&'static str, &'static str),
}

/// The PS256 key of every realm the lab puts under FAPI 2.0, made once per process when the first
/// needs it: Keycloak made one per realm otherwise (~8 % of a test run's Keycloak CPU,
/// profiled). Not a realm key: one key under two algorithms would give two JWKS entries one `kid`.
static FAPI2_KEY: std::sync::OnceLock<RealmKey> = std::sync::OnceLock::new();

/// The lab: a Keycloak (through its Admin API session), the playbook's certificates, and the
/// trace every scenario records into.
pub struct Lab<'a> {
    admin: &'a Admin,
    /// The signing key of every scenario's realm that is imported, made once for the run when
    /// the first is.
    realm_key: std::sync::OnceLock<RealmKey>,
    certs: &'a CertSet,
    trace: Trace,
    api_port: u16,
    /// Behind the proxy topology: Keycloak's own address, past its proxy (what an attacker who
    /// can reach Keycloak directly uses); `None` when the parts are reached directly.
    keycloak_past_proxy: Option<Url>,
    /// The cluster topology's controls; `None` elsewhere.
    cluster: Option<ClusterControl<'a>>,
    /// Every scenario's realm and resource server under the FAPI 2.0 Security Profile.
    fapi2: bool,
}

/// What the lab needs of a cluster beyond its addresses, from whoever started it: killing a
/// Keycloak node as a crashed machine goes, and the load balancer's verdict on each node.
pub struct ClusterControl<'a> {
    /// Kills node `index` (0-based) at once; blocking.
    pub kill_keycloak_node: &'a (dyn Fn(usize) + Sync),
    /// Whether the load balancer sends requests to each node now.
    pub keycloak_nodes_up: &'a (dyn Fn() -> Vec<bool> + Sync),
}

impl<'a> Lab<'a> {
    /// `admin` records into `trace` too when its role and key changes should show as arrows.
    pub fn new(admin: &'a Admin, certs: &'a CertSet, trace: Trace) -> Self {
        Self {
            admin,
            realm_key: std::sync::OnceLock::new(),
            certs,
            trace,
            api_port: 0,
            keycloak_past_proxy: None,
            cluster: None,
            fapi2: false,
        }
    }

    /// Every scenario under the FAPI 2.0 Security Profile: its realm signs PS256 under the
    /// scenario's FAPI 2.0 client profile ([`crate::UnderFapi2`]), and its resource server makes
    /// the profile's checks. Scenarios the profile forbids are refused.
    pub fn under_fapi2(mut self) -> Self {
        self.fapi2 = true;
        self
    }

    /// The parts run as the cluster topology: `admin`'s Keycloak is the load balancer's address,
    /// `keycloak_itself` the first node's own; every scenario's resource servers get two
    /// replicas behind a load balancer of their own.
    pub fn in_cluster(mut self, keycloak_itself: Url, control: ClusterControl<'a>) -> Self {
        self.keycloak_past_proxy = Some(keycloak_itself);
        self.cluster = Some(control);
        self
    }

    /// The parts stand behind the reverse proxy: `admin`'s Keycloak is the proxy's address, and
    /// `keycloak_itself` Keycloak's own; every scenario's resource servers get a proxy too.
    pub fn behind_proxy(mut self, keycloak_itself: Url) -> Self {
        self.keycloak_past_proxy = Some(keycloak_itself);
        self
    }

    fn realm_key(&self) -> &RealmKey {
        self.realm_key.get_or_init(RealmKey::generate)
    }

    fn topology(&self) -> Topology {
        match (&self.cluster, &self.keycloak_past_proxy) {
            (Some(_), _) => Topology::Cluster,
            (None, Some(_)) => Topology::Proxy,
            (None, None) => Topology::Direct,
        }
    }

    /// The port of each scenario's main resource server (0, the default: a free one).
    pub fn api_port(mut self, port: u16) -> Self {
        self.api_port = port;
        self
    }

    /// Runs one scenario in a realm of its own, removed afterwards (see [`RealmOrigin`]). Its
    /// exchanges go to the trace (the realm's import and removal do not); steps and lessons are
    /// the caller's.
    pub async fn run(&self, scenario: &'static Scenario) -> Result<Verdict, LabError> {
        if !scenario.needs.met_by(self.topology()) {
            return Err(LabError::NeedsTopology(
                scenario.name,
                scenario.needs.flag(),
            ));
        }
        if let (true, crate::UnderFapi2::Forbidden(why)) = (self.fapi2, scenario.fapi2) {
            return Err(LabError::ForbiddenByFapi2(scenario.name, why));
        }
        let arena = Arena::open(self, scenario).await?;
        let attempts = (scenario.run)(&arena).await;
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
    /// Every resource server the scenario started, stopped when the arena closes whatever
    /// the scenario returned.
    servers: Mutex<Vec<Arc<Server>>>,
    /// Under FAPI 2.0, the binding the realm's client profile makes every client use.
    fapi2_binding: Option<TokenBinding>,
    /// A spare's realms are left to the test run's Keycloak, thrown away with them.
    origin: RealmOrigin,
}

/// A resource server of the scenario (behind its proxy in the proxy topology) and the
/// lifeline it is drawn as.
pub(crate) struct Server {
    running: ServedApi,
    party: Party,
}

impl<'a> Arena<'a> {
    async fn open(lab: &'a Lab<'a>, scenario: &Scenario) -> Result<Self, LabError> {
        let _housekeeping = lab.trace.quiet();
        let realm = format!("lab-{}-{:06x}", scenario.name, rand::random::<u32>() >> 8);
        let origin = lab
            .admin
            .create_bundled_realm(&realm, || Some(lab.realm_key()))
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
            servers: Mutex::new(Vec::new()),
            origin,
            fapi2_binding: scenario.fapi2.binding().filter(|_| lab.fapi2),
        };
        let provisioner = arena.provisioner();
        let (account, role) = provisioner
            .account_and_role(CLIENT_ID, READONLY_ROLE)
            .await?;
        provisioner.assign(&account, &role).await?;
        if let Some(binding) = arena.fapi2_binding {
            provisioner
                .sign_for_fapi2(Some(FAPI2_KEY.get_or_init(RealmKey::generate)))
                .await?;
            provisioner.enforce_fapi2(binding).await?;
        }
        Ok(arena)
    }

    async fn close(self) {
        let servers = std::mem::take(&mut *self.servers.lock().unwrap_or_else(|e| e.into_inner()));
        for server in servers {
            // The scenario has returned, so the arena holds the last reference.
            if let Ok(server) = Arc::try_unwrap(server) {
                server.running.shutdown().await;
            }
        }
        if self.origin == RealmOrigin::Spare {
            return;
        }
        let _housekeeping = self.lab.trace.quiet();
        // The federated scenarios' workload platform too (removing a missing realm is fine).
        let realms = [
            platform::realm(&self.realm),
            untrusted_platform(&self.realm),
            self.realm.clone(),
        ];
        // Retired, not deleted, where the Keycloak is a test run's (spares may have run out
        // for the scenario's realm and not for its platform).
        for realm in realms {
            if let Err(error) = self.lab.admin.retire_realm(&realm).await {
                tracing::warn!(%realm, %error, "could not remove the lab's realm");
            }
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

    /// Keycloak's own address past its proxy (set in the proxy topology).
    pub fn keycloak_past_proxy(&self) -> Option<&Url> {
        self.lab.keycloak_past_proxy.as_ref()
    }

    /// The cluster's controls (the cluster topology).
    pub fn cluster(&self, scenario: &'static str) -> Result<&ClusterControl<'a>, LabError> {
        self.lab
            .cluster
            .as_ref()
            .ok_or(LabError::NeedsTopology(scenario, "--topology cluster"))
    }

    pub fn trace(&self) -> &Trace {
        &self.lab.trace
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
        self.client_drawn_as(Party::Client, client_id, identity, scope)
    }

    /// The intruder: the realm's second mTLS client, with a certificate from the same CA,
    /// drawn on a lifeline of its own.
    pub fn intruder(&self) -> Result<Arc<TokenClient>, LabError> {
        let identity = self.issue(&LeafSpec::client(playbook_certs::INTRUDER_CN))?;
        self.client_drawn_as(Party::Intruder, INTRUDER_CLIENT_ID, &identity, "")
    }

    fn client_drawn_as(
        &self,
        party: Party,
        client_id: &str,
        identity: &Leaf,
        scope: &str,
    ) -> Result<Arc<TokenClient>, LabError> {
        let mut config =
            TokenClientConfig::playbook(self.urls.token(), &self.lab.certs.ca_pem, identity);
        config.client_id = client_id.into();
        config.scope = scope.into();
        config.party = party;
        Self::token_client(self.lab, config)
    }

    /// `method`'s client of the realm, holding the read-only role, its credential registered
    /// through the Admin API with nothing kept on disk (a secret in memory, a private key made
    /// for the scenario) and its tokens bound as the realm sets the method up; drawn as the
    /// tutorial's client. The setup is housekeeping, so it draws no arrows.
    pub async fn method_client(
        &self,
        method: AuthMethod,
    ) -> Result<(Arc<TokenClient>, Credential), LabError> {
        let _housekeeping = self.lab.trace.quiet();
        let binding = self.binding_of(method);
        let credential = playbook_client::enrol(&self.provisioner(), method, binding).await?;
        let client =
            self.authenticating(Party::Client, credential.clone(), &self.lab.certs.client)?;
        Ok((client, credential))
    }

    /// The DPoP client: the `private_key_jwt` client of the realm (the FAPI 2.0 pairing: no
    /// secret, no certificate) with the read-only role, its tokens DPoP-bound to a key made for
    /// the scenario, returned beside it so the scenario can bend proofs of its own.
    pub async fn dpop_client(&self) -> Result<(Arc<TokenClient>, ProofKey), LabError> {
        let method = AuthMethod::PrivateKeyJwt;
        let credential = {
            let _housekeeping = self.lab.trace.quiet();
            playbook_client::enrol(&self.provisioner(), method, TokenBinding::Dpop).await?
        };
        let key = ProofKey::generate().map_err(ClientError::from)?;
        let mut config = TokenClientConfig::playbook(
            self.urls.token(),
            &self.lab.certs.ca_pem,
            &self.lab.certs.client,
        )
        .with_credential(credential, &self.urls)
        .with_dpop_key(key.clone());
        config.party = Party::Client;
        Ok((Self::token_client(self.lab, config)?, key))
    }

    /// `GET /api/users` at `server` with `token` presented exactly as `presenting` says, over
    /// `caller`'s connection: the DPoP scenarios' bent, replayed and missing proofs.
    pub async fn call_presenting(
        &self,
        server: &Server,
        caller: &Arc<TokenClient>,
        token: &str,
        presenting: Presenting,
        tried: impl Into<String>,
        expected: Expect,
    ) -> Result<Attempt, LabError> {
        let mut api = ResourceApi::new(server.base_url(), caller.clone()).drawn_as(server.party);
        // Each replica remembers the proofs it accepted, not its sibling's: in the cluster a
        // scenario's presentations all go to the first, as sticky routing would send them.
        if self.lab.topology() == Topology::Cluster {
            api = api.with_header(playbook_proxy::PIN_HEADER, "1");
        }
        let answer = api
            .get_presenting(
                playbook_resource_server::api::LIST_USERS.path,
                token,
                presenting,
            )
            .await?;
        Ok(Attempt::of_api(tried, expected, answer))
    }

    /// A token client authenticating with `credential` as its method's client, drawn as
    /// `party`; it presents `identity` only if the credential is the certificate.
    pub fn authenticating(
        &self,
        party: Party,
        credential: Credential,
        identity: &Leaf,
    ) -> Result<Arc<TokenClient>, LabError> {
        let method = credential.method();
        let mut config =
            TokenClientConfig::playbook(self.urls.token(), &self.lab.certs.ca_pem, identity)
                .with_credential(credential, &self.urls)
                .with_binding(self.binding_of(method));
        config.party = party;
        Self::token_client(self.lab, config)
    }

    /// How `method`'s client binds its tokens here: as the realm sets the method up, or, under
    /// FAPI 2.0's certificate profile, to the certificate (its executors make every client it
    /// reconfigures require one).
    fn binding_of(&self, method: AuthMethod) -> TokenBinding {
        match self.fapi2_binding {
            Some(TokenBinding::Certificate) => TokenBinding::Certificate,
            _ => TokenBinding::default_for(method),
        }
    }

    /// The client `workload` of the workload platform `realm` (the one [`Self::method_client`]
    /// set up for the federated method, or [`Self::untrusted_platform`]), asking with the TLS
    /// client certificate, drawn as `party`.
    pub fn platform_client(
        &self,
        party: Party,
        realm: &str,
        workload: &str,
    ) -> Result<Arc<TokenClient>, LabError> {
        let platform = self.lab.admin.keycloak().realm(realm);
        let mut config = TokenClientConfig::playbook(
            self.urls.token(),
            &self.lab.certs.ca_pem,
            &self.lab.certs.client,
        )
        .platform(platform.token(), workload);
        config.party = party;
        Self::token_client(self.lab, config)
    }

    /// A second workload platform, its tokens made for this realm like the trusted one's, that
    /// this realm has no trust relationship with; removed with the arena.
    pub async fn untrusted_platform(&self) -> Result<String, LabError> {
        let _housekeeping = self.lab.trace.quiet();
        let name = untrusted_platform(&self.realm);
        self.lab
            .admin
            .create_platform_realm(&name, &self.urls)
            .await?;
        Ok(name)
    }

    /// Asks `client` for a new token and spends it at `server` (over `client`'s connection):
    /// one attempt, answered by the resource server, or by Keycloak issuing no token.
    pub async fn token_and_call(
        &self,
        server: &Server,
        client: &Arc<TokenClient>,
        tried: impl Into<String>,
        expected: Expect,
    ) -> Result<Attempt, LabError> {
        match client.request().await {
            Ok(token) => {
                self.call(server, client, token.expose(), tried, expected)
                    .await
            }
            Err(error) => no_token(error, tried, expected),
        }
    }

    /// Adds a new RSA signing key to the realm, preferred over the old one (priority 1000):
    /// Keycloak signs new tokens with it at once.
    pub async fn add_signing_key(&self) -> Result<(), LabError> {
        let admin = self.admin();
        let realm: serde_json::Value = admin.get(&self.realm).await?.unwrap_or_default();
        // The algorithm the realm signs with (PS256 under FAPI 2.0), or the new key signs nothing.
        let algorithm = realm["defaultSignatureAlgorithm"]
            .as_str()
            .unwrap_or("RS256");
        admin
            .post(
                &format!("{}/components", self.realm),
                &serde_json::json!({
                    "name": "rotated-rsa", "providerId": "rsa-generated",
                    "providerType": "org.keycloak.keys.KeyProvider", "parentId": realm["id"],
                    "config": { "priority": ["1000"], "algorithm": [algorithm], "keySize": ["2048"],
                                "active": ["true"], "enabled": ["true"] }
                }),
            )
            .await?;
        Ok(())
    }

    /// Removes the key `kid` from the realm (its provider): tokens it signed stop verifying at
    /// each resource server's next JWKS fetch.
    pub async fn remove_signing_key(&self, kid: &str) -> Result<(), LabError> {
        let admin = self.admin();
        let keys: serde_json::Value = admin
            .get(&format!("{}/keys", self.realm))
            .await?
            .unwrap_or_default();
        let provider = keys["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
            .and_then(|k| k["providerId"].as_str())
            .ok_or_else(|| LabError::Setup("the old key is not in the realm's key list".into()))?
            .to_owned();
        admin
            .remove(&format!("{}/components/{provider}", self.realm))
            .await?;
        Ok(())
    }

    /// A new client certificate from the playbook's CA (held in memory only).
    pub fn issue(&self, spec: &LeafSpec) -> Result<Leaf, LabError> {
        Ok(self.lab.certs.authority()?.issue(spec)?)
    }

    /// The scenario's resource server for this realm (on the lab's API port), adjusted.
    pub async fn resource_server(
        &self,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<Arc<Server>, LabError> {
        self.start_server(Party::ResourceServer, self.lab.api_port, adjust)
            .await
    }

    /// A second resource server next to the main one, on a free port, drawn as `party` (its
    /// mode in its name).
    pub async fn another_resource_server(
        &self,
        party: Party,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<Arc<Server>, LabError> {
        self.start_server(party, 0, adjust).await
    }

    async fn start_server(
        &self,
        party: Party,
        port: u16,
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<Arc<Server>, LabError> {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut config = ServerConfig::new(self.urls.issuer().clone(), listen, self.lab.certs);
        config.trace = self.lab.trace.clone();
        config.party = party;
        // The profile first: a comparison server's own mode (`--binding off`) still wins.
        if self.lab.fapi2 {
            config.fapi2();
        }
        adjust(&mut config);
        let server = Arc::new(Server {
            running: ServedApi::start(config, self.lab.topology(), self.lab.certs).await?,
            party,
        });
        self.servers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(server.clone());
        Ok(server)
    }

    /// `GET /api/users` at `server` with `token`, over a connection presenting `caller`'s
    /// certificate: one attempt and what the defence answered.
    pub async fn call(
        &self,
        server: &Server,
        caller: &Arc<TokenClient>,
        token: &str,
        tried: impl Into<String>,
        expected: Expect,
    ) -> Result<Attempt, LabError> {
        let api = ResourceApi::new(server.base_url(), caller.clone()).drawn_as(server.party);
        self.call_api(api, token, tried, expected).await
    }

    /// `GET /api/users` with `token` through `api` as the scenario built it (another address,
    /// headers of the attacker's own).
    pub async fn call_api(
        &self,
        api: ResourceApi,
        token: &str,
        tried: impl Into<String>,
        expected: Expect,
    ) -> Result<Attempt, LabError> {
        let answer = api
            .get_with(playbook_resource_server::api::LIST_USERS.path, token)
            .await?;
        Ok(Attempt::of_api(tried, expected, answer))
    }

    /// [`Self::call`] as the victim, the tutorial's client: most attempts are its own token.
    pub async fn victim_call(
        &self,
        server: &Server,
        token: &str,
        tried: impl Into<String>,
        expected: Expect,
    ) -> Result<Attempt, LabError> {
        self.call(server, &self.victim, token, tried, expected)
            .await
    }
}

/// The name of the arena's untrusted workload platform.
fn untrusted_platform(realm: &str) -> String {
    format!("{realm}-untrusted")
}

/// The attempt whose token request was refused. Only Keycloak refusing the client is the
/// defence's answer (400 or 401, an OAuth error about the client or the grant); anything else
/// (Keycloak down, a missing realm, a 5xx) means the scenario could not be run.
fn no_token(
    error: ClientError,
    tried: impl Into<String>,
    expected: Expect,
) -> Result<Attempt, LabError> {
    let refused_the_client = matches!(
        &error,
        ClientError::TokenRefused { status: 400 | 401, error, .. }
            if ["invalid_client", "unauthorized_client", "invalid_grant"].contains(&error.as_str())
    );
    if !refused_the_client {
        return Err(error.into());
    }
    Ok(Attempt {
        tried: tried.into(),
        expected,
        answer: Answer::NoToken {
            why: error.to_string(),
        },
    })
}

impl Server {
    /// Where clients call it: its proxy in the proxy topology.
    pub fn base_url(&self) -> url::Url {
        self.running.url()
    }

    /// The server's own address, past its proxy: where an attacker who can reach it directly
    /// connects.
    pub fn own_url(&self) -> url::Url {
        self.running.server.base_url()
    }

    pub fn party(&self) -> Party {
        self.party
    }

    /// See [`RunningServer::refresh_keys`]; every replica's.
    pub async fn refresh_keys(&self, why: &str) {
        self.running.server.refresh_keys(why).await;
        for replica in &self.running.replicas {
            replica.refresh_keys(why).await;
        }
    }

    /// The replicas behind the load balancer: 2 in the cluster topology, else 1.
    pub fn replicas(&self) -> usize {
        1 + self.running.replicas.len()
    }

    /// Kills the first replica as a crash would (the cluster's `replica-down`).
    pub fn halt_first_replica(&self) {
        self.running.server.halt();
    }

    /// Whether the load balancer sends requests to each replica now.
    pub fn replicas_up(&self) -> Vec<bool> {
        self.running
            .proxy
            .as_ref()
            .map(|proxy| proxy.replicas_up())
            .unwrap_or_default()
    }
}
