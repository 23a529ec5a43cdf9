//! Who may call what: the [`Authorized`] extractor and the RFC 6750 answers when they may not.
//!
//! A handler names its [`Policy`] in its signature, so the requirement sits where the route is
//! defined and cannot be forgotten by a router refactoring:
//!
//! ```text
//! async fn list_users(_: Authorized<ReadUsers>) -> Json<Vec<User>> { ... }
//! ```

use std::borrow::Cow;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_server::tls::TlsInfo;

use playbook_dpop::{Nonces, ProofRules, REPLAY_CACHE_CAPACITY, Replay, ReplayCache};
use url::Url;

use crate::config::DpopConfig;
use crate::introspect::{IntrospectionError, Introspector};
use crate::signed::{SignedKey, SignedRef};
use crate::token::{TokenError, Validator, VerifiedToken};
use crate::{BindingMode, ClientCertSource, ProxyTrust};

/// A route's requirement: a realm role (from `realm_access.roles` only) and at least one of the
/// scopes, each compared as a whole space-separated token of `scope`.
pub trait Policy: Send + Sync + 'static {
    const REALM_ROLE: Option<&'static str>;
    const ANY_SCOPE: &'static [&'static str];
}

/// Token validation plus binding, shared by all routes.
pub struct Auth {
    pub validator: Validator,
    pub binding: BindingMode,
    /// Introspection mode: Keycloak is asked whether a valid token is still active.
    pub introspector: Option<Introspector>,
    /// Where a request's client certificate comes from.
    pub client_cert: ClientCertSource,
    /// The CA a forwarded client certificate must chain to, checked again behind the proxy.
    pub ca_pem: String,
    /// DPoP proofs: how they are checked, the proofs already seen, the nonces handed out.
    /// `None` where the binding mode refuses the `DPoP` scheme.
    pub dpop: Option<Dpop>,
    /// The URL clients call this server at, when it is not the one their requests name (a
    /// proxy that rewrites `Host`): the base of a proof's `htu` and of the metadata's `resource`.
    pub public_url: Option<Url>,
    /// The thumbprints of the client certificates seen, for the certificate binding.
    pub thumbprints: Thumbprints,
}

/// RFC 8705 thumbprints of client certificates, remembered by the certificate. A client
/// presents the same certificate on every request of its connection: computing its SHA-256 and
/// base64 each time made a bound request cost 0.50 µs more than a bearer one in criterion's
/// binding benchmark, the lookup 0.13 µs (docs/dpop.md, "What it costs"). Only certificates the TLS handshake (or the CA check of a forwarded
/// one, or the proxy's own) accepted are looked up; a full memo makes room one entry at a time.
pub struct Thumbprints {
    entries: quick_cache::sync::Cache<SignedKey, Arc<str>>,
}

/// Clients whose certificates are remembered: a playbook has a handful, a busy gateway's
/// resource server hundreds.
const THUMBPRINTS_REMEMBERED: usize = 1024;

impl Default for Thumbprints {
    fn default() -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(THUMBPRINTS_REMEMBERED),
        }
    }
}

impl Thumbprints {
    pub fn of(&self, der: &[u8]) -> Arc<str> {
        if let Some(thumbprint) = self.entries.get(&SignedRef(der)) {
            return thumbprint;
        }
        let thumbprint: Arc<str> = playbook_certs::thumbprint_s256(der).into();
        (self.entries).insert(SignedKey::new(der), thumbprint.clone());
        thumbprint
    }
}

/// The DPoP checks' state (RFC 9449 section 4.3 and 11.1).
pub struct Dpop {
    pub rules: ProofRules,
    pub replay: ReplayCache,
    pub nonces: Option<Nonces>,
}

impl Dpop {
    pub fn new(config: &DpopConfig) -> Self {
        Self {
            replay: ReplayCache::new(config.rules.replay_window(), REPLAY_CACHE_CAPACITY),
            rules: config.rules.clone(),
            nonces: config.nonce.then(Nonces::default),
        }
    }
}

/// A request whose token is valid, bound as required, and satisfies `P`.
pub struct Authorized<P> {
    pub token: Arc<VerifiedToken>,
    policy: PhantomData<P>,
}

/// How the token came: `Authorization: Bearer` (RFC 6750) or `Authorization: DPoP` with a
/// `DPoP` proof header (RFC 9449 section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

impl<S, P> FromRequestParts<S> for Authorized<P>
where
    P: Policy,
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Refusal> {
        let auth = Arc::<Auth>::from_ref(state);
        let mut scheme = None;
        let verdict = authorize::<P>(&auth, parts, &mut scheme).await;
        match verdict {
            Ok(token) => Ok(Self {
                token,
                policy: PhantomData,
            }),
            Err(error) => Err(Refusal::new(error, scheme, &auth, parts)),
        }
    }
}

/// Every check, in the order a refusal is best explained; `scheme` says how the token came once
/// that is known, so the refusal's challenge names the scheme the client used.
async fn authorize<P: Policy>(
    auth: &Auth,
    parts: &Parts,
    scheme: &mut Option<Scheme>,
) -> Result<Arc<VerifiedToken>, AuthError> {
    // A forged certificate header is refused before anything else is looked at.
    let certificate = client_certificate(auth, parts)?;
    let (used, presented) = presented_token(auth, parts)?;
    *scheme = Some(used);
    let token = auth.validator.validate(presented).await.map_err(|error| {
        // Debug, not Display: kid, alg and iss come from the token and are escaped this way.
        tracing::info!(?error, "rejected access token");
        AuthError::InvalidToken(error.summary())
    })?;
    if used == Scheme::Dpop {
        check_proof(auth, parts, presented, &token)?;
    }
    // Only a certificate-bound token needs its certificate's thumbprint.
    let thumbprint = (certificate)
        .filter(|_| token.x5t_s256.is_some() && auth.binding != BindingMode::Off)
        .map(|der| auth.thumbprints.of(&der));
    check_binding(auth.binding, &token, thumbprint.as_deref(), used)?;
    if let Some(introspector) = &auth.introspector {
        introspector
            .check(presented, token.expires_at)
            .await
            .map_err(|error| match error {
                IntrospectionError::Inactive => AuthError::InvalidToken("token is not active"),
                IntrospectionError::Unavailable(_) => AuthError::Unavailable,
            })?;
    }
    check_policy::<P>(&token)?;
    Ok(token)
}

/// The token of the `Authorization` header and its scheme. No header, or a scheme this server
/// does not accept, is "no token" (RFC 6750 section 3.1: the answer then carries no error).
fn presented_token<'a>(auth: &Auth, parts: &'a Parts) -> Result<(Scheme, &'a str), AuthError> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::NoToken);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidRequest("Authorization header is not ASCII"))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(AuthError::NoToken);
    };
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case(playbook_dpop::SCHEME) && auth.dpop.is_some() {
        Scheme::Dpop
    } else {
        return Err(AuthError::NoToken);
    };
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(AuthError::InvalidRequest("malformed access token"));
    }
    Ok((scheme, token))
}

/// RFC 9449 section 4.3 and 7.1: the request's one `DPoP` proof, made for this request and this
/// token by the key the token is bound to, never seen before.
fn check_proof(
    auth: &Auth,
    parts: &Parts,
    token: &str,
    verified: &VerifiedToken,
) -> Result<(), AuthError> {
    let dpop = auth
        .dpop
        .as_ref()
        .expect("the DPoP scheme is only read when accepted");
    let mut proofs = parts.headers.get_all(playbook_dpop::HEADER).iter();
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return Err(AuthError::InvalidDpopProof(
            "exactly one DPoP proof header is required",
        ));
    };
    let proof = proof
        .to_str()
        .map_err(|_| AuthError::InvalidDpopProof("malformed proof"))?;
    let url = request_url(auth, parts)?;
    let now = playbook_keycloak::unix_now();
    let proof = (dpop.rules)
        .verify(proof, parts.method.as_str(), &url, Some(token), now)
        .map_err(|error| {
            tracing::info!(?error, "rejected DPoP proof");
            AuthError::InvalidDpopProof(error.summary())
        })?;
    if let Some(nonces) = &dpop.nonces
        && !proof
            .nonce
            .as_deref()
            .is_some_and(|n| nonces.accepts(n, now))
    {
        return Err(AuthError::UseDpopNonce(nonces.current(now)));
    }
    match &verified.jkt {
        None => {
            return Err(AuthError::InvalidToken(
                "token is not DPoP-bound but was presented with the DPoP scheme",
            ));
        }
        Some(bound) if *bound != proof.jkt => {
            tracing::info!(kid = %verified.kid, "rejected DPoP proof by another key than the token's");
            return Err(AuthError::InvalidDpopProof(
                "proof is signed by another key than the token is bound to",
            ));
        }
        Some(_) => {}
    }
    match dpop.replay.check(&proof.jkt, &proof.jti) {
        Replay::Fresh => Ok(()),
        Replay::Replayed => {
            tracing::info!(kid = %verified.kid, "rejected a replayed DPoP proof");
            Err(AuthError::InvalidDpopProof("proof was used before"))
        }
        Replay::Full => Err(AuthError::ReplayCacheFull),
    }
}

/// The URL of the request as its client named it, the `htu` a proof must carry: under this
/// server's public URL when it has one, else under the `Host` the request was sent to.
fn request_url(auth: &Auth, parts: &Parts) -> Result<Url, AuthError> {
    let origin = resource_of(auth, parts)?;
    Url::parse(&format!("{origin}{}", parts.uri.path()))
        .map_err(|_| AuthError::InvalidRequest("request path not usable in a URL"))
}

/// Where clients call this server (RFC 9728's resource identifier, no trailing slash): its
/// public URL when it has one, else `https://` and the `Host` the request was sent to.
pub fn resource_of(auth: &Auth, parts: &Parts) -> Result<String, AuthError> {
    if let Some(public) = &auth.public_url {
        return Ok(public.as_str().trim_end_matches('/').to_owned());
    }
    let host = (parts.headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .ok_or(AuthError::InvalidRequest("request names no host"))?;
    // It goes into a quoted challenge parameter: nothing that could end or extend it.
    if host.contains(['"', '\\', ',', ' ']) {
        return Err(AuthError::InvalidRequest(
            "request host not usable in a URL",
        ));
    }
    let url = Url::parse(&format!("https://{host}/"))
        .map_err(|_| AuthError::InvalidRequest("request host not usable in a URL"))?;
    // The client says which host it called twice, in TLS (SNI) and in `Host`; a proof's `htu`
    // is only as good as the origin it is compared with, so the two must agree where both
    // exist (a client calling an IP address sends no SNI). `--public-url` fixes the origin.
    let sni = (parts.extensions.get::<Arc<TlsInfo>>()).and_then(|tls| tls.server_name.as_deref());
    if let (Some(sni), Some(named)) = (sni, url.host_str())
        && !sni.eq_ignore_ascii_case(named)
    {
        return Err(AuthError::InvalidRequest(
            "the Host header names another server than TLS did",
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// The client certificate of a request, from where this server reads it: its TLS connection, or
/// the reverse proxy's header, believed only when the proxy sent it. Behind the proxy the TLS
/// peer is the proxy itself, so its certificate is never taken for the client's.
fn client_certificate<'a>(
    auth: &Auth,
    parts: &'a Parts,
) -> Result<Option<Cow<'a, [u8]>>, AuthError> {
    let peer = parts
        .extensions
        .get::<Arc<TlsInfo>>()
        .and_then(|tls| tls.peer_certificates.first());
    let ClientCertSource::Header { name, trust } = &auth.client_cert else {
        return Ok(peer.map(|der| Cow::Borrowed(der.as_slice())));
    };
    let mut values = parts.headers.get_all(name.as_str()).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let address = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let from_proxy = match trust {
        ProxyTrust::Certificate { thumbprint } => {
            peer.is_some_and(|der| *auth.thumbprints.of(der) == **thumbprint)
        }
        // Canonical on both sides: a dual-stack listener sees 127.0.0.2 as ::ffff:127.0.0.2.
        ProxyTrust::Addresses(allowed) => address.is_some_and(|ip| {
            allowed
                .iter()
                .any(|trusted| trusted.to_canonical() == ip.to_canonical())
        }),
    };
    if !from_proxy {
        let peer = peer.map(|der| playbook_certs::thumbprint_s256(der));
        tracing::warn!(header = %name, ?address, peer_certificate = ?peer, "refused a client certificate header from a peer that is not the trusted proxy");
        return Err(AuthError::UntrustedForwarding);
    }
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(
            "more than one client certificate header",
        ));
    }
    let der = playbook_certs::der::from_forwarded(value.as_bytes()).ok_or(
        AuthError::InvalidRequest("malformed client certificate header"),
    )?;
    playbook_certs::der::verify_forwarded_client(&der, &auth.ca_pem).map_err(|why| {
        tracing::warn!(header = %name, why, "refused the proxy's forwarded client certificate");
        AuthError::InvalidRequest("forwarded client certificate not accepted")
    })?;
    Ok(Some(Cow::Owned(der)))
}

/// A bound token is only valid with what it is bound to: the certificate it names (RFC 8705
/// section 3), checked here against the request's; the DPoP key it names (RFC 9449 section 7),
/// proved by the request's proof ([`check_proof`]), so a DPoP-bound token under the `Bearer`
/// scheme is a downgrade (section 7.2). Then what the mode requires of every token.
pub fn check_binding(
    mode: BindingMode,
    token: &VerifiedToken,
    certificate: Option<&str>,
    scheme: Scheme,
) -> Result<(), AuthError> {
    let reject = |why: &'static str| {
        tracing::info!(kid = %token.kid, why, "rejected access token");
        Err(AuthError::InvalidToken(why))
    };
    if mode == BindingMode::Off {
        return Ok(());
    }
    match (&token.x5t_s256, certificate) {
        (Some(bound), Some(thumbprint)) if bound == thumbprint => {}
        (Some(_), Some(_)) => return reject("token is bound to another client certificate"),
        (Some(_), None) => {
            return reject("token is certificate-bound but no client certificate was presented");
        }
        (None, _) => {}
    }
    if token.jkt.is_some() && scheme == Scheme::Bearer {
        return reject("token is DPoP-bound but was presented as a bearer token");
    }
    match mode {
        BindingMode::Required if token.x5t_s256.is_none() && token.jkt.is_none() => {
            reject("token is not sender-constrained (neither certificate- nor DPoP-bound)")
        }
        BindingMode::RequiredMtls if token.x5t_s256.is_none() => {
            reject("token is not certificate-bound")
        }
        BindingMode::RequiredDpop if token.jkt.is_none() => reject("token is not DPoP-bound"),
        _ => Ok(()),
    }
}

fn check_policy<P: Policy>(token: &VerifiedToken) -> Result<(), AuthError> {
    let insufficient = |missing_role| AuthError::InsufficientScope {
        scope: P::ANY_SCOPE.join(" "),
        missing_role,
    };
    if let Some(role) = P::REALM_ROLE
        && !token.has_realm_role(role)
    {
        tracing::info!(sub = ?token.subject, role, "token lacks the realm role");
        return Err(insufficient(Some(role)));
    }
    if !P::ANY_SCOPE.iter().any(|s| token.has_scope(s)) {
        tracing::info!(sub = ?token.subject, needed = ?P::ANY_SCOPE, "token lacks the scope");
        return Err(insufficient(None));
    }
    Ok(())
}

/// Why a request is refused: RFC 6750 section 3's answers and RFC 9449 section 7.1's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials: 401 with bare challenges.
    NoToken,
    /// 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// 401 `invalid_token`, with a fixed description (never text from the token).
    InvalidToken(&'static str),
    /// 401 `invalid_dpop_proof`, with a fixed description (never text from the proof).
    InvalidDpopProof(&'static str),
    /// 401 `use_dpop_nonce`, with the nonce to put in the next proof.
    UseDpopNonce(String),
    /// 403 `insufficient_scope`, naming the scopes the route accepts.
    InsufficientScope {
        scope: String,
        missing_role: Option<&'static str>,
    },
    /// 503: introspection mode cannot ask Keycloak, so the token is neither good nor bad yet.
    Unavailable,
    /// 503: the DPoP replay cache is full, so no proof can be accepted until it makes room.
    ReplayCacheFull,
    /// 401: a client certificate header from someone other than the trusted reverse proxy.
    UntrustedForwarding,
}

impl AuthError {
    /// The OAuth error code and the fixed words the answer's body and challenge carry.
    fn code_and_words(&self) -> (&'static str, String) {
        match self {
            Self::NoToken => ("unauthorized", "an access token is required".into()),
            Self::InvalidRequest(why) => ("invalid_request", why.to_string()),
            Self::InvalidToken(why) => ("invalid_token", why.to_string()),
            Self::InvalidDpopProof(why) => (playbook_dpop::INVALID_DPOP_PROOF, why.to_string()),
            Self::UseDpopNonce(_) => (
                playbook_dpop::USE_DPOP_NONCE,
                "the DPoP proof must carry this server's nonce (DPoP-Nonce)".into(),
            ),
            Self::UntrustedForwarding => (
                "invalid_token",
                "client certificate header not from the trusted proxy".into(),
            ),
            Self::InsufficientScope {
                scope,
                missing_role,
            } => (
                "insufficient_scope",
                match missing_role {
                    Some(role) => format!("requires realm role {role}"),
                    None => format!("requires one of the scopes: {scope}"),
                },
            ),
            Self::Unavailable => (
                "temporarily_unavailable",
                "cannot ask the authorization server whether the token is active; retry shortly"
                    .into(),
            ),
            Self::ReplayCacheFull => (
                "temporarily_unavailable",
                "too many DPoP proofs to remember right now; retry shortly".into(),
            ),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::Unavailable | Self::ReplayCacheFull => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// A refused request's answer: the error, and a challenge for every scheme this server accepts
/// (RFC 9110 section 11.6.1), the error on the one the client used, each pointing at the
/// resource's metadata (RFC 9728 section 5.1).
#[derive(Debug)]
pub struct Refusal {
    pub error: AuthError,
    scheme: Option<Scheme>,
    bearer: bool,
    dpop_algs: Option<String>,
    resource_metadata: Option<String>,
    /// For a 503, when to try again, in seconds: Keycloak asked again shortly, or room in a
    /// full replay cache, which forgets its oldest generation once per replay window.
    retry_after: u64,
}

impl Refusal {
    pub fn new(error: AuthError, scheme: Option<Scheme>, auth: &Auth, parts: &Parts) -> Self {
        let bearer = auth.binding.accepts_bearer_scheme();
        Self {
            retry_after: match (&error, &auth.dpop) {
                (AuthError::ReplayCacheFull, Some(dpop)) => dpop.rules.replay_window().as_secs(),
                _ => 5,
            },
            error,
            // A server that takes only DPoP answers a Bearer attempt on DPoP's challenge.
            scheme: scheme.map(|s| if bearer { s } else { Scheme::Dpop }),
            bearer,
            dpop_algs: auth.dpop.as_ref().map(|d| d.rules.algs()),
            resource_metadata: resource_of(auth, parts)
                .ok()
                .map(|origin| format!("{origin}{}", crate::api::METADATA)),
        }
    }

    /// The challenge of `scheme`, with the error when the client used it.
    fn challenge(&self, scheme: Scheme, extra: Option<String>) -> String {
        let mut params = Vec::new();
        if scheme == Scheme::Bearer {
            params.push(format!(r#"realm="{REALM}""#));
        }
        if let Some(extra) = extra {
            params.push(extra);
        }
        let used = self.scheme.unwrap_or(match self.bearer {
            true => Scheme::Bearer,
            false => Scheme::Dpop,
        });
        if used == scheme && self.error != AuthError::NoToken {
            let (code, words) = self.error.code_and_words();
            params.push(format!(r#"error="{code}""#));
            if let AuthError::InsufficientScope { scope, .. } = &self.error {
                params.push(format!(r#"scope="{scope}""#));
            }
            params.push(format!(r#"error_description="{words}""#));
        }
        if let Some(metadata) = &self.resource_metadata {
            params.push(format!(r#"resource_metadata="{metadata}""#));
        }
        let name = match scheme {
            Scheme::Bearer => "Bearer",
            Scheme::Dpop => playbook_dpop::SCHEME,
        };
        match params.is_empty() {
            true => name.to_owned(),
            false => format!("{name} {}", params.join(", ")),
        }
    }
}

/// The `realm` of the `Bearer` challenge.
const REALM: &str = "oauth2-playbook";

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (error, message) = self.error.code_and_words();
        let mut response = (
            self.error.status(),
            axum::Json(serde_json::json!({ "error": error, "message": message })),
        )
            .into_response();
        let headers = response.headers_mut();
        if matches!(
            self.error,
            AuthError::Unavailable | AuthError::ReplayCacheFull
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after));
            return response;
        }
        let mut challenges = Vec::new();
        if self.bearer {
            challenges.push(self.challenge(Scheme::Bearer, None));
        }
        if let Some(algs) = &self.dpop_algs {
            challenges.push(self.challenge(Scheme::Dpop, Some(format!(r#"algs="{algs}""#))));
        }
        for challenge in challenges {
            let scheme = challenge.split(' ').next().unwrap_or("Bearer").to_owned();
            let value = HeaderValue::from_str(&challenge)
                .or_else(|_| HeaderValue::from_str(&scheme))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
            headers.append(header::WWW_AUTHENTICATE, value);
        }
        if let AuthError::UseDpopNonce(nonce) = &self.error
            && let Ok(value) = HeaderValue::from_str(nonce)
        {
            headers.insert(playbook_dpop::NONCE_HEADER, value);
        }
        response
    }
}

impl TokenError {
    /// A fixed description for the `WWW-Authenticate` header. Only fixed text goes there: the
    /// detailed message can carry attacker-chosen values (kid, alg, iss).
    pub fn summary(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "token too large",
            Self::Segments(_) | Self::Header(_) | Self::SignatureEncoding => "malformed token",
            Self::Algorithm(_) => "signature algorithm not accepted",
            Self::Critical(_) => "unsupported critical header",
            Self::MissingKid | Self::UnknownKid(_) | Self::KeyMismatch { .. } => {
                "unknown signing key"
            }
            Self::Signature(_) => "invalid signature",
            Self::Missing(_) | Self::Claims => "missing or malformed claim",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::Issuer => "wrong issuer",
            Self::Audience => "wrong audience",
            Self::Type(_) => "not an access token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_remembered_by_all_its_bytes_not_its_ending() {
        let thumbprints = Thumbprints::default();
        let ending = [7u8; 64];
        let one = [&[1u8; 300][..], &ending].concat();
        let other = [&[2u8; 300][..], &ending].concat();
        assert_eq!(*thumbprints.of(&one), playbook_certs::thumbprint_s256(&one));
        assert_eq!(
            *thumbprints.of(&other),
            playbook_certs::thumbprint_s256(&other)
        );
        assert_eq!(*thumbprints.of(&one), playbook_certs::thumbprint_s256(&one));
        assert_eq!(*thumbprints.of(&[]), playbook_certs::thumbprint_s256(&[]));
    }
}
