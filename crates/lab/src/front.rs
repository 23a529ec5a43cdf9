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
use playbook_proxy::{FORWARDED_CERT_HEADER, Health, ReverseProxy, Topology, Upstream};
use playbook_resource_server::server::{self, RunningServer, ServerConfig};
use playbook_resource_server::{ClientCertSource, ProxyTrust};
use playbook_trace::Party;
use url::Url;

use crate::LabError;

/// A running resource server (its first replica), the other replicas of the cluster topology,
/// and the proxy (the load balancer) in front of them if the topology has one.
pub struct ServedApi {
    pub server: RunningServer,
    /// The cluster topology's second replica, drawn as [`Party::ResourceServerReplica`].
    pub replicas: Vec<RunningServer>,
    pub proxy: Option<ReverseProxy>,
}

/// The cluster topology's resource-server replicas.
const REPLICAS: usize = 2;

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
                replicas: Vec::new(),
                proxy: None,
            });
        }
        let public = config.listen;
        behind_proxy(&mut config, certs)?;
        let trace = config.trace.clone();
        let replicas = match topology {
            Topology::Cluster => REPLICAS,
            Topology::Direct | Topology::Proxy => 1,
        };
        let mut servers = Vec::new();
        for replica in 0..replicas {
            let mut config = config.clone();
            if replica > 0 {
                config.party = Party::ResourceServerReplica;
            }
            servers.push(server::start(config).await?);
        }
        let ports: Vec<u16> = servers.iter().map(|s| s.addr.port()).collect();
        // A single server needs no health check; replicas are checked on their readiness.
        let health = (replicas > 1).then(|| Health {
            path: playbook_resource_server::api::READY,
            ports: ports.clone(),
        });
        let upstream = Upstream {
            name: "api",
            listen: public.port(),
            ports,
            present_certificate: true,
            health,
        };
        let proxy = ReverseProxy::start(upstream, certs)
            .await
            .map_err(|e| LabError::Setup(e.to_string()))?;
        trace.through_proxy(proxy.url().as_str());
        let server = servers.remove(0);
        Ok(Self {
            server,
            replicas: servers,
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

    /// Stops the proxy first (no new requests), then the servers.
    pub async fn shutdown(self) {
        if let Some(proxy) = self.proxy {
            let _ = tokio::task::spawn_blocking(move || drop(proxy)).await;
        }
        self.server.shutdown().await;
        for replica in self.replicas {
            replica.shutdown().await;
        }
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
