//! The seed's endpoints: users in memory, each route with its policy in its signature.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::policy::{Auth, Authorized, Policy};
use playbook_realm::{READ_USER, READONLY_ROLE, USERS_ADMIN, USERS_READ, WRITE_USER};

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

/// The API routes plus `/healthz` (liveness, no auth) and `/readyz` (signing keys loaded).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/users", get(list_users))
        .route("/api/user/{id}", get(get_user))
        .route("/api/user", axum::routing::post(create_user))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
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
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let Json(new) = body.map_err(|rejection| {
        // Too large stays 413; every other unreadable body is the client's mistake: 400.
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::Body(status, rejection.body_text())
    })?;
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

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

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
