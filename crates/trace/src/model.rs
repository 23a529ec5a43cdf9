//! The events of a run: steps, HTTP exchanges and lessons, in the order they happened.

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

/// The lifelines of the sequence diagram: the flow's three, and the lab's intruder and second
/// resource servers, each with its own column so that nothing is drawn as a party it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Client,
    /// The lab's second client: same CA, another certificate, replaying what it stole.
    Intruder,
    Keycloak,
    /// The federated client's workload platform (a realm of the same Keycloak, playing a
    /// Kubernetes cluster or a SPIFFE server): it issues the workload's identity token.
    Platform,
    /// The reverse proxy of the proxy topology: the client's TLS ends there, and it forwards
    /// the client certificate it verified to Keycloak and the resource server in a header.
    Proxy,
    ResourceServer,
    /// The cluster topology's second resource-server replica, behind the same load balancer.
    ResourceServerReplica,
    /// A resource server run with `--binding off` beside the tutorial's.
    UnboundResourceServer,
    /// A resource server that also introspects every token (RFC 7662).
    IntrospectingResourceServer,
    /// A resource server run with `--binding required-dpop`: DPoP-bound tokens only.
    DpopOnlyResourceServer,
}

impl Party {
    /// Every lifeline, in the order of the diagram's columns.
    pub const ALL: [Party; 10] = [
        Party::Client,
        Party::Intruder,
        Party::Platform,
        Party::Proxy,
        Party::Keycloak,
        Party::ResourceServer,
        Party::ResourceServerReplica,
        Party::UnboundResourceServer,
        Party::IntrospectingResourceServer,
        Party::DpopOnlyResourceServer,
    ];

    /// The flow's own lifelines, drawn in every run.
    pub const FLOW: [Party; 3] = [Party::Client, Party::Keycloak, Party::ResourceServer];

    /// The one name of each lifeline: the terminal, the page, the hand-outs and the docs'
    /// diagrams all use it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "Client",
            Self::Intruder => "Intruder",
            Self::Keycloak => "Keycloak",
            Self::Platform => "Platform",
            Self::Proxy => "Proxy",
            Self::ResourceServer => "ResourceServer",
            Self::ResourceServerReplica => "ResourceServer (replica 2)",
            Self::UnboundResourceServer => "ResourceServer (binding off)",
            Self::IntrospectingResourceServer => "ResourceServer (introspection)",
            Self::DpopOnlyResourceServer => "ResourceServer (DPoP only)",
        }
    }

    /// A short id for diagram languages that want one (mermaid's `participant R as ...`).
    pub fn id(self) -> &'static str {
        match self {
            Self::Client => "C",
            Self::Intruder => "I",
            Self::Keycloak => "K",
            Self::Platform => "P",
            Self::Proxy => "X",
            Self::ResourceServer => "R",
            Self::ResourceServerReplica => "R2",
            Self::UnboundResourceServer => "RB",
            Self::IntrospectingResourceServer => "RI",
            Self::DpopOnlyResourceServer => "RD",
        }
    }
}

/// A lifeline is written by its one name, in `--json` as on the page.
impl Serialize for Party {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Something that happened, in order.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A numbered step or a lesson begins.
    Step { title: String },
    /// One HTTP request and its answer (or why there was none).
    Exchange(Box<Exchange>),
    /// What the exchanges just before show, in one sentence.
    Lesson { text: String },
    /// The lab's judgement of one attempt: whether the defence answered as it must.
    Verdict { held: bool, text: String },
    /// Predict mode: the room is asked what comes next before the run shows it.
    Question {
        prompt: String,
        choices: Vec<String>,
    },
}

impl Event {
    /// The choices of a question, lettered `a) …`: how every view offers them.
    pub fn lettered(choices: &[String]) -> Vec<String> {
        (choices.iter().zip('a'..))
            .map(|(choice, letter)| format!("{letter}) {choice}"))
            .collect()
    }

    /// A question with its choices lettered, in one line.
    pub fn question_line(prompt: &str, choices: &[String]) -> String {
        format!("? {prompt}  {}", Self::lettered(choices).join("   "))
    }

    /// The mark of a verdict, the same on every view.
    pub fn verdict_mark(held: bool) -> &'static str {
        if held { "✓" } else { "✗" }
    }
}

/// One HTTP exchange, recorded by the party that made it once it completed.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub from: Party,
    pub to: Party,
    pub method: String,
    pub url: String,
    /// What the request was for, in a few words (e.g. `client_credentials, scope users:read`).
    pub purpose: String,
    /// Why it happened when that is not obvious, shown on its arrow: housekeeping repeats
    /// (`at start`, `again: the periodic refresh`), and a diagram must say which is which.
    pub reason: String,
    /// `None` when no answer came; `error` then says why.
    pub status: Option<u16>,
    /// The answer in a few words (e.g. `3 users`, `insufficient_scope`).
    pub answer: String,
    pub error: Option<String>,
    pub www_authenticate: Option<String>,
    pub content_type: Option<String>,
    /// The access token this exchange carried or issued, decoded.
    pub token: Option<TokenView>,
    /// The TLS client certificate presented on the connection; `None` when there was none.
    pub client_certificate: Option<CertView>,
    /// How the request authenticated its sender, as it crossed the wire with every secret
    /// masked; `None` for requests that carry no client credentials.
    pub sent: Option<SentView>,
    /// The party the request passed through on its way (the proxy topology's reverse proxy,
    /// where the client's TLS ended); `None` when it went straight to `to`.
    pub via: Option<Party>,
    /// The DPoP proof the request carried (RFC 9449), decoded; `None` when it carried none.
    pub proof: Option<ProofView>,
}

impl Exchange {
    pub fn new(from: Party, to: Party, method: &str, url: impl Into<String>) -> Self {
        Self {
            from,
            to,
            method: method.into(),
            url: url.into(),
            purpose: String::new(),
            reason: String::new(),
            status: None,
            answer: String::new(),
            error: None,
            www_authenticate: None,
            content_type: None,
            token: None,
            client_certificate: None,
            sent: None,
            via: None,
            proof: None,
        }
    }

    /// The path of the URL: what an arrow has room for.
    pub fn path(&self) -> &str {
        let after_scheme = self
            .url
            .split_once("://")
            .map_or(&*self.url, |(_, rest)| rest);
        after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
    }

    pub fn answered(&mut self, status: u16, answer: impl Into<String>) -> &mut Self {
        self.status = Some(status);
        self.answer = answer.into();
        self
    }

    pub fn failed(&mut self, error: impl Into<String>) -> &mut Self {
        self.status = None;
        self.error = Some(error.into());
        self
    }

    /// Whether the certificate presented is the one the token is bound to (RFC 8705 §3):
    /// `None` when the token is not certificate-bound (or there is no token).
    pub fn binding_holds(&self) -> Option<bool> {
        let bound_to = self.token.as_ref()?.x5t_s256()?;
        Some(
            self.client_certificate
                .as_ref()
                .is_some_and(|cert| cert.thumbprint == bound_to),
        )
    }

    /// Whether the proof's key is the one the token is bound to (RFC 9449 section 7): `None`
    /// when the token is not DPoP-bound (or there is no token).
    pub fn dpop_binding_holds(&self) -> Option<bool> {
        let bound_to = self.token.as_ref()?.jkt()?;
        Some(
            self.proof
                .as_ref()
                .is_some_and(|proof| proof.thumbprint == bound_to),
        )
    }
}

/// A DPoP proof as the diagram shows it: its header (with the public key) and claims, decoded,
/// never its signature, and the RFC 7638 thumbprint of its key, comparable with `cnf.jkt`.
#[derive(Debug, Clone, Serialize)]
pub struct ProofView {
    pub header: Value,
    pub claims: Value,
    pub thumbprint: String,
}

impl ProofView {
    /// The view of `proof`, made by the key of `thumbprint`; `None` when it is not a JWT.
    pub fn new(proof: &str, thumbprint: &str) -> Option<Self> {
        let TokenView { header, claims } = TokenView::decode(proof)?;
        Some(Self {
            header,
            claims,
            thumbprint: thumbprint.into(),
        })
    }
}

/// A JWT as a learner may see it: the decoded header and claims, nothing that can be replayed.
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub header: Value,
    pub claims: Value,
}

impl TokenView {
    /// Decodes a compact JWT's header and claims without checking anything; the signature is
    /// dropped. `None` when it is not a JWT.
    pub fn decode(jwt: &str) -> Option<Self> {
        let mut parts = jwt.split('.');
        let mut part = || -> Option<Value> {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts.next()?)
                .ok()?;
            serde_json::from_slice(&bytes).ok()
        };
        Some(Self {
            header: part()?,
            claims: part()?,
        })
    }

    /// The certificate thumbprint the token is bound to (`cnf.x5t#S256`).
    pub fn x5t_s256(&self) -> Option<&str> {
        self.claims["cnf"]["x5t#S256"].as_str()
    }

    /// The DPoP key thumbprint the token is bound to (`cnf.jkt`).
    pub fn jkt(&self) -> Option<&str> {
        self.claims["cnf"]["jkt"].as_str()
    }
}

/// What a request sent to authenticate its client, safe to show a room: the headers and form
/// fields as they went, except that every value not known to be harmless is [`SentView::MASK`],
/// and a client assertion appears decoded (header and claims, never its signature, so it cannot
/// be replayed even within its short life).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SentView {
    /// `(name, value)` of the headers that authenticate, e.g. `Authorization: Basic ***`.
    pub headers: Vec<(String, String)>,
    /// `(name, value)` of the form body, in order.
    pub form: Vec<(String, String)>,
    /// The `client_assertion` (RFC 7523), decoded.
    pub assertion: Option<TokenView>,
}

impl SentView {
    /// What stands for a value that must not be shown.
    pub const MASK: &'static str = "***";

    /// The form fields shown as they are: the rest (a secret, a token, anything new) is masked,
    /// so that a field added later is hidden until someone decides it is harmless.
    const SHOWN_FIELDS: [&'static str; 5] = [
        "grant_type",
        "scope",
        "client_id",
        "client_assertion_type",
        "token_type_hint",
    ];

    /// The view of a form body.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(fields: &[(K, V)]) -> Self {
        let mut view = Self::default();
        for (name, value) in fields {
            let (name, value) = (name.as_ref(), value.as_ref());
            let shown = match name {
                "client_assertion" => {
                    view.assertion = TokenView::decode(value);
                    "(a signed JWT: its header and claims are shown, never its signature)"
                }
                _ if Self::SHOWN_FIELDS.contains(&name) => value,
                _ => Self::MASK,
            };
            view.form.push((name.into(), shown.into()));
        }
        view
    }

    /// Adds the `Authorization: Basic` header of `client_secret_basic`, its credentials masked.
    pub fn with_basic_auth(mut self) -> Self {
        self.headers
            .push(("Authorization".into(), format!("Basic {}", Self::MASK)));
        self
    }

    /// The form body in one line, as `name=value` pairs.
    pub fn form_line(&self) -> String {
        let pairs: Vec<String> = (self.form.iter())
            .map(|(name, value)| match name.as_str() {
                "client_assertion" => format!("{name}=(signed JWT)"),
                _ => format!("{name}={value}"),
            })
            .collect();
        pairs.join("&")
    }
}

/// A TLS client certificate as the diagram shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertView {
    pub subject: String,
    /// `base64url(SHA-256(DER))`, comparable with a token's `cnf.x5t#S256`.
    pub thumbprint: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(header: &str, claims: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(claims))
    }

    #[test]
    fn a_token_view_keeps_header_and_claims_and_drops_the_signature() {
        let view = TokenView::decode(&jwt(
            r#"{"alg":"RS256","kid":"k1"}"#,
            r#"{"sub":"s","cnf":{"x5t#S256":"abc"}}"#,
        ))
        .unwrap();
        assert_eq!(view.header["kid"], "k1");
        assert_eq!(view.x5t_s256(), Some("abc"));
        let shown = serde_json::to_string(&view).unwrap();
        assert!(!shown.contains("c2lnbmF0dXJl") && !shown.contains("eyJ"));
        assert!(TokenView::decode("not a jwt").is_none());
    }

    #[test]
    fn a_sent_view_masks_every_value_not_known_to_be_harmless() {
        let assertion = jwt(
            r#"{"alg":"ES256","typ":"client-authentication+jwt"}"#,
            r#"{"iss":"c"}"#,
        );
        let fields = [
            ("grant_type", "client_credentials"),
            ("client_id", "c"),
            ("client_secret", "s3cret-value"),
            ("client_assertion", assertion.as_str()),
            ("something_new", "maybe-secret"),
        ];
        let view = SentView::form(&fields).with_basic_auth();
        let shown = serde_json::to_string(&view).unwrap();
        for hidden in ["s3cret-value", "maybe-secret", "c2lnbmF0dXJl", "eyJ"] {
            assert!(!shown.contains(hidden), "{hidden} in {shown}");
        }
        assert_eq!(view.headers, [("Authorization".into(), "Basic ***".into())]);
        assert_eq!(
            view.form_line(),
            "grant_type=client_credentials&client_id=c&client_secret=***&client_assertion=(signed JWT)&something_new=***"
        );
        let decoded = view.assertion.unwrap();
        assert_eq!(decoded.header["typ"], "client-authentication+jwt");
        assert_eq!(decoded.claims["iss"], "c");
    }

    #[test]
    fn binding_compares_the_presented_certificate_with_cnf() {
        let mut exchange = Exchange::new(
            Party::Client,
            Party::ResourceServer,
            "GET",
            "https://h:1/api/users?x=1",
        );
        assert_eq!(exchange.path(), "/api/users?x=1");
        assert_eq!(
            exchange.binding_holds(),
            None,
            "no token, nothing to compare"
        );
        exchange.token = TokenView::decode(&jwt(r#"{}"#, r#"{"cnf":{"x5t#S256":"abc"}}"#));
        assert_eq!(
            exchange.binding_holds(),
            Some(false),
            "no certificate presented"
        );
        let cert = |thumbprint: &str| CertView {
            subject: "CN=c".into(),
            thumbprint: thumbprint.into(),
        };
        exchange.client_certificate = Some(cert("xyz"));
        assert_eq!(exchange.binding_holds(), Some(false));
        exchange.client_certificate = Some(cert("abc"));
        assert_eq!(exchange.binding_holds(), Some(true));
    }
}
