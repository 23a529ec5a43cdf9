//! What can go wrong on the client side, split the way a user has to react to it.

use playbook_provider::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Provider(#[from] ProviderError),

    #[error(
        "client `{client_id}` not found in realm `{realm}`; was the realm imported from oauth2-provider/realm.json?"
    )]
    ClientNotFound { client_id: String, realm: String },

    #[error(
        "client `{client_id}` has no service account; enable \"Service accounts\" on it in realm `{realm}`"
    )]
    NoServiceAccount { client_id: String, realm: String },

    #[error(
        "realm role `{role}` not found in realm `{realm}`; was the realm imported from oauth2-provider/realm.json?"
    )]
    RoleNotFound { role: String, realm: String },

    #[error(
        "Keycloak refused the token request ({status} {error}: {description}); check that the client certificate \
         is signed by the CA Keycloak trusts and its CN matches the client's x509.subjectdn"
    )]
    TokenRefused {
        status: u16,
        error: String,
        description: String,
    },

    #[error(
        "the TLS handshake with {url} refused our client certificate ({reason}); is it signed by the CA the server trusts?"
    )]
    CertificateRefused { url: String, reason: String },

    #[error("the resource server answered {status}{}; {hint}", challenge.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    ApiRefused {
        status: u16,
        challenge: Option<String>,
        hint: &'static str,
    },

    #[error("cannot reach {url}: {reason}; is it running?")]
    Unreachable { url: String, reason: String },

    #[error("unexpected answer from {url}: {reason}")]
    BadResponse { url: String, reason: String },
}

impl ClientError {
    /// Whether the other side answered "no" (as opposed to not answering at all).
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::TokenRefused { .. }
            | Self::CertificateRefused { .. }
            | Self::ApiRefused { .. } => true,
            Self::Provider(e) => matches!(e, ProviderError::AdminRefused { .. }),
            _ => false,
        }
    }

    /// Whether the other side could not be reached (connection, TLS, DNS).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Provider(e) => e.is_unreachable(),
            _ => false,
        }
    }

    /// Classifies a transport error: a TLS alert about our certificate is a refusal, the rest
    /// means the server is not there (or not who it claims to be).
    pub(crate) fn from_transport(url: &url::Url, error: &reqwest::Error) -> Self {
        let reason = playbook_provider::describe(error);
        let url = url.origin().ascii_serialization();
        let lower = reason.to_ascii_lowercase();
        let certificate_alert = [
            "bad_certificate",
            "badcertificate",
            "certificate_unknown",
            "certificateunknown",
            "unknown_ca",
            "unknownca",
            "certificate_required",
            "certificaterequired",
        ]
        .iter()
        .any(|alert| lower.contains(alert) && lower.contains("received"));
        if certificate_alert {
            Self::CertificateRefused { url, reason }
        } else {
            Self::Unreachable { url, reason }
        }
    }
}
