//! What can go wrong on the client side, split the way a user has to react to it.

use playbook_certs::Leaf;
use playbook_keycloak::KeycloakError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Keycloak(#[from] KeycloakError),

    #[error(transparent)]
    Tls(#[from] playbook_https::TlsMaterialError),

    #[error("Keycloak refused the token request ({status} {error}: {description}); {hint}")]
    TokenRefused {
        status: u16,
        error: String,
        description: String,
        hint: String,
    },

    #[error("{0}")]
    BadCredential(String),

    #[error(
        "the TLS handshake with {url} refused our client certificate ({reason}); is it signed by the CA the server trusts?"
    )]
    CertificateRefused { url: String, reason: String },

    #[error("the resource server answered {status}{}; {hint}", challenge.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    ApiRefused {
        status: u16,
        challenge: Option<String>,
        hint: String,
    },

    #[error("cannot reach {url}: {reason}; is it running?")]
    Unreachable { url: String, reason: String },

    #[error("unexpected answer from {url}: {reason}")]
    BadResponse { url: String, reason: String },
}

impl From<playbook_dpop::ProofError> for ClientError {
    /// Making a proof fails only for an unusable key.
    fn from(error: playbook_dpop::ProofError) -> Self {
        Self::BadCredential(format!(
            "cannot sign a DPoP proof: {error}; delete certs/client-dpop-key.pem and the next run makes a new key"
        ))
    }
}

impl ClientError {
    /// Whether the other side answered "no" (as opposed to not answering at all).
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::TokenRefused { .. }
            | Self::CertificateRefused { .. }
            | Self::ApiRefused { .. } => true,
            Self::Keycloak(e) => e.is_refusal(),
            _ => false,
        }
    }

    /// Whether the other side could not be reached (connection, TLS, DNS).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Keycloak(e) => e.is_unreachable(),
            _ => false,
        }
    }

    /// Classifies a transport error: a TLS alert about our certificate is a refusal, the rest
    /// means the server is not there (or not who it claims to be). The alert often does not make
    /// it into the request's error (see `handshake`), so a bare handshake asks again.
    pub(crate) async fn from_transport(
        url: &url::Url,
        error: &reqwest::Error,
        ca_pem: &str,
        identity: &Leaf,
    ) -> Self {
        let mut reason = playbook_https::describe(error);
        let origin = url.origin().ascii_serialization();
        if !names_certificate_alert(&reason)
            && let Some(alert) = crate::handshake::certificate_alert(url, ca_pem, identity).await
        {
            reason = format!("{reason}; a fresh handshake was answered with {alert}");
        }
        if names_certificate_alert(&reason) {
            Self::CertificateRefused {
                url: origin,
                reason,
            }
        } else {
            Self::Unreachable {
                url: origin,
                reason,
            }
        }
    }
}

/// Whether a TLS error text says the peer rejected our certificate.
fn names_certificate_alert(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    [
        "bad_certificate",
        "badcertificate",
        "certificate_unknown",
        "certificateunknown",
        "unknown_ca",
        "unknownca",
        "certificate_required",
        "certificaterequired",
        // rustls's answer to a certificate whose signature does not verify, e.g. one issued by
        // another CA with the same name as ours.
        "decrypt_error",
        "decrypterror",
    ]
    .iter()
    .any(|alert| lower.contains(alert) && lower.contains("received"))
}
