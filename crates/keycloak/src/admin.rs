//! The Keycloak Admin API session: an admin token (renewed before its 60 s run out) and JSON calls.

use std::time::{Duration, Instant};

use playbook_trace::{Exchange, Party, Trace};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use url::Url;

use crate::KeycloakError;
use crate::realm::{ADMIN_CLI, KeycloakUrl, MASTER_REALM};
use playbook_https::{Answer, describe, send_recorded};

/// A string that never appears in logs or `Debug` output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself; call only where it is sent, never where it is printed.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Master-realm admin user and password.
#[derive(Debug, Clone)]
pub struct AdminCredentials {
    pub username: String,
    pub password: Secret,
}

impl AdminCredentials {
    pub fn new(username: impl Into<String>, password: Secret) -> Self {
        Self {
            username: username.into(),
            password,
        }
    }
}

/// Renew this long before the admin token expires, so a call never carries a dying token.
const RENEW_MARGIN: Duration = Duration::from_secs(10);

/// How long importing a realm may take, instead of the HTTPS client's 30 s for every other
/// call: the dearest thing Keycloak is asked, and the dearer the more realms it holds. The first
/// import on a Keycloak just started beside ~180 realms, its code not compiled yet, with a whole
/// test run on the machine's two cores, took over 30 s.
const REALM_IMPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// An Admin API session against one Keycloak, as the seed's `client/start.sh` step 1 opens it.
pub struct Admin {
    http: reqwest::Client,
    keycloak: KeycloakUrl,
    credentials: AdminCredentials,
    token: Mutex<Option<(Secret, Instant)>>,
    /// Where each exchange is recorded; the admin token itself never is.
    trace: Trace,
    /// The spare realms this session has not tried to claim yet, named at its first claim
    /// (see `spare.rs`).
    pub(crate) spares: Mutex<Option<crate::spare::SpareNames>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl Admin {
    pub fn new(
        keycloak: KeycloakUrl,
        credentials: AdminCredentials,
        ca_pem: &str,
    ) -> Result<Self, KeycloakError> {
        Ok(Self {
            http: playbook_https::https_client(ca_pem)?,
            keycloak,
            credentials,
            token: Mutex::new(None),
            trace: Trace::off(),
            spares: Mutex::new(None),
        })
    }

    /// Imports every realm it makes instead of claiming spares: for work whose realms are
    /// deleted after it (the training before a snapshot), which would use them up.
    pub fn importing(mut self) -> Self {
        *self.spares.get_mut() = Some(Default::default());
        self
    }

    /// Records this session's exchanges from now on (for the instructor's stage).
    pub fn traced(mut self, trace: Trace) -> Self {
        self.trace = trace;
        self
    }

    /// A new admin token even if the one held is still valid, as the seed's step 1 gets one.
    pub async fn renew_token(&self) -> Result<Secret, KeycloakError> {
        *self.token.lock().await = None;
        self.token().await
    }

    pub fn keycloak(&self) -> &KeycloakUrl {
        &self.keycloak
    }

    /// A valid admin token, fetched with the password grant of `admin-cli` when needed.
    pub async fn token(&self) -> Result<Secret, KeycloakError> {
        let mut cached = self.token.lock().await;
        if let Some((token, expires)) = cached.as_ref()
            && Instant::now() + RENEW_MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let url = self.keycloak.realm(MASTER_REALM).token();
        let mut exchange = Exchange::new(Party::Client, Party::Keycloak, "POST", url.as_str());
        exchange.purpose = format!(
            "password grant as {}, client {ADMIN_CLI}",
            self.credentials.username
        );
        let request = self.http.post(url.clone()).form(&[
            ("grant_type", "password"),
            ("client_id", ADMIN_CLI),
            ("username", &self.credentials.username),
            ("password", self.credentials.password.expose()),
        ]);
        let answer = send_recorded(&self.trace, exchange, request, |answer, exchange| {
            exchange.answer = if answer.is_success() {
                "admin token (not shown)".into()
            } else {
                answer.reason().into()
            };
        })
        .await
        .map_err(|e| unreachable(&url, &e))?;
        match answer.status.as_u16() {
            200 => {}
            400 | 401 => {
                return Err(KeycloakError::AdminRefused {
                    user: self.credentials.username.clone(),
                });
            }
            status => {
                return Err(KeycloakError::AdminApi {
                    method: "POST",
                    path: url.path().into(),
                    status,
                    body: answer.text(),
                });
            }
        }
        let body: TokenResponse = answer.json().map_err(|e| bad_answer(&url, &e))?;
        let token = Secret::new(body.access_token);
        *cached = Some((
            token.clone(),
            Instant::now() + Duration::from_secs(body.expires_in),
        ));
        Ok(token)
    }

    /// `GET` an Admin API path (relative to `admin/realms/`) as JSON; `None` on 404.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, KeycloakError> {
        let answer = self.send(None, reqwest::Method::GET, path, None).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let answer = check("GET", path, answer)?;
        answer
            .json()
            .map(Some)
            .map_err(|e| bad_answer(&answer.url, &e))
    }

    /// `POST` JSON to an Admin API path (relative to `admin/realms/`).
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<(), KeycloakError> {
        let answer = self
            .send(None, reqwest::Method::POST, path, Some(body))
            .await?;
        check("POST", path, answer).map(drop)
    }

    /// `POST` to an Admin API path without a body, reading the JSON it answers (e.g. a new
    /// client secret).
    pub async fn post_for<T: DeserializeOwned>(&self, path: &str) -> Result<T, KeycloakError> {
        let answer = self.send(None, reqwest::Method::POST, path, None).await?;
        let answer = check("POST", path, answer)?;
        answer.json().map_err(|e| bad_answer(&answer.url, &e))
    }

    /// `PUT` JSON to an Admin API path (relative to `admin/realms/`).
    pub async fn put(&self, path: &str, body: &serde_json::Value) -> Result<(), KeycloakError> {
        let answer = self
            .send(None, reqwest::Method::PUT, path, Some(body))
            .await?;
        check("PUT", path, answer).map(drop)
    }

    /// `DELETE` with a JSON body (role mappings take the roles to remove as the body).
    pub async fn delete(&self, path: &str, body: &serde_json::Value) -> Result<(), KeycloakError> {
        let answer = self
            .send(None, reqwest::Method::DELETE, path, Some(body))
            .await?;
        check("DELETE", path, answer).map(drop)
    }

    /// Creates a realm from its JSON representation (`POST /admin/realms`).
    pub async fn create_realm(&self, realm: &serde_json::Value) -> Result<(), KeycloakError> {
        let post = reqwest::Method::POST;
        let answer = self
            .send(Some(REALM_IMPORT_TIMEOUT), post, "", Some(realm))
            .await?;
        check("POST", "", answer).map(drop)
    }

    /// The names of every realm this admin may see (`GET /admin/realms`, brief: a test run's
    /// Keycloak holds ~150). An empty list for an admin Keycloak answers 403: one narrowed to
    /// the realms it creates ([`Admin::narrow_to_realm_creation`]) that holds none yet (an admin
    /// with no right at all is refused what it asks next just the same).
    ///
    /// Keycloak writes the list while reading the realms, and a realm renamed or deleted by
    /// another client meanwhile fails the whole answer with 400 "Cannot parse the JSON" (seen
    /// under a test run's load): such an answer is asked again, a few times.
    pub async fn realm_names(&self) -> Result<Vec<String>, KeycloakError> {
        const TRIES: usize = 4;
        let mut tried = 1;
        let realms: Vec<serde_json::Value> = loop {
            match self.get("?briefRepresentation=true").await {
                Err(KeycloakError::AdminApi {
                    status: 400, body, ..
                }) if tried < TRIES && body.contains("Cannot parse the JSON") => {
                    tried += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(KeycloakError::AdminApi { status: 403, .. }) => break Vec::new(),
                answer => break answer?.unwrap_or_default(),
            }
        };
        Ok(realms
            .iter()
            .filter_map(|r| r["realm"].as_str().map(String::from))
            .collect())
    }

    /// Trades this admin's master-realm `admin` role for `create-realm` alone: Keycloak then
    /// grants it every realm it creates from now on directly, and checks a direct grant with one
    /// set lookup. `admin` is a composite of ~17 roles for every realm the server holds, walked at
    /// each of an Admin API call's permission checks: beside 150 realms, looking a client up took
    /// ~8 ms of Keycloak's time this way and ~3 ms with direct grants. The admin can then manage
    /// only the realms it creates (and no longer the master realm): for a Keycloak made for tests.
    pub async fn narrow_to_realm_creation(&self) -> Result<(), KeycloakError> {
        let roles = format!("{MASTER_REALM}/roles");
        let create_realm: serde_json::Value = self
            .get(&format!("{roles}/create-realm"))
            .await?
            .unwrap_or_default();
        let admin_role: serde_json::Value = self
            .get(&format!("{roles}/admin"))
            .await?
            .unwrap_or_default();
        let username: String =
            url::form_urlencoded::byte_serialize(self.credentials.username.as_bytes()).collect();
        let users: Vec<serde_json::Value> = self
            .get(&format!(
                "{MASTER_REALM}/users?exact=true&username={username}"
            ))
            .await?
            .unwrap_or_default();
        let id = users
            .first()
            .and_then(|user| user["id"].as_str())
            .ok_or_else(|| KeycloakError::AdminApi {
                method: "GET",
                path: format!("{MASTER_REALM}/users"),
                status: 404,
                body: format!("no user {}", self.credentials.username),
            })?;
        let mappings = format!("{MASTER_REALM}/users/{id}/role-mappings/realm");
        // Granted first: without `admin`, it could no longer grant anything.
        self.post(&mappings, &serde_json::json!([create_realm]))
            .await?;
        self.delete(&mappings, &serde_json::json!([admin_role]))
            .await
    }

    /// Whether a realm of that name exists.
    pub async fn realm_exists(&self, name: &str) -> Result<bool, KeycloakError> {
        Ok(self.get::<serde_json::Value>(name).await?.is_some())
    }

    /// Deletes a realm; a realm that is already gone is fine.
    pub async fn delete_realm(&self, name: &str) -> Result<(), KeycloakError> {
        self.remove(name).await
    }

    /// `DELETE` an Admin API path without a body; a resource that is already gone is fine.
    pub async fn remove(&self, path: &str) -> Result<(), KeycloakError> {
        let answer = self.send(None, reqwest::Method::DELETE, path, None).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        check("DELETE", path, answer).map(drop)
    }

    /// One Admin API exchange, recorded; `timeout` replaces the client's for this one.
    async fn send(
        &self,
        timeout: Option<Duration>,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, KeycloakError> {
        let mut url = self
            .keycloak
            .admin_realms()
            .join(path)
            .expect("admin paths are relative URLs");
        // `POST /admin/realms` (creating a realm) has no trailing slash, nor the realm list.
        if url.path().ends_with('/') {
            let path = url.path().trim_end_matches('/').to_owned();
            url.set_path(&path);
        }
        let token = self.token().await?;
        let mut exchange = Exchange::new(
            Party::Client,
            Party::Keycloak,
            method.as_str(),
            url.as_str(),
        );
        exchange.purpose = "Admin API, admin token".into();
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        send_recorded(&self.trace, exchange, request, |answer, exchange| {
            if !answer.is_success() {
                exchange.answer = answer.reason().into();
            }
        })
        .await
        .map_err(|e| unreachable(&url, &e))
    }
}

fn check(method: &'static str, path: &str, answer: Answer) -> Result<Answer, KeycloakError> {
    if answer.is_success() {
        return Ok(answer);
    }
    Err(KeycloakError::AdminApi {
        method,
        path: format!("/admin/realms/{path}"),
        status: answer.status.as_u16(),
        body: answer.text(),
    })
}

fn unreachable(url: &Url, error: &reqwest::Error) -> KeycloakError {
    KeycloakError::Unreachable {
        url: url.origin().ascii_serialization(),
        reason: describe(error),
    }
}

fn bad_answer(url: &Url, error: &serde_json::Error) -> KeycloakError {
    KeycloakError::BadAnswer {
        url: url.to_string(),
        reason: error.to_string(),
    }
}
