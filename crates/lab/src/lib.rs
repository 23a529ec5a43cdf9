//! The attack lab: every classic mistake and attack on the flow, run for real against Keycloak
//! and the resource server, each with what the defence answered and why.
//!
//! A scenario runs in a realm of its own (imported from the bundled one, or a spare renamed, and
//! removed after), so
//! scenarios run in any order, alone or all together, without seeing each other's changes.
//! Every exchange goes to the lab's [`Trace`], so the CLI draws the arrows and the instructor's
//! stage shows them. A scenario's [`Verdict`] lists its attempts: what was tried, what was
//! expected, and what the defence answered (status and `WWW-Authenticate`).
//!
//! ```no_run
//! # async fn lab(admin: &playbook_keycloak::Admin, certs: &playbook_certs::CertSet) {
//! let lab = playbook_lab::Lab::new(admin, certs, playbook_trace::Trace::off());
//! let verdict = lab.run(playbook_lab::scenario("stolen-token").unwrap()).await.unwrap();
//! assert!(verdict.held());
//! # }
//! ```

mod arena;
mod client_auth;
mod cluster;
mod dpop;
pub mod front;
mod proxy;
mod scenarios;
mod workload;

pub use arena::{ClusterControl, Lab, LabError};
pub use front::ServedApi;

use serde::Serialize;

/// One lesson of the lab: its words, and the function that runs it (so the list of names and
/// what each name runs are one table).
#[derive(Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub title: &'static str,
    /// What it teaches, in two sentences.
    pub lesson: &'static str,
    /// Where the defence is specified.
    pub rfc: &'static str,
    /// What topology it needs: the proxy's scenarios attack the forwarded header (a proxy or a
    /// cluster has one), the cluster's kill and compare its nodes and replicas.
    pub needs: Needs,
    /// How it runs under `--profile fapi2`.
    pub fapi2: UnderFapi2,
    #[serde(skip)]
    run: scenarios::Run,
}

/// How a scenario fares under the FAPI 2.0 Security Profile (`--profile fapi2`): with its realm
/// under one of Keycloak's two FAPI 2.0 client profiles, and its resource server under the
/// profile's checks (but for the comparison servers a scenario runs with a mode of their own,
/// such as `--binding off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnderFapi2 {
    /// Runs under `fapi-2-security-profile` (certificate-bound tokens).
    Certificate,
    /// Runs under `fapi-2-dpop-security-profile` (DPoP-bound tokens).
    Dpop,
    /// Not run: the profile forbids what the scenario sets up, for this reason.
    Forbidden(&'static str),
}

impl UnderFapi2 {
    /// The binding of the realm's FAPI 2.0 client profile, when the scenario runs at all.
    pub fn binding(self) -> Option<playbook_keycloak::TokenBinding> {
        match self {
            Self::Certificate => Some(playbook_keycloak::TokenBinding::Certificate),
            Self::Dpop => Some(playbook_keycloak::TokenBinding::Dpop),
            Self::Forbidden(_) => None,
        }
    }
}

/// Why the federated scenarios do not run under FAPI 2.0.
const FEDERATED_UNDER_FAPI2: &str = "federated-jwt is not among the client authentication methods FAPI 2.0 allows (mTLS, private_key_jwt)";

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .finish()
    }
}

/// Every scenario, in the order `--all` runs them (the one home of their names).
pub const SCENARIOS: [Scenario; 28] = [
    Scenario {
        name: "stolen-token",
        title: "A stolen token presented with another certificate",
        lesson: "A second client of the same CA replays the first client's token: the resource server compares the certificate on the connection with the token's cnf.x5t#S256 and refuses it. The same replay is accepted by a resource server run with --binding off, which is why binding matters.",
        rfc: "RFC 8705 §3",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(scenarios::stolen_token(arena)),
    },
    Scenario {
        name: "forged-tokens",
        title: "Forged tokens: alg none, HS256 with the public key, the attacker's own key",
        lesson: "A token is only as good as the key that verifies it, and that key must be the realm's, chosen by the server: not none, not an HMAC secret made of the public key, not a key the token itself points at (jwk, jku, x5c). Each forgery is refused with 401 invalid_token.",
        rfc: "RFC 8725 §2.1, §3.1; RFC 7515 §4.1",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(scenarios::forged_tokens(arena)),
    },
    Scenario {
        name: "wrong-audience",
        title: "A genuine token for another audience",
        lesson: "Keycloak signed it and it arrives with its own certificate, but it was issued for another audience (the intruder's token names account, not this API). A resource server accepts only tokens whose aud names it, so a token meant for one API cannot be spent at another.",
        rfc: "RFC 9068 §4; RFC 7519 §4.1.3",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(scenarios::wrong_audience(arena)),
    },
    Scenario {
        name: "expiry",
        title: "An expired token, and a client that renews before expiry",
        lesson: "With the client's token lifespan cut to a few seconds through the Admin API, the client's cache renews at half-life, so its own calls never meet the expiry. A token used after its exp gets 401 token expired.",
        rfc: "RFC 7519 §4.1.4; RFC 6749 §4.4",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(scenarios::expiry(arena)),
    },
    Scenario {
        name: "role-removed",
        title: "The role taken away while a token is live",
        lesson: "A JWT is self-contained: after the role is revoked, the token issued before keeps working until it expires, and only a new token gets 403. The token's lifetime is the revocation delay, unless the resource server introspects.",
        rfc: "RFC 9068 §2.2.3; RFC 6750 §3.1",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(scenarios::role_removed(arena)),
    },
    Scenario {
        name: "revocation",
        title: "A revoked token: JWKS-only versus introspection",
        lesson: "The client revokes its token at Keycloak (authenticated by its certificate): a resource server that only checks signatures still accepts it, one in introspection mode asks Keycloak and refuses it at once. Introspection buys immediate revocation for one call to Keycloak per token and TTL.",
        rfc: "RFC 7009 §2; RFC 7662 §2",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(scenarios::revocation(arena)),
    },
    Scenario {
        name: "key-rotation",
        title: "Key rotation: a new signing key, then the old one removed",
        lesson: "New tokens carry the new key's kid; the resource server fetches the JWKS once on the unknown kid and accepts old and new tokens alike. Once the old key is removed from the realm, tokens it signed are refused at the resource server's next JWKS fetch: its periodic refresh, or one asked for after a rotation, as here.",
        rfc: "RFC 7517 §4.5; OpenID Connect Core §10.1.1",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(scenarios::key_rotation(arena)),
    },
    Scenario {
        name: "foreign-ca",
        title: "A client certificate from another CA",
        lesson: "Keycloak trusts only the playbook's CA for client certificates, so a certificate from any other CA, even with the right subject, gets no token. The client says so in one line instead of a stack trace.",
        rfc: "RFC 8705 §2.1",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(scenarios::foreign_ca(arena)),
    },
    Scenario {
        name: "stolen-secret",
        title: "A client secret copied from a config file, and the same theft against a key",
        lesson: "A shared secret is all it takes: a thief who copied it gets tokens from anywhere, and a resource server that accepts bearer tokens (--binding when-present) serves them. The same theft gets nothing from private_key_jwt, whose config holds only a public key Keycloak publishes anyway, nor from tls_client_auth, whose certificate is useless without the private key that signs the handshake.",
        rfc: "RFC 9700 §2.5; RFC 7523 §3; RFC 8705 §2",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Forbidden(
            "its client authenticates with a shared secret, which FAPI 2.0 refuses: there is no secret to steal",
        ),
        run: |arena| Box::pin(client_auth::stolen_secret(arena)),
    },
    Scenario {
        name: "replayed-assertion",
        title: "A client assertion captured, bent, or signed by another key",
        lesson: "Keycloak remembers each assertion's jti, so a captured one is refused the second time. It also refuses one made for another audience, one past its exp and one whose signature does not verify with the key it holds: an assertion proves the key's holder, once, recently, to this server.",
        rfc: "RFC 7523 §3; RFC 10070",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(client_auth::replayed_assertion(arena)),
    },
    Scenario {
        name: "secret-rotation",
        title: "A client secret rotated through the Admin API",
        lesson: "After the rotation the old secret gets no token, at once, and the new one does. A token issued before stays valid until it expires: Keycloak signed it with the realm's key, which the rotation leaves alone, and nothing in it refers to the secret, so only revocation with introspection ends it sooner.",
        rfc: "RFC 6749 §2.3.1; RFC 9700 §2.5",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Forbidden(
            "its client authenticates with a shared secret, which FAPI 2.0 refuses",
        ),
        run: |arena| Box::pin(client_auth::secret_rotation(arena)),
    },
    Scenario {
        name: "stolen-platform-token",
        title: "A workload's platform token replayed by another party",
        lesson: "The federated client's assertion is a token its platform issued, and Keycloak accepts each one once (its jti), so a copy is refused. Its short life is the point: a platform token lives a minute here (an hour at most for Kubernetes, whose tokens Keycloak accepts more than once), so a stolen one is worth little and the workload keeps no secret worth stealing.",
        rfc: "RFC 7523 §3; RFC 7521 §5.2",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Forbidden(FEDERATED_UNDER_FAPI2),
        run: |arena| Box::pin(workload::stolen_platform_token(arena)),
    },
    Scenario {
        name: "token-for-another-audience",
        title: "A platform token minted for another service",
        lesson: "The workload's platform token for another service is genuine, but its aud names that service, not this realm's issuer, so Keycloak refuses it. Without the audience check, any service the workload talks to could log in as the workload here.",
        rfc: "RFC 7523 §3 (aud); RFC 10070",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Forbidden(FEDERATED_UNDER_FAPI2),
        run: |arena| Box::pin(workload::token_for_another_audience(arena)),
    },
    Scenario {
        name: "wrong-workload",
        title: "Another workload's valid token",
        lesson: "A token from the trusted platform proves only which workload it names: the realm maps the issuer and sub pair to one client, so another workload's token gets nothing for this client while the workload's own gets a token. Trusting a platform is not trusting everything on it.",
        rfc: "RFC 7523 §3 (sub)",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Forbidden(FEDERATED_UNDER_FAPI2),
        run: |arena| Box::pin(workload::wrong_workload(arena)),
    },
    Scenario {
        name: "untrusted-issuer",
        title: "A well-formed token from an issuer the realm does not trust",
        lesson: "Keycloak accepts a federated assertion only from an issuer it has a trust relationship with (an identity provider accepting client assertions), checked against that issuer's key. A genuine token of another platform is refused, even one naming the right workload and audience.",
        rfc: "RFC 7523 §3 (iss); RFC 7521 §5.2",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Forbidden(FEDERATED_UNDER_FAPI2),
        run: |arena| Box::pin(workload::untrusted_issuer(arena)),
    },
    Scenario {
        name: "dpop-stolen-token",
        title: "A stolen DPoP-bound token, without the key it is bound to",
        lesson: "The token names its key (cnf.jkt), and every request must carry a proof signed by that key: a thief with the token and a key of its own makes valid proofs of the wrong key and gets 401 invalid_dpop_proof. The same token sent as a bearer token to a resource server that ignores bindings (--binding off) is served, so the binding is only as good as the server that checks it.",
        rfc: "RFC 9449 §4.3 (check 12), §7.1",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Dpop,
        run: |arena| Box::pin(dpop::stolen_token(arena)),
    },
    Scenario {
        name: "dpop-replayed-proof",
        title: "A DPoP proof captured and sent again",
        lesson: "A proof is single-use: the resource server remembers each proof's jti for as long as its iat is acceptable, so the same token and proof replayed seconds later get 401. The client is unaffected: it signs a fresh proof for every request.",
        rfc: "RFC 9449 §11.1, §4.3 (check 11)",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Dpop,
        run: |arena| Box::pin(dpop::replayed_proof(arena)),
    },
    Scenario {
        name: "dpop-proof-for-another-request",
        title: "A valid proof made for another method, another URL, or the token endpoint",
        lesson: "A proof names the one request it was made for (htm, htu) and, at the API, the token it accompanies (ath): a proof of the right key for POST, for another path or for Keycloak's token endpoint is refused. So a proof that leaks with one request cannot authorize a different one.",
        rfc: "RFC 9449 §4.3 (checks 8, 9, 12), §4.2",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Dpop,
        run: |arena| Box::pin(dpop::proof_for_another_request(arena)),
    },
    Scenario {
        name: "dpop-downgrade",
        title: "A DPoP token sent as Bearer, and a bearer token sent as DPoP",
        lesson: "A resource server that accepts both schemes must not let a DPoP-bound token through as a bearer token (that would drop the proof), nor take a bearer token under the DPoP scheme for bound. With --binding required-dpop it refuses bearer tokens altogether.",
        rfc: "RFC 9449 §7.2, §7.1",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Forbidden("it needs a bearer token, which no FAPI 2.0 client gets"),
        run: |arena| Box::pin(dpop::downgrade(arena)),
    },
    Scenario {
        name: "dpop-stale-proof",
        title: "A proof made long ago, or dated in the future",
        lesson: "A proof is accepted only while its iat is recent (here within 60 s, 5 s ahead for clock skew): one made in advance or held back is refused even though its signature is valid. The window is also how long the server must remember jti values, so it stays short.",
        rfc: "RFC 9449 §4.3 (check 11), §11.1",
        needs: Needs::Nothing,
        fapi2: UnderFapi2::Dpop,
        run: |arena| Box::pin(dpop::stale_proof(arena)),
    },
    Scenario {
        name: "forged-header-to-api",
        title: "A forged certificate header sent straight to the resource server",
        lesson: "Behind the proxy, the resource server takes the client certificate from the proxy's Client-Cert header, so the header is a credential: it believes it only from the peer presenting the proxy's own certificate. The intruder who goes around the proxy with the client's token and a header naming the client's certificate is refused with 401, and the server logs who tried.",
        rfc: "RFC 9440 §3, §6; RFC 9700 §4.13",
        needs: Needs::Proxy,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(proxy::forged_header_to_api(arena)),
    },
    Scenario {
        name: "forged-header-through-proxy",
        title: "A forged certificate header sent through the proxy",
        lesson: "The proxy strips any Client-Cert a client sends and sets it only from the certificate it verified itself, so the header the upstream reads names the intruder's certificate, or none. The client's token stays bound to the client's certificate, and Keycloak gives the intruder no token as the client.",
        rfc: "RFC 9440 §3; RFC 9700 §4.13; RFC 8705 §3",
        needs: Needs::Proxy,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(proxy::forged_header_through_proxy(arena)),
    },
    Scenario {
        name: "forged-header-to-keycloak",
        title: "A forged certificate header sent straight to Keycloak",
        lesson: "Keycloak reads the client certificate from the proxy's header only when the request comes from the proxy's address (proxy-trusted-addresses): the intruder who reaches Keycloak's own port with a header naming the client's certificate gets no token. Keycloak long believed the header from anyone who could reach it (CVE-2024-10039, checked against proxy-trusted-addresses only since 2025), and it still believes anyone who connects from the proxy's address, which is why the resource server knows its proxy by certificate instead.",
        rfc: "RFC 9440 §6; CVE-2024-10039",
        needs: Needs::Proxy,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(proxy::forged_header_to_keycloak(arena)),
    },
    Scenario {
        name: "stolen-token-behind-proxy",
        title: "A stolen token replayed behind the proxy",
        lesson: "The binding holds end to end: Keycloak bound the token to the certificate the proxy forwarded, and the resource server compares it with the certificate the proxy forwards on each call. A replay with another certificate, or with none, is refused with 401 as it is without a proxy.",
        rfc: "RFC 8705 §3; RFC 9440",
        needs: Needs::Proxy,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(proxy::stolen_token_behind_proxy(arena)),
    },
    Scenario {
        name: "revocation-across-nodes",
        title: "A token revoked on one Keycloak node, asked about on the other",
        lesson: "The client revokes its token at node 1 and the resource server's client asks node 2: inactive, at once. The nodes share what a revocation changes through their database and their Infinispan cluster, so a load balancer may send each request to any node.",
        rfc: "RFC 7009 §2; RFC 7662 §2",
        needs: Needs::Cluster,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(cluster::revocation_across_nodes(arena)),
    },
    Scenario {
        name: "key-rotation-across-replicas",
        title: "A new realm key picked up by every resource-server replica",
        lesson: "Each replica keeps its own JWKS cache and fetches the realm's keys itself: a token signed by a new key is accepted by both (each fetches once on the unknown kid), and once the old key is removed, its tokens are refused by both. Replicas share nothing, so nothing has to be shared.",
        rfc: "RFC 7517 §4.5; OpenID Connect Core §10.1.1",
        needs: Needs::Cluster,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(cluster::key_rotation_across_replicas(arena)),
    },
    Scenario {
        name: "replica-down",
        title: "A resource-server replica killed mid-run",
        lesson: "The load balancer retries a refused connection on the other replica and its health check takes the dead one out of rotation, so API calls keep getting 200. A resource server holds nothing but its JWKS cache, so losing one loses nothing.",
        rfc: "RFC 6750 §2.1 (any replica can check any token)",
        needs: Needs::Cluster,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(cluster::replica_down(arena)),
    },
    Scenario {
        name: "keycloak-node-down",
        title: "A Keycloak node killed mid-run",
        lesson: "Token requests keep succeeding through the load balancer: it retries a refused connection on the other node, and its health check (/health/ready each second) takes the dead node out of rotation within seconds. The surviving node serves from the shared database, so clients notice nothing. It leaves one node running, so the lab runs it last.",
        rfc: "RFC 6749 §4.4 (the client simply asks again)",
        needs: Needs::Cluster,
        fapi2: UnderFapi2::Certificate,
        run: |arena| Box::pin(cluster::keycloak_node_down(arena)),
    },
];

/// The topology a scenario needs to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Needs {
    /// Any topology.
    Nothing,
    /// A reverse proxy in front of the parts (`--topology proxy`, or `cluster`).
    Proxy,
    /// The cluster topology: two Keycloak nodes and two resource-server replicas.
    Cluster,
}

impl Needs {
    /// Whether a scenario with these needs runs in `topology`.
    pub fn met_by(self, topology: playbook_proxy::Topology) -> bool {
        use playbook_proxy::Topology;
        match self {
            Self::Nothing => true,
            Self::Proxy => topology != Topology::Direct,
            Self::Cluster => topology == Topology::Cluster,
        }
    }

    /// The flag that meets them, for messages.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Nothing => "",
            Self::Proxy => "--topology proxy",
            Self::Cluster => "--topology cluster",
        }
    }
}

/// The scenario of that name.
pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// What one attempt got: a status from the resource server, or no token at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    Status {
        status: u16,
        www_authenticate: Option<String>,
    },
    /// Keycloak issued no token (refused the client, or its certificate at the handshake).
    NoToken { why: String },
    /// Keycloak's introspection answer (RFC 7662): whether the token is active.
    Active { active: bool },
    /// A load kept on while a part was killed: the requests served, those that failed, and
    /// when the load balancer took the part out (milliseconds after the kill), if it did.
    Survived {
        served: u32,
        failed: u32,
        noticed_after_ms: Option<u64>,
    },
}

/// What an attempt expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Status(u16),
    NoToken,
    /// An introspection answer of `active` this.
    Active(bool),
    /// Every request of a load served while a part died, and the part taken out of rotation.
    Survived,
}

/// One try and the defence's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub tried: String,
    pub expected: Expect,
    pub answer: Answer,
}

impl Attempt {
    /// The attempt the resource server answered.
    pub(crate) fn of_api(
        tried: impl Into<String>,
        expected: Expect,
        answer: playbook_client::ApiResponse,
    ) -> Self {
        Self {
            tried: tried.into(),
            expected,
            answer: Answer::Status {
                status: answer.status,
                www_authenticate: answer.www_authenticate,
            },
        }
    }

    pub fn held(&self) -> bool {
        match (&self.expected, &self.answer) {
            (Expect::Status(want), Answer::Status { status, .. }) => want == status,
            (Expect::NoToken, Answer::NoToken { .. }) => true,
            (Expect::Active(want), Answer::Active { active }) => want == active,
            (
                Expect::Survived,
                Answer::Survived {
                    served,
                    failed,
                    noticed_after_ms,
                },
            ) => *served > 0 && *failed == 0 && noticed_after_ms.is_some(),
            _ => false,
        }
    }

    /// What the mark means, in words: a 200 can be the lesson (a revoked role outlives in the
    /// old token), so a bare ✓ beside it would read as "the attack worked".
    pub fn outcome(&self) -> String {
        match (self.held(), &self.expected) {
            (true, Expect::Status(200) | Expect::Active(true)) => {
                "accepted, as expected".to_owned()
            }
            (true, Expect::Survived) => "survived, as it must".to_owned(),
            (true, _) => "refused, as it must be".to_owned(),
            (false, Expect::Survived) => {
                "NOT as expected (expected every request served and the part taken out)".to_owned()
            }
            (false, Expect::Status(status)) => format!("NOT as expected (expected {status})"),
            (false, Expect::NoToken) => "NOT as expected (expected no token)".to_owned(),
            (false, Expect::Active(active)) => {
                format!("NOT as expected (expected active: {active})")
            }
        }
    }

    /// The answer in a line: status and challenge, or why there was no token.
    pub fn answered(&self) -> String {
        match &self.answer {
            Answer::Status {
                status,
                www_authenticate: Some(challenge),
            } => format!("{status} {challenge}"),
            Answer::Status { status, .. } => status.to_string(),
            Answer::NoToken { why } => format!("no token: {why}"),
            Answer::Active { active } => format!("introspection: active {active}"),
            Answer::Survived {
                served,
                failed,
                noticed_after_ms,
            } => {
                let noticed = match noticed_after_ms {
                    Some(ms) => format!("taken out after {:.1} s", *ms as f64 / 1000.0),
                    None => "never taken out".to_owned(),
                };
                format!("{served} served, {failed} failed, {noticed}")
            }
        }
    }
}

/// A scenario's result: every attempt, in order.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub scenario: &'static Scenario,
    pub attempts: Vec<Attempt>,
}

impl Verdict {
    /// Every attempt got the answer the defence should give.
    pub fn held(&self) -> bool {
        !self.attempts.is_empty() && self.attempts.iter().all(Attempt::held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_are_unique_and_found() {
        for s in &SCENARIOS {
            assert_eq!(scenario(s.name).map(|f| f.name), Some(s.name));
            assert!(
                s.lesson.matches(". ").count() >= 1,
                "two sentences: {}",
                s.name
            );
        }
        assert!(scenario("nope").is_none());
    }

    #[test]
    fn a_verdict_holds_only_when_every_attempt_got_its_expected_answer() {
        let attempt = |expected, status| Attempt {
            tried: "x".into(),
            expected,
            answer: Answer::Status {
                status,
                www_authenticate: None,
            },
        };
        let verdict = |attempts| Verdict {
            scenario: &SCENARIOS[0],
            attempts,
        };
        assert!(
            verdict(vec![
                attempt(Expect::Status(401), 401),
                attempt(Expect::Status(200), 200)
            ])
            .held()
        );
        assert!(!verdict(vec![attempt(Expect::Status(401), 200)]).held());
        assert!(!verdict(vec![attempt(Expect::NoToken, 401)]).held());
        assert!(!verdict(vec![]).held(), "nothing tried, nothing held");
    }
}
