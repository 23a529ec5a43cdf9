//! Telling "the server refused our client certificate" from "the server is not there".
//!
//! With TLS 1.3 a server judges the client certificate only after the client has finished its
//! side of the handshake. The client sends its request at once, so the server's alert races the
//! request and often reaches us only as "connection closed". After such a failure one bare
//! handshake, followed by a read, receives the alert itself. It runs only on the error path and
//! trusts exactly the same CA as the request did.

use std::sync::Arc;
use std::time::Duration;

use playbook_certs::{Leaf, der};
use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use url::Url;

/// How long the server gets to send its alert once our handshake is done.
const ALERT_WAIT: Duration = Duration::from_secs(2);

/// The TLS alert the server at `url` answers our certificate with, if it refuses it.
pub(crate) async fn certificate_alert(url: &Url, ca_pem: &str, identity: &Leaf) -> Option<String> {
    let config = Arc::new(mtls_config(ca_pem, identity)?);
    let host = url.host_str()?.to_owned();
    let port = url.port_or_known_default()?;
    let connect = async {
        let tcp = TcpStream::connect((host.as_str(), port)).await.ok()?;
        let name = ServerName::try_from(host.clone()).ok()?;
        Some(
            tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await,
        )
    };
    let mut tls = match tokio::time::timeout(ALERT_WAIT, connect).await.ok()?? {
        Ok(tls) => tls,
        Err(error) => return alert(&error),
    };
    match tokio::time::timeout(ALERT_WAIT, tls.read(&mut [0u8; 1])).await {
        Ok(Err(error)) => alert(&error),
        // Still open, or closed without an alert: nothing says the certificate was the problem.
        _ => None,
    }
}

/// The TLS side of this client for callers below reqwest (this bare handshake, the load
/// generator): trusts exactly `ca_pem` and presents `identity`; `None` if either is unusable.
pub fn mtls_config(ca_pem: &str, identity: &Leaf) -> Option<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in der::certificates(ca_pem).ok()? {
        roots.add(ca).ok()?;
    }
    let chain = der::certificates(identity.cert_pem()).ok()?;
    let key = der::private_key(identity.key_pem()).ok()?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .ok()
}

fn alert(error: &std::io::Error) -> Option<String> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(format!("received fatal alert: {alert:?}")),
        _ => None,
    }
}
