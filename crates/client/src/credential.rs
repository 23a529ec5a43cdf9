//! How the client proves who it is at the token endpoint, one way per [`AuthMethod`]: what the
//! token request carries (a header, form fields, a signed assertion) and whether the connection
//! presents the TLS client certificate.
//!
//! The assertions of RFC 7523 are made with jsonwebtoken (the same crate the resource server
//! reads tokens with). Their header says `typ: client-authentication+jwt`, the explicit type RFC
//! 10070 gives client assertions so that one can never be taken for another kind of JWT (an
//! access token, an ID token); Keycloak reads only `alg` and `kid` of the header, so it accepts it.

use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{EncodingKey, Header};
use playbook_certs::CertSet;
use playbook_keycloak::{
    AuthMethod, Provisioner, READONLY_ROLE, RealmUrl, Secret, TokenBinding, platform, spiffe,
    unix_now,
};
use serde::Serialize;
use url::Url;

use crate::ClientError;

/// How long an assertion is valid: Keycloak refuses one whose `iat` is over a minute old, and a
/// short life bounds what a captured one is worth (its `jti` is single-use anyway).
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(30);

/// The assertion's explicit type (RFC 10070, updating RFC 7523).
pub const ASSERTION_TYPE: &str = "client-authentication+jwt";

/// RFC 7523 section 2.2.
const ASSERTION_TYPE_PARAMETER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What the client holds to authenticate. `Debug` never prints a secret or a key.
#[derive(Clone, Default)]
pub enum Credential {
    /// `tls_client_auth`: the TLS client certificate; nothing secret in the request.
    #[default]
    Certificate,
    /// `client_secret_basic`: the secret in the Authorization header.
    SecretBasic(Secret),
    /// `client_secret_post`: the secret in the form body.
    SecretPost(Secret),
    /// `client_secret_jwt`: an HS256 assertion keyed with the secret.
    SecretJwt(Secret),
    /// `private_key_jwt`: an ES256 assertion signed with the client's own key (PKCS#8 PEM).
    PrivateKeyJwt { key_pem: Secret, kid: String },
    /// An assertion made beforehand, sent as it is: one captured on the wire, or crafted (the
    /// lab replays and bends them to show Keycloak refusing each).
    Assertion {
        method: AuthMethod,
        assertion: Secret,
    },
    /// Federated: before every token request, a fresh token from the workload's platform (its
    /// token endpoint, asked as `workload` with the TLS client certificate), sent as the
    /// assertion. Nothing is kept between requests.
    Federated { platform: Url, workload: String },
    /// Federated through SPIFFE: before every token request, a fresh JWT-SVID from the SPIRE
    /// agent, sent as a `jwt-spiffe` assertion by the realm's SPIFFE client.
    Spiffe(crate::SpiffeSource),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({})", self.method().name())
    }
}

/// The claims of a client assertion (RFC 7523 section 3).
#[derive(Debug, Clone, Serialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    /// The issuer identifier, as a plain string: the one audience RFC 10070 allows.
    pub aud: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

impl AssertionClaims {
    /// A fresh assertion's claims: `iss` = `sub` = the client, a unique `jti`, a short life.
    pub fn new(client_id: &str, audience: &str) -> Self {
        let now = unix_now();
        Self {
            iss: client_id.into(),
            sub: client_id.into(),
            aud: audience.into(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs() as i64,
        }
    }
}

impl Credential {
    pub fn method(&self) -> AuthMethod {
        match self {
            Self::Certificate => AuthMethod::Mtls,
            Self::SecretBasic(_) => AuthMethod::Secret,
            Self::SecretPost(_) => AuthMethod::SecretPost,
            Self::SecretJwt(_) => AuthMethod::SecretJwt,
            Self::PrivateKeyJwt { .. } => AuthMethod::PrivateKeyJwt,
            Self::Assertion { method, .. } => *method,
            Self::Federated { .. } | Self::Spiffe(_) => AuthMethod::Federated,
        }
    }

    /// The realm's client this credential authenticates: its method's, but for SPIFFE's own.
    pub fn client_id(&self) -> &'static str {
        match self {
            Self::Spiffe(_) => spiffe::CLIENT_ID,
            _ => self.method().client_id(),
        }
    }

    /// The federated credential of the workload whose platform is `platform`.
    pub fn federated(platform: &RealmUrl) -> Self {
        Self::Federated {
            platform: platform.token(),
            workload: platform::WORKLOAD_CLIENT_ID.into(),
        }
    }

    /// The credential of a method that keeps a shared secret.
    pub fn with_secret(method: AuthMethod, secret: Secret) -> Option<Self> {
        match method {
            AuthMethod::Secret => Some(Self::SecretBasic(secret)),
            AuthMethod::SecretPost => Some(Self::SecretPost(secret)),
            AuthMethod::SecretJwt => Some(Self::SecretJwt(secret)),
            AuthMethod::Mtls | AuthMethod::PrivateKeyJwt | AuthMethod::Federated => None,
        }
    }

    /// The credential of `private_key_jwt` with this key (PKCS#8 PEM, P-256), and the public
    /// JWKS Keycloak checks its assertions with; the `kid` is the key's RFC 7638 thumbprint.
    pub fn private_key_jwt(key_pem: &str) -> Result<(Self, serde_json::Value), ClientError> {
        let key = ec_key(key_pem)?;
        let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256)
            .map_err(|e| unusable_key(&e))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| unusable_key(&e))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let jwks = serde_json::json!({ "keys": [jwk] });
        let credential = Self::PrivateKeyJwt {
            key_pem: Secret::new(key_pem),
            kid,
        };
        Ok((credential, jwks))
    }

    /// The shared secret, for the methods that keep one.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Self::SecretBasic(secret) | Self::SecretPost(secret) | Self::SecretJwt(secret) => {
                Some(secret)
            }
            _ => None,
        }
    }

    /// Whether the token request's connection presents the client certificate.
    pub fn presents_certificate(&self) -> bool {
        matches!(self, Self::Certificate)
    }

    /// The `Authorization: Basic` pair, for `client_secret_basic` only. RFC 6749 section 2.3.1
    /// form-encodes both parts first; the playbook's ids and Keycloak's secrets need no escaping.
    pub fn basic_auth<'a>(&'a self, client_id: &'a str) -> Option<(&'a str, &'a str)> {
        match self {
            Self::SecretBasic(secret) => Some((client_id, secret.expose())),
            _ => None,
        }
    }

    /// The form fields that authenticate the client, besides `grant_type` and `scope`. The
    /// federated credential's assertion comes from its platform: [`assertion_fields`] then.
    pub fn form_fields(
        &self,
        client_id: &str,
        audience: &str,
    ) -> Result<Vec<(&'static str, String)>, ClientError> {
        let assertion = assertion_fields;
        Ok(match self {
            Self::Certificate | Self::SecretBasic(_) => vec![("client_id", client_id.into())],
            Self::SecretPost(secret) => vec![
                ("client_id", client_id.into()),
                ("client_secret", secret.expose().into()),
            ],
            Self::SecretJwt(_) | Self::PrivateKeyJwt { .. } => {
                assertion(self.sign_assertion(&AssertionClaims::new(client_id, audience))?)
            }
            Self::Assertion {
                assertion: made, ..
            } => assertion(made.expose().into()),
            Self::Federated { .. } | Self::Spiffe(_) => {
                return Err(ClientError::BadCredential(
                    "the federated assertion is the platform's token, asked for first".into(),
                ));
            }
        })
    }

    /// A client assertion with these claims, signed as this credential's method signs (HS256
    /// with the secret, ES256 with the private key), its header typed as RFC 10070 says.
    pub fn sign_assertion(&self, claims: &AssertionClaims) -> Result<String, ClientError> {
        let (header, key) = match self {
            Self::SecretJwt(secret) => (
                Header::new(jsonwebtoken::Algorithm::HS256),
                EncodingKey::from_secret(secret.expose().as_bytes()),
            ),
            Self::PrivateKeyJwt { key_pem, kid } => {
                let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
                header.kid = Some(kid.clone());
                (header, ec_key(key_pem.expose())?)
            }
            _ => {
                return Err(ClientError::BadCredential(format!(
                    "{} makes no client assertion",
                    self.method().oauth_name()
                )));
            }
        };
        let header = Header {
            typ: Some(ASSERTION_TYPE.into()),
            ..header
        };
        jsonwebtoken::encode(&header, claims, &key).map_err(|e| unusable_key(&e))
    }
}

/// The form fields of a client assertion (RFC 7523 section 2.2). No `client_id`: the assertion
/// names the client, and for the federated method it names the workload, which Keycloak maps to
/// the client (a `client_id` beside it must equal its `sub`).
pub fn assertion_fields(assertion: String) -> Vec<(&'static str, String)> {
    typed_assertion_fields(ASSERTION_TYPE_PARAMETER, assertion)
}

/// The form fields of an assertion of another type (a JWT-SVID is `jwt-spiffe`).
pub(crate) fn typed_assertion_fields(
    assertion_type: &str,
    assertion: String,
) -> Vec<(&'static str, String)> {
    vec![
        ("client_assertion_type", assertion_type.into()),
        ("client_assertion", assertion),
    ]
}

/// Step 0 of the SPIFFE client: the realm trusts the SPIRE server's bundle endpoint, and the
/// client is told how to bind its tokens; its credential is where its JWT-SVIDs come from.
pub async fn register_spiffe(
    provisioner: &Provisioner<'_>,
    binding: TokenBinding,
    source: crate::SpiffeSource,
) -> Result<Credential, ClientError> {
    provisioner.trust_spiffe(&source.bundle_endpoint).await?;
    provisioner
        .set_client_attributes(spiffe::CLIENT_ID, &binding.client_attributes())
        .await?;
    Ok(Credential::Spiffe(source))
}

/// Step 2's other half for the methods Keycloak must learn something for, through the Admin
/// API ([`register`]), keeping a secret 0600 in the certificate directory and signing
/// assertions with the certificate directory's assertion key (made on first use).
pub async fn provision(
    provisioner: &Provisioner<'_>,
    method: AuthMethod,
    binding: TokenBinding,
    certs: &CertSet,
) -> Result<Credential, ClientError> {
    let key_pem = match method {
        AuthMethod::PrivateKeyJwt => certs
            .assertion_key()
            .map_err(|e| ClientError::BadCredential(e.to_string()))?,
        _ => String::new(),
    };
    let credential = register(provisioner, method, binding, &key_pem).await?;
    if let Some(secret) = credential.secret() {
        let path = certs.files.client_secret(method.name());
        playbook_certs::write_private(&path, secret.expose().as_bytes()).map_err(|e| {
            ClientError::BadCredential(format!("cannot keep the secret in {}: {e}", path.display()))
        })?;
    }
    Ok(credential)
}

/// Steps 2 and 0 in one, keeping nothing on disk, for the lab, the tests and the benchmarks:
/// `method`'s client gets the read-only role and its credential ([`register`], a private key
/// made for the occasion), its tokens bound as `binding` says.
pub async fn enrol(
    provisioner: &Provisioner<'_>,
    method: AuthMethod,
    binding: TokenBinding,
) -> Result<Credential, ClientError> {
    let (account, role) = provisioner
        .account_and_role(method.client_id(), READONLY_ROLE)
        .await?;
    provisioner.assign(&account, &role).await?;
    let key_pem =
        playbook_certs::signing_key_pem().map_err(|e| ClientError::BadCredential(e.to_string()))?;
    register(provisioner, method, binding, &key_pem).await
}

/// Tells Keycloak what `method`'s client authenticates with, keeping nothing on disk: a
/// secret-based client gets a new secret (Keycloak generates it and refuses the old one from
/// then on); the `private_key_jwt` client gets the public half of `key_pem` as a JWKS (the
/// private key never leaves the client). Keycloak could also fetch a JWKS URL or take a
/// certificate; a JWKS set once needs no server of the client's and no certificate for a key
/// that is not a TLS identity. Each of these clients is also told how to bind its tokens
/// (`binding`: to the certificate, to a DPoP key, or not at all); the certificate client always
/// binds to its certificate, as the realm sets it.
pub async fn register(
    provisioner: &Provisioner<'_>,
    method: AuthMethod,
    binding: TokenBinding,
    key_pem: &str,
) -> Result<Credential, ClientError> {
    if method == AuthMethod::Mtls {
        return Ok(Credential::Certificate);
    }
    let client_id = method.client_id();
    let mut attributes = binding.client_attributes().to_vec();
    let credential = if method.uses_secret() {
        let secret = provisioner.rotate_secret(client_id).await?;
        Credential::with_secret(method, secret).expect("a secret-based method")
    } else if method == AuthMethod::Federated {
        Credential::federated(&provisioner.trust_platform().await?)
    } else {
        let (credential, jwks) = Credential::private_key_jwt(key_pem)?;
        attributes.push(("jwks.string", jwks.to_string()));
        credential
    };
    provisioner
        .set_client_attributes(client_id, &attributes)
        .await?;
    Ok(credential)
}

/// What to do when Keycloak refuses `client_id` authenticating by `method`, from its
/// `error_description` (Keycloak 26's words; its `error` is `invalid_client` or
/// `unauthorized_client` for nearly all of them, so the description is what tells them apart).
pub fn refusal_hint(method: AuthMethod, client_id: &str, description: &str) -> String {
    let again = format!(
        "`cargo playbook client --auth {}` sets it up again",
        method.name()
    );
    let said = |words: &str| description.contains(words);
    if said("Configured client authentication method not allowed") {
        format!(
            "the realm enforces a client policy that refuses {} for {client_id} (FAPI 2.0 allows mTLS and private_key_jwt only): use one of those, or, if `cargo demo --profile fapi2` left its policy on, run `cargo demo` once without --profile to undo it",
            method.oauth_name()
        )
    } else if said("DPoP proof is missing") {
        format!(
            "{client_id} in Keycloak requires DPoP-bound tokens (dpop.bound.access.tokens): ask with --bind dpop, or `cargo playbook client --auth {} --bind none` sets it back",
            method.name()
        )
    } else if said("DPoP proof") {
        "Keycloak refused the DPoP proof: each proof is single-use, made just before its request, for the token endpoint's exact URL".into()
    } else if said("client_assertion_type is missing") || said("Invalid method used") {
        format!(
            "{client_id} in Keycloak is set up for another method than {}; use its own --auth",
            method.oauth_name()
        )
    } else if said("Token reuse detected") {
        "that client assertion was already used: every assertion needs a fresh jti".into()
    } else if said("Token is not active")
        || said("too far in the past")
        || said("issued in the future")
    {
        "Keycloak finds the client assertion expired or not yet valid: check this machine's clock"
            .into()
    } else if said("audience") {
        "the client assertion's aud must be the realm's issuer identifier".into()
    } else if said("Unable to load public key") || said("Signature on JWT") {
        format!(
            "Keycloak cannot verify the assertion of {client_id} with the key it holds: {again}"
        )
    } else if said("Invalid client or Invalid client credentials")
        && method == AuthMethod::Federated
    {
        // Keycloak says the same for every way the platform token fails to name the client.
        format!(
            "Keycloak does not accept the platform token for {client_id}: an issuer it does not trust, a signature the platform's key it holds does not verify, or a sub none of its clients names (`cargo playbook doctor --auth federated` tells which); {again}"
        )
    } else if said("Invalid client or Invalid client credentials") && method.uses_secret() {
        // Keycloak says the same for a stale secret and for a client set up for another method.
        format!(
            "Keycloak does not accept the credentials of {client_id}: its secret was rotated since, or it is set up for another method than {} (`cargo playbook doctor --auth {}` tells which); {again}",
            method.oauth_name(),
            method.name()
        )
    } else if method == AuthMethod::Mtls {
        "check that the client certificate is signed by the CA Keycloak trusts and its CN matches \
         the client's x509.subjectdn"
            .into()
    } else {
        format!("check the credential of {client_id}: {again}")
    }
}

fn ec_key(key_pem: &str) -> Result<EncodingKey, ClientError> {
    let der = playbook_certs::der::private_key(key_pem).map_err(ClientError::BadCredential)?;
    Ok(EncodingKey::from_ec_der(der.secret_der()))
}

fn unusable_key(error: &jsonwebtoken::errors::Error) -> ClientError {
    ClientError::BadCredential(format!("cannot sign the client assertion: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn decoded(assertion: &str, part: usize) -> serde_json::Value {
        let segment = assertion.split('.').nth(part).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    fn assertion_of(credential: &Credential) -> String {
        let fields = credential
            .form_fields("the-client", "https://kc/realms/r")
            .unwrap();
        assert_eq!(
            fields[0],
            ("client_assertion_type", ASSERTION_TYPE_PARAMETER.into())
        );
        assert!(fields.iter().all(|(name, _)| *name != "client_secret"));
        fields[1].1.clone()
    }

    #[test]
    fn an_assertion_names_the_client_the_issuer_and_a_short_fresh_life() {
        let credential = Credential::SecretJwt(Secret::new("s3cret-value"));
        let first = assertion_of(&credential);
        let header = decoded(&first, 0);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["typ"], ASSERTION_TYPE);
        let claims = decoded(&first, 1);
        assert_eq!(claims["iss"], "the-client");
        assert_eq!(claims["sub"], "the-client");
        assert_eq!(
            claims["aud"], "https://kc/realms/r",
            "one audience, a plain string"
        );
        let life = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert!((1..=60).contains(&life), "{life} s");
        let second = decoded(&assertion_of(&credential), 1);
        assert_ne!(claims["jti"], second["jti"], "every assertion is new");
        assert!(!first.contains("s3cret-value"));
    }

    #[test]
    fn a_private_key_assertion_is_es256_and_names_the_public_key_keycloak_gets() {
        let key = rcgen::KeyPair::generate().unwrap();
        let (credential, jwks) = Credential::private_key_jwt(&key.serialize_pem()).unwrap();
        let header = decoded(&assertion_of(&credential), 0);
        assert_eq!(header["alg"], "ES256");
        let public = &jwks["keys"][0];
        assert_eq!(header["kid"], public["kid"]);
        assert_eq!(public["kty"], "EC");
        assert_eq!(public["use"], "sig");
        assert!(public.get("d").is_none(), "the JWKS holds no private part");
    }

    #[test]
    fn each_refusal_says_what_to_do() {
        let hint = |method, description| refusal_hint(method, "the-client", description);
        // Keycloak 26's error_description for each invalid_client / unauthorized_client case.
        let cases = [
            (
                AuthMethod::Secret,
                "Invalid client or Invalid client credentials",
                "--auth secret",
            ),
            (AuthMethod::SecretJwt, "Token reuse detected", "fresh jti"),
            (AuthMethod::PrivateKeyJwt, "Token is not active", "clock"),
            (
                AuthMethod::PrivateKeyJwt,
                "Token was issued in the future",
                "clock",
            ),
            (
                AuthMethod::SecretJwt,
                "Invalid token audience",
                "issuer identifier",
            ),
            (
                AuthMethod::PrivateKeyJwt,
                "Unable to load public key",
                "--auth private-key-jwt",
            ),
            (
                AuthMethod::SecretJwt,
                "Client authentication with client secret signed JWT failed: Signature on JWT token by client secret failed validation",
                "--auth secret-jwt",
            ),
            (
                AuthMethod::Secret,
                "Parameter client_assertion_type is missing",
                "another method",
            ),
            (
                AuthMethod::Mtls,
                "Invalid client or Invalid client credentials",
                "x509.subjectdn",
            ),
            (AuthMethod::Secret, "DPoP proof is missing", "--bind dpop"),
            (
                AuthMethod::Secret,
                "DPoP proof has already been used",
                "single-use",
            ),
        ];
        for (method, description, expected) in cases {
            let line = hint(method, description);
            assert!(line.contains(expected), "{description}: {line}");
            assert!(!line.contains('\n'), "one line: {line}");
        }
    }

    #[test]
    fn only_client_secret_post_puts_the_secret_in_the_form() {
        let secret = Secret::new("s3cret-value");
        let basic = Credential::SecretBasic(secret.clone());
        let fields = basic.form_fields("c", "a").unwrap();
        assert!(fields.iter().all(|(_, v)| v != "s3cret-value"));
        assert_eq!(basic.basic_auth("c"), Some(("c", "s3cret-value")));
        let post = Credential::SecretPost(secret);
        assert!(post.basic_auth("c").is_none());
        let fields = post.form_fields("c", "a").unwrap();
        assert!(fields.contains(&("client_secret", "s3cret-value".into())));
        assert!(!format!("{post:?}").contains("s3cret"));
    }
}
