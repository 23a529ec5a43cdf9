//! The SPIFFE workload's side of federated client authentication: its JWT-SVID, asked of the
//! local SPIRE agent's Workload API for the audience of the token endpoint it will go to.
//!
//! Through the agent's own `spire-agent api fetch jwt` rather than a gRPC client: the Workload
//! API is gRPC over a unix socket, and the Rust clients for it (the `spiffe` crate) bring tonic
//! and prost for one call the agent's program makes just as well.

use std::path::PathBuf;

use playbook_keycloak::Secret;
use playbook_trace::{Exchange, Party, TokenView, Trace};
use url::Url;

use crate::ClientError;

/// Where a SPIFFE workload gets its JWT-SVIDs, and what the realm trusts for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeSource {
    /// The SPIRE agent's program (`spire-agent`).
    pub agent: PathBuf,
    /// The agent's Workload API socket.
    pub socket: PathBuf,
    /// The SPIRE server's SPIFFE bundle endpoint: the keys that verify JWT-SVIDs.
    pub bundle_endpoint: Url,
}

impl SpiffeSource {
    /// A fresh JWT-SVID for `audience`, recorded in `trace` as `party`'s exchange with its
    /// platform (decoded, never whole).
    pub async fn jwt_svid(
        &self,
        audience: &str,
        trace: &Trace,
        party: Party,
    ) -> Result<Secret, ClientError> {
        let mut exchange = Exchange::new(
            party,
            Party::Platform,
            "gRPC",
            format!("unix://{}", self.socket.display()),
        );
        exchange.purpose = format!(
            "FetchJWTSVID, audience {audience}: the SPIRE agent attests the caller by its unix uid"
        );
        let output = tokio::process::Command::new(&self.agent)
            .args(["api", "fetch", "jwt", "-audience", audience, "-socketPath"])
            .arg(&self.socket)
            .stdin(std::process::Stdio::null())
            .output()
            .await;
        let fetched = match output {
            Ok(output) if output.status.success() => {
                svid_of(&String::from_utf8_lossy(&output.stdout))
                    .ok_or_else(|| "the agent's answer holds no token".to_owned())
            }
            Ok(output) => Err(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
            Err(error) => Err(format!("{}: {error}", self.agent.display())),
        };
        match &fetched {
            Ok(svid) => {
                // gRPC answers over HTTP/2: 200 with grpc-status 0.
                exchange.answered(200, "JWT-SVID");
                exchange.token = TokenView::decode(svid);
            }
            Err(reason) => {
                exchange.failed(reason.clone());
            }
        }
        trace.record(exchange);
        fetched.map(Secret::new).map_err(|reason| {
            ClientError::BadCredential(format!(
                "the SPIRE agent gave no JWT-SVID ({reason}); is it running, and this workload registered? `cargo playbook client --auth federated --platform spiffe` starts both"
            ))
        })
    }
}

/// The token of `spire-agent api fetch jwt`'s answer: the line after `token(<SPIFFE ID>):`.
fn svid_of(answer: &str) -> Option<String> {
    let mut lines = answer.lines();
    lines.find(|line| line.trim_start().starts_with("token("))?;
    let token = lines.next()?.trim();
    (token.split('.').count() == 3).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_is_read_from_the_agents_answer() {
        let answer = "token(spiffe://oauth2-playbook.test/workload):\n\teyJh.eyJz.c2ln\nbundle(spiffe://oauth2-playbook.test):\n\t{\"keys\":[]}\n";
        assert_eq!(super::svid_of(answer).as_deref(), Some("eyJh.eyJz.c2ln"));
        assert_eq!(super::svid_of("no identity issued"), None);
    }
}
