//! The realm of the playbook, read from `oauth2-provider/realm.json` (where the seed keeps its
//! realm): the names every part of the flow refers to, the realm ready to import under any name,
//! and the URLs Keycloak serves it under.
//!
//! Nothing else in the workspace spells a client id, a role, a scope or an endpoint path: they
//! read them here, and a test holds these names to `realm.json`.
//!
//! ```
//! use playbook_keycloak::{KeycloakUrl, REALM};
//! let keycloak = KeycloakUrl::new("https://localhost:9443".parse().unwrap());
//! let realm = keycloak.realm(REALM);
//! assert_eq!(realm.issuer().as_str(), "https://localhost:9443/realms/oauth2-playbook");
//! assert_eq!(
//!     realm.token().as_str(),
//!     "https://localhost:9443/realms/oauth2-playbook/protocol/openid-connect/token"
//! );
//! ```

use serde_json::Value;
use url::Url;

use crate::RealmKey;

/// The seed's Keycloak HTTPS port: where the tutorial's Keycloak listens unless told otherwise.
pub const DEFAULT_HTTPS_PORT: u16 = 9443;
/// The realm the tutorial imports.
pub const REALM: &str = "oauth2-playbook";
/// The confidential client that authenticates with its TLS certificate (`client-x509`).
pub const CLIENT_ID: &str = "oauth2-playbook-client-credentials-mtls";
/// How a client proves who it is at the token endpoint: one confidential client of the realm per
/// method, so they can be run side by side. The seed teaches only [`AuthMethod::Mtls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AuthMethod {
    /// `tls_client_auth` (RFC 8705 section 2.1): the TLS client certificate, no secret at all.
    #[default]
    Mtls,
    /// `client_secret_basic` (RFC 6749 section 2.3.1): the secret in the Authorization header.
    Secret,
    /// `client_secret_post`: the secret in the form body.
    SecretPost,
    /// `client_secret_jwt` (RFC 7523): an HS256 assertion keyed with the secret.
    SecretJwt,
    /// `private_key_jwt` (RFC 7523): an assertion signed with the client's own private key.
    PrivateKeyJwt,
    /// Federated client authentication (Keycloak's `federated-jwt`): the assertion is a
    /// short-lived token the workload's platform issued to it, from an issuer the realm trusts.
    /// The client keeps no secret and no key of its own.
    Federated,
}

impl AuthMethod {
    pub const ALL: [Self; 6] = [
        Self::Mtls,
        Self::Secret,
        Self::SecretPost,
        Self::SecretJwt,
        Self::PrivateKeyJwt,
        Self::Federated,
    ];

    /// The one name of each method: what `--auth` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mtls => "mtls",
            Self::Secret => "secret",
            Self::SecretPost => "secret-post",
            Self::SecretJwt => "secret-jwt",
            Self::PrivateKeyJwt => "private-key-jwt",
            Self::Federated => "federated",
        }
    }

    /// The realm's client that authenticates this way.
    pub fn client_id(self) -> &'static str {
        match self {
            Self::Mtls => CLIENT_ID,
            Self::Secret => "oauth2-playbook-client-secret-basic",
            Self::SecretPost => "oauth2-playbook-client-secret-post",
            Self::SecretJwt => "oauth2-playbook-client-secret-jwt",
            Self::PrivateKeyJwt => "oauth2-playbook-client-private-key-jwt",
            Self::Federated => "oauth2-playbook-client-federated",
        }
    }

    /// The method's registered name (RFC 8414 `token_endpoint_auth_methods_supported`); the
    /// federated method has none (it sends an RFC 7523 assertion its platform made), so it goes
    /// by Keycloak's name.
    pub fn oauth_name(self) -> &'static str {
        match self {
            Self::Mtls => "tls_client_auth",
            Self::Secret => "client_secret_basic",
            Self::SecretPost => "client_secret_post",
            Self::SecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::Federated => "federated-jwt",
        }
    }

    /// Keycloak's name for the authenticator (`clientAuthenticatorType` in `realm.json`).
    pub fn keycloak_authenticator(self) -> &'static str {
        match self {
            Self::Mtls => "client-x509",
            Self::Secret | Self::SecretPost => "client-secret",
            Self::SecretJwt => "client-secret-jwt",
            Self::PrivateKeyJwt => "client-jwt",
            Self::Federated => "federated-jwt",
        }
    }

    /// Whether the client keeps a shared secret, which Keycloak knows too.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::Secret | Self::SecretPost | Self::SecretJwt)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Whether Keycloak binds a client's tokens to a key the client proves it holds, a choice apart
/// from how the client authenticates: any method may present the TLS client certificate on the
/// token request, and a client set to bind gets `cnf.x5t#S256` in its tokens (RFC 8705 section
/// 3). Without binding, a token is a bearer token: whoever holds it may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenBinding {
    /// A bearer token (RFC 6750).
    None,
    /// Bound to the TLS client certificate (RFC 8705).
    Certificate,
    /// Bound to a key the client proves it holds on every request (RFC 9449, DPoP).
    Dpop,
}

impl TokenBinding {
    pub const ALL: [Self; 3] = [Self::None, Self::Certificate, Self::Dpop];

    /// The one name of each binding: what `--bind` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Certificate => "certificate",
            Self::Dpop => "dpop",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The realm's setting for `method`'s client: the certificate client binds (its certificate
    /// is on every token request anyway), the others issue bearer tokens unless told otherwise.
    pub fn default_for(method: AuthMethod) -> Self {
        match method {
            AuthMethod::Mtls => Self::Certificate,
            _ => Self::None,
        }
    }

    /// The client attributes that set this binding up in Keycloak, each on or off: the
    /// certificate one binds tokens to the certificate presented (and refuses a token request
    /// without one), the DPoP one requires a DPoP proof on every token request and puts its
    /// key's thumbprint in `cnf.jkt` (Keycloak 26.4 and later).
    pub fn client_attributes(self) -> [(&'static str, String); 2] {
        [
            (
                Self::CERTIFICATE_ATTRIBUTE,
                (self == Self::Certificate).to_string(),
            ),
            (Self::DPOP_ATTRIBUTE, (self == Self::Dpop).to_string()),
        ]
    }

    /// The client attribute that makes Keycloak bind tokens to the certificate presented, and
    /// refuse a token request that presents none.
    pub const CERTIFICATE_ATTRIBUTE: &str = "tls.client.certificate.bound.access.tokens";

    /// The client attribute that makes Keycloak require a DPoP proof and bind tokens to its key.
    pub const DPOP_ATTRIBUTE: &str = "dpop.bound.access.tokens";
}

/// The workload platform of the federated method: a realm of its own beside the tutorial's,
/// standing for what issues workloads their identity in production (a Kubernetes cluster, a
/// SPIFFE server, another identity provider). The tutorial's realm trusts it as an identity
/// provider, and the workload's platform token is the federated client's assertion.
pub mod platform {
    /// The platform realm of the tutorial's realm `realm`.
    pub fn realm(realm: &str) -> String {
        format!("{realm}-platform")
    }

    /// The alias under which the tutorial's realm trusts the platform (an OpenID Connect
    /// identity provider accepting client assertions); the federated client names it in its
    /// `jwt.credential.issuer`.
    pub const IDENTITY_PROVIDER: &str = "oauth2-playbook-platform";

    /// The workload's client at its platform: it authenticates there with the TLS client
    /// certificate, standing for the platform's own attestation of the workload.
    pub const WORKLOAD_CLIENT_ID: &str = "oauth2-playbook-workload";

    /// The workload's identity, the `sub` of its platform token; the federated client names it
    /// in its `jwt.credential.sub`.
    pub const WORKLOAD: &str = "oauth2-playbook-workload";

    /// Another workload of the same platform, with tokens for the tutorial's realm too: the
    /// lab shows its token refused for the federated client.
    pub const OTHER_WORKLOAD_CLIENT_ID: &str = "oauth2-playbook-other-workload";

    /// The workload again, with tokens for another service: the lab shows them refused.
    pub const ELSEWHERE_CLIENT_ID: &str = "oauth2-playbook-workload-elsewhere";

    /// The audience of the workload's tokens for another service.
    pub const ELSEWHERE_AUDIENCE: &str = "https://elsewhere.oauth2-playbook.dev/";

    /// What the template's audience mappers say until the platform is made for a realm, which
    /// puts that realm's issuer in their place.
    pub(crate) const AUDIENCE_PLACEHOLDER: &str = "${TUTORIAL_REALM_ISSUER}";
}

/// The SPIFFE platform of the federated method: a SPIRE server and agent the playbook runs
/// (`playbook-spire`), whose JWT-SVIDs are the SPIFFE client's assertions. The realm trusts
/// the SPIRE server's bundle endpoint as a `spiffe` identity provider (a preview feature in
/// Keycloak 26.7: the provider's builds turn it on).
pub mod spiffe {
    /// The SPIFFE trust domain SPIRE issues identities in.
    pub const TRUST_DOMAIN: &str = "oauth2-playbook.test";

    /// The trust domain as Keycloak's identity provider names it.
    pub fn trust_domain_id() -> String {
        format!("spiffe://{TRUST_DOMAIN}")
    }

    /// The workload's SPIFFE ID: the `sub` of its JWT-SVIDs, which the SPIFFE client names in
    /// its `jwt.credential.sub`.
    pub fn workload_id() -> String {
        format!("{}/workload", trust_domain_id())
    }

    /// The alias under which the realm trusts SPIRE; the SPIFFE client names it in its
    /// `jwt.credential.issuer`.
    pub const IDENTITY_PROVIDER: &str = "oauth2-playbook-spiffe";

    /// The realm's client that authenticates with the workload's JWT-SVID.
    pub const CLIENT_ID: &str = "oauth2-playbook-client-spiffe";

    /// The `client_assertion_type` of a JWT-SVID (draft-schwenkschuster-oauth-spiffe-client-auth).
    pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe";
}

/// The client standing for the resource server: the audience tokens must name, and who the
/// resource server authenticates as (by its TLS certificate) to introspect tokens.
pub const RESOURCE_SERVER_CLIENT_ID: &str = "oauth2-playbook-resource-server";
/// The attack lab's second mTLS client: same CA, another certificate, no audience mapper.
pub const INTRUDER_CLIENT_ID: &str = "oauth2-playbook-intruder";
/// The realm role the read endpoints require; step 2 of the flow assigns it.
pub const READONLY_ROLE: &str = "oauth2-playbook-readonly";
/// The client scope the client asks for; Keycloak grants it only with [`READONLY_ROLE`].
pub const USERS_READ: &str = "users:read";
/// The seed's scope for reading one user (not in the realm: no client of the flow asks for it).
pub const READ_USER: &str = "read:user";
/// The seed's scope for creating users (not in the realm: no client of the flow writes).
pub const WRITE_USER: &str = "write:user";
/// The seed's scope that allows every endpoint (not in the realm).
pub const USERS_ADMIN: &str = "users:admin";
/// The realm Keycloak's administrators log in to, with its command-line client.
pub const MASTER_REALM: &str = "master";
/// The public client of the master realm that the admin password grant uses.
pub const ADMIN_CLI: &str = "admin-cli";

const REALM_JSON: &str = include_str!("../../../oauth2-provider/realm.json");
const PLATFORM_JSON: &str = include_str!("../../../oauth2-provider/platform-realm.json");

/// The bundled realm (`realm.json`), ready to be imported under any name.
#[derive(Debug, Clone)]
pub struct RealmTemplate(Value);

impl RealmTemplate {
    /// `realm.json` as bundled: a Keycloak snapshot that holds realms made from it is tied to it.
    pub fn bundled_source() -> &'static str {
        REALM_JSON
    }

    /// `platform-realm.json` as bundled: spare platforms are tied to it likewise.
    pub fn platform_source() -> &'static str {
        PLATFORM_JSON
    }

    pub fn bundled() -> Self {
        Self(serde_json::from_str(REALM_JSON).expect("oauth2-provider/realm.json is valid JSON"))
    }

    /// The workload platform's realm (`oauth2-provider/platform-realm.json`), named `name`,
    /// its workloads' tokens made for `audience` (the issuer of the realm that trusts it).
    ///
    /// Signed with a key of its own made here ([`RealmKey::generate`]) rather than by Keycloak,
    /// which would spend more on each of the two it makes for a realm; the lab and the tests
    /// make a platform per federated scenario, on the Keycloak every test shares. Never a key
    /// shared with other realms: each platform stands for a separate authority.
    pub fn platform(name: &str, audience: &Url) -> Value {
        let text = PLATFORM_JSON.replace(platform::AUDIENCE_PLACEHOLDER, audience.as_str());
        let mut realm: Value = serde_json::from_str(&text).expect("platform-realm.json is JSON");
        realm["realm"] = Value::String(name.to_owned());
        realm["components"]["org.keycloak.keys.KeyProvider"] = RealmKey::generate().key_providers();
        realm
    }

    /// Signed with `key` instead of the RSA keys Keycloak would generate for it (see
    /// [`RealmKey`]: what realms made by the dozen save).
    pub fn signed_with(mut self, key: &RealmKey) -> Self {
        self.0["components"]["org.keycloak.keys.KeyProvider"] = key.key_providers();
        self
    }

    /// The realm's JSON renamed to `name`: tests give every test its own realm this way.
    pub fn named(&self, name: &str) -> Value {
        let mut realm = self.0.clone();
        realm["realm"] = Value::String(name.to_owned());
        realm
    }
}

/// Keycloak's base URL, normalised once: with a trailing slash, so joining keeps its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeycloakUrl(Url);

impl KeycloakUrl {
    pub fn new(mut url: Url) -> Self {
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Self(url)
    }

    /// A Keycloak on this machine, as every party here reaches it: `https://localhost:<port>/`
    /// (the name its certificate is issued for).
    pub fn local(port: u16) -> Self {
        Self::new(playbook_https::local_url(port))
    }

    /// The server root, e.g. `https://localhost:9443/`.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The URLs of realm `name`.
    pub fn realm(&self, name: &str) -> RealmUrl {
        let issuer = self
            .0
            .join(&format!("realms/{name}"))
            .expect("a realm name is a path segment");
        RealmUrl { issuer }
    }

    /// The Admin API's collection of realms; a realm's resources are below it.
    pub fn admin_realms(&self) -> Url {
        self.0.join("admin/realms/").expect("a static path")
    }
}

/// The URLs of one realm, all derived from its issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmUrl {
    issuer: Url,
}

impl RealmUrl {
    /// A realm known by its issuer (as a token's `iss` names it); a trailing slash is dropped.
    pub fn from_issuer(mut issuer: Url) -> Self {
        let path = issuer.path().trim_end_matches('/').to_owned();
        issuer.set_path(&path);
        Self { issuer }
    }

    /// The issuer, exactly as it appears in the realm's tokens.
    pub fn issuer(&self) -> &Url {
        &self.issuer
    }

    fn below(&self, path: &str) -> Url {
        Url::parse(&format!("{}/{path}", self.issuer)).expect("an issuer URL with a path")
    }

    /// The OIDC discovery document (OpenID Connect Discovery 1.0, section 4).
    pub fn discovery(&self) -> Url {
        self.below(".well-known/openid-configuration")
    }

    pub fn token(&self) -> Url {
        self.below("protocol/openid-connect/token")
    }

    /// The realm's public keys (what discovery names `jwks_uri`).
    pub fn jwks(&self) -> Url {
        self.below("protocol/openid-connect/certs")
    }

    /// RFC 7009 token revocation.
    pub fn revocation(&self) -> Url {
        self.below("protocol/openid-connect/revoke")
    }

    /// RFC 7662 token introspection.
    pub fn introspection(&self) -> Url {
        self.below("protocol/openid-connect/token/introspect")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_are_the_ones_realm_json_defines() {
        let realm = RealmTemplate::bundled().named(REALM);
        assert_eq!(realm["realm"], REALM);
        let clients = realm["clients"].as_array().unwrap();
        let mtls = clients.iter().find(|c| c["clientId"] == CLIENT_ID).unwrap();
        assert_eq!(mtls["clientAuthenticatorType"], "client-x509");
        assert_eq!(
            mtls["attributes"][TokenBinding::CERTIFICATE_ATTRIBUTE],
            "true"
        );
        let resource_server = clients
            .iter()
            .find(|c| c["clientId"] == RESOURCE_SERVER_CLIENT_ID)
            .unwrap();
        assert_eq!(resource_server["clientAuthenticatorType"], "client-x509");
        assert_eq!(
            resource_server["serviceAccountsEnabled"], false,
            "it never asks for tokens"
        );
        let intruder = clients
            .iter()
            .find(|c| c["clientId"] == INTRUDER_CLIENT_ID)
            .unwrap();
        assert_eq!(
            intruder["attributes"][TokenBinding::CERTIFICATE_ATTRIBUTE],
            "true"
        );
        assert!(
            !intruder["defaultClientScopes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "resource-server-audience"),
            "the intruder's own tokens are for another audience"
        );
        for method in AuthMethod::ALL {
            let client = clients
                .iter()
                .find(|c| c["clientId"] == method.client_id())
                .unwrap_or_else(|| panic!("no client for {}", method.name()));
            assert_eq!(
                client["clientAuthenticatorType"],
                method.keycloak_authenticator()
            );
            assert_eq!(client["serviceAccountsEnabled"], true);
            assert_eq!(
                client["attributes"][TokenBinding::DPOP_ATTRIBUTE],
                "false",
                "{}: DPoP is set up when asked (--bind dpop)",
                method.name()
            );
            let binds = client["attributes"][TokenBinding::CERTIFICATE_ATTRIBUTE] == "true";
            assert_eq!(
                binds,
                TokenBinding::default_for(method) == TokenBinding::Certificate,
                "{}: the realm's binding is the method's default",
                method.name()
            );
            assert!(client.get("secret").is_none(), "no secret is committed");
            assert_eq!(AuthMethod::from_name(method.name()), Some(method));
        }
        let federated = clients
            .iter()
            .find(|c| c["clientId"] == AuthMethod::Federated.client_id())
            .unwrap();
        assert_eq!(
            federated["attributes"]["jwt.credential.issuer"],
            platform::IDENTITY_PROVIDER
        );
        assert_eq!(
            federated["attributes"]["jwt.credential.sub"],
            platform::WORKLOAD
        );
        // The role exists but nobody holds it: the client assigns it in step 2.
        assert_eq!(realm["roles"]["realm"][0]["name"], READONLY_ROLE);
        assert!(realm.get("users").is_none());
        let scopes = realm["clientScopes"].as_array().unwrap();
        assert!(scopes.iter().any(|s| s["name"] == USERS_READ));
        assert!(realm.to_string().contains(RESOURCE_SERVER_CLIENT_ID));
    }

    #[test]
    fn the_platform_makes_its_workloads_tokens_for_the_realm_that_trusts_it() {
        let issuer = Url::parse("https://localhost:9443/realms/r").unwrap();
        let realm = RealmTemplate::platform("r-platform", &issuer);
        assert_eq!(realm["realm"], "r-platform");
        assert!(!realm.to_string().contains(platform::AUDIENCE_PLACEHOLDER));
        // Signed with a key of its own, no other platform's.
        let key = |realm: &Value| {
            let providers = realm["components"]["org.keycloak.keys.KeyProvider"].clone();
            let rsa = providers
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["providerId"] == "rsa");
            rsa.unwrap()["config"]["privateKey"][0].clone()
        };
        let another = RealmTemplate::platform("r-untrusted", &issuer);
        assert!(key(&realm).as_str().unwrap().contains("PRIVATE KEY"));
        assert_ne!(key(&realm), key(&another));
        let client = |id: &str| {
            let clients = realm["clients"].as_array().unwrap();
            clients
                .iter()
                .find(|c| c["clientId"] == id)
                .unwrap()
                .clone()
        };
        let claims = |id: &str| {
            let mappers = client(id)["protocolMappers"].as_array().unwrap().clone();
            let config = |mapper: &str| {
                mappers
                    .iter()
                    .find(|m| m["protocolMapper"] == mapper)
                    .unwrap()["config"]
                    .clone()
            };
            (
                config("oidc-hardcoded-claim-mapper")["claim.value"].clone(),
                config("oidc-audience-mapper")["included.custom.audience"].clone(),
            )
        };
        let ours = issuer.as_str();
        assert_eq!(
            claims(platform::WORKLOAD_CLIENT_ID),
            (platform::WORKLOAD.into(), ours.into())
        );
        assert_eq!(claims(platform::OTHER_WORKLOAD_CLIENT_ID).1, ours);
        assert_ne!(
            claims(platform::OTHER_WORKLOAD_CLIENT_ID).0,
            platform::WORKLOAD
        );
        assert_eq!(
            claims(platform::ELSEWHERE_CLIENT_ID),
            (
                platform::WORKLOAD.into(),
                platform::ELSEWHERE_AUDIENCE.into()
            )
        );
        // Keycloak keeps a client's description in 255 characters, and refuses a longer one
        // with "Database operation failed".
        let longest = |realm: &Value| {
            (realm["clients"].as_array().unwrap().iter())
                .map(|c| {
                    c["description"]
                        .as_str()
                        .unwrap_or_default()
                        .chars()
                        .count()
                })
                .max()
                .unwrap()
        };
        assert!(longest(&realm) <= 255);
        assert!(longest(&RealmTemplate::bundled().named(REALM)) <= 255);
        // Exactly one audience: Keycloak refuses an assertion with several.
        assert_eq!(
            client(platform::WORKLOAD_CLIENT_ID)["defaultClientScopes"],
            serde_json::json!([])
        );
    }

    #[test]
    fn renaming_keeps_everything_else() {
        let template = RealmTemplate::bundled();
        let mut renamed = template.named("test-1");
        renamed["realm"] = Value::String(REALM.into());
        assert_eq!(renamed, template.named(REALM));
    }

    #[test]
    fn urls_are_the_same_with_or_without_trailing_slashes() {
        let with = KeycloakUrl::new("https://kc.example/auth/".parse().unwrap());
        let without = KeycloakUrl::new("https://kc.example/auth".parse().unwrap());
        assert_eq!(with, without);
        let realm = with.realm("r");
        assert_eq!(realm.issuer().as_str(), "https://kc.example/auth/realms/r");
        assert_eq!(
            realm,
            RealmUrl::from_issuer("https://kc.example/auth/realms/r/".parse().unwrap())
        );
        assert_eq!(
            realm.discovery().as_str(),
            "https://kc.example/auth/realms/r/.well-known/openid-configuration"
        );
        assert_eq!(
            realm.jwks().as_str(),
            "https://kc.example/auth/realms/r/protocol/openid-connect/certs"
        );
        assert_eq!(
            realm.introspection().as_str(),
            "https://kc.example/auth/realms/r/protocol/openid-connect/token/introspect"
        );
        assert_eq!(
            with.admin_realms().as_str(),
            "https://kc.example/auth/admin/realms/"
        );
    }
}
