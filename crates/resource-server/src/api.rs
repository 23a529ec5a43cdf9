//! The seed's endpoints: users in memory, each route with its policy in its signature.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRef, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::BindingMode;
use crate::policy::{Auth, Authorized, Policy, resource_of};
use playbook_keycloak::{READ_USER, READONLY_ROLE, USERS_ADMIN, USERS_READ, WRITE_USER};

/// Request bodies are small JSON objects; anything bigger is refused before it is read.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `GET /api/users`: realm role `oauth2-playbook-readonly` and `users:read` (or `users:admin`).
pub struct ReadUsers;
impl Policy for ReadUsers {
    const REALM_ROLE: Option<&'static str> = Some(READONLY_ROLE);
    const ANY_SCOPE: &'static [&'static str] = &[USERS_READ, USERS_ADMIN];
}

/// `GET /api/user/{id}`: realm role `oauth2-playbook-readonly` and `read:user` (or `users:admin`).
pub struct ReadUser;
impl Policy for ReadUser {
    const REALM_ROLE: Option<&'static str> = Some(READONLY_ROLE);
    const ANY_SCOPE: &'static [&'static str] = &[READ_USER, USERS_ADMIN];
}

/// `POST /api/user`: `write:user` (or `users:admin`). No realm role: the only realm role is
/// *read-only*, so requiring it for writes would be a contradiction; the scope alone decides.
pub struct WriteUser;
impl Policy for WriteUser {
    const REALM_ROLE: Option<&'static str> = None;
    const ANY_SCOPE: &'static [&'static str] = &[WRITE_USER, USERS_ADMIN];
}

/// One protected route and who may call it: the one table the router, the CLI's route list and
/// the docs check read. A handler's `Authorized<P>` and its row name the same policy `P`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub realm_role: Option<&'static str>,
    pub any_scope: &'static [&'static str],
}

impl Route {
    const fn guarded<P: Policy>(method: &'static str, path: &'static str) -> Self {
        Self {
            method,
            path,
            realm_role: P::REALM_ROLE,
            any_scope: P::ANY_SCOPE,
        }
    }

    /// "realm role R + scope a (or b)", as the route list and the docs say it.
    pub fn requirement(&self) -> String {
        let (first, others) = self.any_scope.split_first().expect("a route names a scope");
        let scopes = match others {
            [] => format!("scope {first}"),
            _ => format!("scope {first} (or {})", others.join(", ")),
        };
        match self.realm_role {
            Some(role) => format!("realm role {role} + {scopes}"),
            None => scopes,
        }
    }
}

pub const LIST_USERS: Route = Route::guarded::<ReadUsers>("GET", "/api/users");
pub const GET_USER: Route = Route::guarded::<ReadUser>("GET", "/api/user/{id}");
pub const CREATE_USER: Route = Route::guarded::<WriteUser>("POST", "/api/user");
/// Every protected route.
pub const ROUTES: [Route; 3] = [LIST_USERS, GET_USER, CREATE_USER];
/// The routes anyone may call: liveness, readiness (200 once signing keys are loaded), and the
/// resource's metadata.
pub const OPEN_ROUTES: [&str; 3] = [HEALTH, READY, METADATA];
/// Liveness: answers 200 while the process serves.
pub const HEALTH: &str = "/healthz";
/// Readiness: 200 once the realm's signing keys are loaded, 503 until then.
pub const READY: &str = "/readyz";
/// RFC 9728 protected-resource metadata: which authorization server issues tokens for this
/// API, and which sender constraints it checks, for clients to discover instead of being told.
pub const METADATA: &str = "/.well-known/oauth-protected-resource";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub email: String,
}

/// Shared state: authentication and the user store.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Auth>,
    pub users: Arc<RwLock<BTreeMap<Uuid, User>>>,
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl AppState {
    /// The store starts with one sample user, like the seed.
    pub fn new(auth: Arc<Auth>) -> Self {
        let sample = User {
            id: Uuid::new_v4(),
            name: "Ada Lovelace".into(),
            email: "ada@oauth2-playbook.dev".into(),
        };
        Self {
            auth,
            users: Arc::new(RwLock::new(BTreeMap::from([(sample.id, sample)]))),
        }
    }
}

/// The API routes plus `/healthz` (liveness, no auth), `/readyz` (signing keys loaded) and the
/// resource's metadata.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(LIST_USERS.path, get(list_users))
        .route(GET_USER.path, get(get_user))
        .route(CREATE_USER.path, axum::routing::post(create_user))
        .route(
            HEALTH,
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route(READY, get(ready))
        .route(METADATA, get(metadata))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn list_users(_: Authorized<ReadUsers>, State(state): State<AppState>) -> Json<Vec<User>> {
    Json(all_users(&state))
}

/// The read itself, without the authorization: shared with the benchmark's no-auth route.
pub fn all_users(state: &AppState) -> Vec<User> {
    state
        .users
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect()
}

async fn get_user(
    _: Authorized<ReadUser>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::BadRequest(format!("`{}` is not a UUID", truncate(&id))))?;
    let users = state.users.read().unwrap_or_else(|e| e.into_inner());
    users
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or(ApiError::NotFound(id))
}

async fn create_user(
    _: Authorized<WriteUser>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(ApiError::Body(
            StatusCode::BAD_REQUEST,
            "expected a body of type application/json".into(),
        ));
    }
    let bytes = read_bounded(body).await?;
    let Json(new) = Json::<NewUser>::from_bytes(&bytes)
        .map_err(|rejection| ApiError::Body(StatusCode::BAD_REQUEST, rejection.body_text()))?;
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::BadRequest(
            "`name` must be 1 to 100 characters".into(),
        ));
    }
    let email = new.email.trim();
    let valid_email = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !valid_email {
        return Err(ApiError::BadRequest(
            "`email` must be an address like name@example.org".into(),
        ));
    }
    let user = User {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        email: email.to_owned(),
    };
    state
        .users
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(user.id, user.clone());
    Ok((StatusCode::CREATED, Json(user)))
}

async fn ready(State(state): State<AppState>) -> Response {
    let loaded = state.auth.validator.keys().has_keys();
    let status = if loaded {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": loaded, "signing_keys_loaded": loaded })),
    )
        .into_response()
}

/// RFC 9728 section 2 and 3.2, from the running configuration: the document cannot say
/// something the server does not do.
async fn metadata(State(state): State<AppState>, parts: Parts) -> Response {
    let auth = &state.auth;
    let resource = match resource_of(auth, &parts) {
        Ok(resource) => resource,
        Err(_) => {
            return ApiError::BadRequest("the request names no host".into()).into_response();
        }
    };
    let mut scopes: Vec<&str> = ROUTES
        .iter()
        .flat_map(|r| r.any_scope.iter().copied())
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    let mut document = serde_json::json!({
        "resource": resource,
        "authorization_servers": [auth.validator.issuer()],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "tls_client_certificate_bound_access_tokens": auth.binding.checks_certificates(),
        "dpop_bound_access_tokens_required": auth.binding == BindingMode::RequiredDpop,
    });
    if let Some(dpop) = &auth.dpop {
        let algs: Vec<&str> = dpop.rules.algorithms.iter().map(|a| a.name()).collect();
        document["dpop_signing_alg_values_supported"] = algs.into();
    }
    Json(document).into_response()
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Reads a request body of at most [`MAX_BODY_BYTES`]. A larger one is refused with 413, but
/// only after reading (and dropping) up to [`DRAIN_BYTES`] more of it for at most
/// [`DRAIN_TIME`]: closing the connection while a client is still sending makes clients such as
/// curl report a broken pipe instead of the 413 we answered.
async fn read_bounded(mut body: Body) -> Result<Bytes, ApiError> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    let too_large = || {
        ApiError::Body(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY_BYTES} bytes"),
        )
    };
    let drained = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map(|f| f.into_data().unwrap_or_default()) else {
                break;
            };
            seen += data.len();
            if seen <= MAX_BODY_BYTES {
                kept.extend_from_slice(&data);
            } else if seen > MAX_BODY_BYTES + DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
    if seen > MAX_BODY_BYTES || drained.is_err() {
        return Err(too_large());
    }
    Ok(Bytes::from(kept))
}

/// How much of a refused body is still read, and for how long, so the client reads our 413.
pub const DRAIN_BYTES: usize = 1024 * 1024;
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Errors of the API itself (authorization errors are [`crate::policy::AuthError`]).
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    /// The body could not be read as the expected JSON (too large, wrong type, bad syntax).
    Body(StatusCode, String),
    NotFound(Uuid),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, "bad_request", message),
            Self::Body(status, message) => (status, "bad_request", message),
            Self::NotFound(id) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no user with id {id}"),
            ),
        };
        (
            status,
            Json(serde_json::json!({ "error": error, "message": message })),
        )
            .into_response()
    }
}

/// docs/resource-server.md cannot read [`ROUTES`]; this holds its endpoint table to it.
#[cfg(test)]
mod docs {
    use super::*;

    const DOC: &str = include_str!("../../../docs/resource-server.md");

    #[test]
    fn the_endpoint_table_lists_every_route_with_its_policy() {
        for route in ROUTES {
            let role = route
                .realm_role
                .map_or("–".to_owned(), |r| format!("`{r}`"));
            let scopes: Vec<String> = route.any_scope.iter().map(|s| format!("`{s}`")).collect();
            let row = format!(
                "| `{} {}` | {role} | {} |",
                route.method,
                route.path,
                scopes.join(", ")
            );
            assert!(
                DOC.lines().any(|l| l == row),
                "docs/resource-server.md lacks {row}"
            );
        }
        for path in OPEN_ROUTES {
            let row = format!("| `GET {path}` | no auth |");
            assert!(DOC.lines().any(|l| l.starts_with(&row)), "docs lack {row}");
        }
    }

    #[test]
    fn requirements_read_as_the_route_list_prints_them() {
        assert_eq!(
            LIST_USERS.requirement(),
            "realm role oauth2-playbook-readonly + scope users:read (or users:admin)"
        );
        assert_eq!(
            CREATE_USER.requirement(),
            "scope write:user (or users:admin)"
        );
    }
}
