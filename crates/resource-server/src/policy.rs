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

use crate::introspect::{IntrospectionError, Introspector};
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
}

/// A request whose token is valid, bound as required, and satisfies `P`.
pub struct Authorized<P> {
    pub token: Arc<VerifiedToken>,
    policy: PhantomData<P>,
}

impl<S, P> FromRequestParts<S> for Authorized<P>
where
    P: Policy,
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthError> {
        let auth = Arc::<Auth>::from_ref(state);
        // A forged certificate header is refused before anything else is looked at.
        let certificate = client_certificate(&auth, parts)?;
        let presented = bearer_token(parts)?;
        let token = auth.validator.validate(presented).await.map_err(|error| {
            // Debug, not Display: kid, alg and iss come from the token and are escaped this way.
            tracing::info!(?error, "rejected access token");
            AuthError::InvalidToken(error.summary())
        })?;
        check_binding(auth.binding, &token, certificate.as_deref())?;
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
        Ok(Self {
            token,
            policy: PhantomData,
        })
    }
}

/// The token of an `Authorization: Bearer` header. No header, or another scheme, is "no token".
fn bearer_token(parts: &Parts) -> Result<&str, AuthError> {
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
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NoToken);
    }
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(AuthError::InvalidRequest("malformed bearer token"));
    }
    Ok(token)
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
            peer.is_some_and(|der| playbook_certs::thumbprint_s256(der) == *thumbprint)
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

/// RFC 8705 section 3: a bound token is only valid with the certificate it is bound to.
pub fn check_binding(
    mode: BindingMode,
    token: &VerifiedToken,
    certificate: Option<&[u8]>,
) -> Result<(), AuthError> {
    let reject = |why: &'static str| {
        tracing::info!(kid = %token.kid, why, "rejected access token");
        Err(AuthError::InvalidToken(why))
    };
    match (mode, &token.x5t_s256, certificate) {
        (BindingMode::Off, _, _) => Ok(()),
        (_, Some(bound), Some(der)) if *bound == playbook_certs::thumbprint_s256(der) => Ok(()),
        (_, Some(_), Some(_)) => reject("token is bound to another client certificate"),
        (_, Some(_), None) => {
            reject("token is certificate-bound but no client certificate was presented")
        }
        (BindingMode::Required, None, _) => reject("token is not certificate-bound"),
        (BindingMode::WhenPresent, None, _) => Ok(()),
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

/// The RFC 6750 section 3 answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No credentials: 401 with a bare `Bearer` challenge.
    NoToken,
    /// 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// 401 `invalid_token`, with a fixed description (never text from the token).
    InvalidToken(&'static str),
    /// 403 `insufficient_scope`, naming the scopes the route accepts.
    InsufficientScope {
        scope: String,
        missing_role: Option<&'static str>,
    },
    /// 503: introspection mode cannot ask Keycloak, so the token is neither good nor bad yet.
    Unavailable,
    /// 401: a client certificate header from someone other than the trusted reverse proxy.
    UntrustedForwarding,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        if self == Self::Unavailable {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                axum::Json(serde_json::json!({
                    "error": "temporarily_unavailable",
                    "message": "cannot ask the authorization server whether the token is active; retry shortly",
                })),
            )
                .into_response();
        }
        let (status, challenge, message) = match &self {
            Self::Unavailable => unreachable!("answered above"),
            Self::NoToken => (
                StatusCode::UNAUTHORIZED,
                r#"Bearer realm="oauth2-playbook""#.to_owned(),
                "an access token is required".to_owned(),
            ),
            Self::InvalidRequest(why) => (
                StatusCode::BAD_REQUEST,
                format!(
                    r#"Bearer realm="oauth2-playbook", error="invalid_request", error_description="{why}""#
                ),
                why.to_string(),
            ),
            Self::UntrustedForwarding => (
                StatusCode::UNAUTHORIZED,
                r#"Bearer realm="oauth2-playbook", error="invalid_token", error_description="client certificate header not from the trusted proxy""#.to_owned(),
                "client certificate header not from the trusted proxy".to_owned(),
            ),
            Self::InvalidToken(why) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    r#"Bearer realm="oauth2-playbook", error="invalid_token", error_description="{why}""#
                ),
                why.to_string(),
            ),
            Self::InsufficientScope {
                scope,
                missing_role,
            } => {
                let why = match missing_role {
                    Some(role) => format!("requires realm role {role}"),
                    None => format!("requires one of the scopes: {scope}"),
                };
                (
                    StatusCode::FORBIDDEN,
                    format!(
                        r#"Bearer realm="oauth2-playbook", error="insufficient_scope", scope="{scope}", error_description="{why}""#
                    ),
                    why,
                )
            }
        };
        let error = match &self {
            Self::NoToken => "unauthorized",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(_) | Self::UntrustedForwarding => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::Unavailable => "temporarily_unavailable",
        };
        let mut response = (
            status,
            axum::Json(serde_json::json!({ "error": error, "message": message })),
        )
            .into_response();
        let value = HeaderValue::from_str(&challenge)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
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
