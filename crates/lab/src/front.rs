//! The resource server as a topology places it: serving clients itself (direct), or behind the
//! reverse proxy, which ends the client's TLS and forwards the certificate it verified.
//!
//! Behind the proxy the server listens on a free port of its own, requires a client certificate
//! of every peer, and believes the `Client-Cert` header only from the peer presenting the proxy's
//! certificate; the proxy takes the port clients were told. The demo, the `resource-server`
//! command and the lab all start the API through here, so the three cannot configure it apart;
//! it lives in the lab because the lab is the lowest crate that knows both the resource server
//! and the proxy (the resource server itself needs neither a proxy nor a launcher).

use std::net::SocketAddr;

use playbook_certs::CertSet;
use playbook_proxy::{FORWARDED_CERT_HEADER, ReverseProxy, Topology, Upstream};
use playbook_resource_server::server::{self, RunningServer, ServerConfig};
use playbook_resource_server::{ClientCertSource, ProxyTrust};
use url::Url;

use crate::LabError;

/// A running resource server, and the proxy in front of it if the topology has one.
pub struct ServedApi {
    pub server: RunningServer,
    pub proxy: Option<ReverseProxy>,
}

impl ServedApi {
    /// Starts the server `config` describes, in `topology`: `config.listen` is where clients
    /// connect, the server's own address or the proxy's.
    pub async fn start(
        mut config: ServerConfig,
        topology: Topology,
        certs: &CertSet,
    ) -> Result<Self, LabError> {
        if topology == Topology::Direct {
            return Ok(Self {
                server: server::start(config).await?,
                proxy: None,
            });
        }
        let public = config.listen;
        behind_proxy(&mut config, certs)?;
        let trace = config.trace.clone();
        let server = server::start(config).await?;
        let upstream = Upstream {
            name: "api",
            listen: public.port(),
            port: server.addr.port(),
            present_certificate: true,
        };
        let proxy = ReverseProxy::start(upstream, certs)
            .await
            .map_err(|e| LabError::Setup(e.to_string()))?;
        trace.through_proxy(proxy.url().as_str());
        Ok(Self {
            server,
            proxy: Some(proxy),
        })
    }

    /// Where clients call the API: the proxy's address if there is one.
    pub fn url(&self) -> Url {
        match &self.proxy {
            Some(proxy) => proxy.url().clone(),
            None => self.server.base_url(),
        }
    }

    /// Stops the proxy first (no new requests), then the server.
    pub async fn shutdown(self) {
        if let Some(proxy) = self.proxy {
            let _ = tokio::task::spawn_blocking(move || drop(proxy)).await;
        }
        self.server.shutdown().await;
    }
}

/// Configures `config` to sit behind the playbook's proxy: a free port of its own, and the
/// client certificate read from the proxy's header, believed only from the proxy's certificate.
pub fn behind_proxy(config: &mut ServerConfig, certs: &CertSet) -> Result<(), LabError> {
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.client_cert = ClientCertSource::Header {
        name: FORWARDED_CERT_HEADER.into(),
        trust: ProxyTrust::Certificate {
            thumbprint: certs.proxy()?.thumbprint_s256(),
        },
    };
    Ok(())
}
