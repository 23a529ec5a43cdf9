//! The one seam every recorded HTTP exchange passes through: the client's token requests and
//! API calls, the Admin API session, the resource server's discovery, JWKS and introspection.
//! Each party says what it sends and what the answer means; how the exchange is sent, read and
//! written into the run's trace is here, once.

use playbook_trace::{Exchange, Trace};

/// An answer read whole, so the party can parse it after it was recorded.
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub url: url::Url,
    /// The `WWW-Authenticate` challenge of a refusal (RFC 6750 §3).
    pub www_authenticate: Option<String>,
    pub content_type: Option<String>,
    /// Every header of the answer, for what only one party reads (a DPoP nonce).
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text (lossy), for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header of the answer as text, when present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The status's reason phrase (`Not Found`), the arrow's words for an unexpected answer.
    pub fn reason(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("")
    }
}

/// Sends `request` and reads its answer whole, then records `exchange` in `trace`: status,
/// content type and challenge come from the answer, the arrow's words (and anything else worth
/// showing, such as the token issued) from `describe`; a transport failure is recorded as such.
pub async fn send_recorded(
    trace: &Trace,
    mut exchange: Exchange,
    request: reqwest::RequestBuilder,
    describe: impl FnOnce(&Answer, &mut Exchange),
) -> Result<Answer, reqwest::Error> {
    let answer = read(request).await;
    match &answer {
        Ok(answer) => {
            exchange.answered(answer.status.as_u16(), "");
            exchange.www_authenticate = answer.www_authenticate.clone();
            exchange.content_type = answer.content_type.clone();
            describe(answer, &mut exchange);
        }
        Err(error) => {
            exchange.failed(crate::describe(error));
        }
    }
    trace.record(exchange);
    answer
}

async fn read(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let url = response.url().clone();
    let www_authenticate = crate::header(&response, reqwest::header::WWW_AUTHENTICATE);
    let content_type = crate::header(&response, reqwest::header::CONTENT_TYPE);
    let headers = response.headers().clone();
    let body = response.bytes().await?.to_vec();
    Ok(Answer {
        status,
        url,
        www_authenticate,
        content_type,
        headers,
        body,
    })
}
