//! DPoP (RFC 9449): a token bound to a key the client proves it holds on every request, instead
//! of to a TLS client certificate (RFC 8705). Both halves live here, so the client and the
//! resource server cannot drift apart on what a proof is:
//!
//! - [`ProofKey`] makes proofs: a JWT typed `dpop+jwt`, signed with the client's key, carrying
//!   the public half (`jwk`), the request it is for (`htm`, `htu`), when (`iat`), a unique `jti`,
//!   and, on a resource request, the hash of the access token it accompanies (`ath`).
//! - [`ProofRules::verify`] checks one, in the order of RFC 9449 section 4.3; the caller then
//!   compares [`VerifiedProof::jkt`] with the token's `cnf.jkt` and records the `jti` in a
//!   [`ReplayCache`].
//! - [`Nonces`] issues and checks server nonces (section 9) without keeping any.
//!
//! ```
//! use playbook_dpop::{ProofKey, ProofRules, unix_now};
//!
//! let key = ProofKey::generate().unwrap();
//! let url = url::Url::parse("https://localhost:8443/api/users?page=2").unwrap();
//! let proof = key.proof("GET", &url, Some("the.access.token"), None).unwrap();
//! let rules = ProofRules::default();
//! let checked = rules.verify(&proof, "GET", &url, Some("the.access.token"), unix_now()).unwrap();
//! assert_eq!(checked.jkt, key.thumbprint());
//! // A proof for another token, or another request, is refused.
//! assert!(rules.verify(&proof, "GET", &url, Some("another.token"), unix_now()).is_err());
//! assert!(rules.verify(&proof, "POST", &url, Some("the.access.token"), unix_now()).is_err());
//! ```
//!
//! Written on jsonwebtoken and aws-lc-rs, the crates the resource server already verifies
//! tokens with, rather than taken from `huskarl`: its crypto crate is RustCrypto only (p256, a
//! pinned pre-release `rsa`) with no backend choice, so it would bring a second crypto stack and
//! ~100 crates, and its resource server keeps the `htm`/`htu`/`ath`/`cnf.jkt` checks private
//! behind its own token validator. `dpop-verifier` has had four majors in months and verifies
//! ES256 and EdDSA only. What is left to write is the claim checks: the part a learner reads.

mod nonce;
mod proof;
mod replay;
mod verify;

pub use nonce::{NONCE_LIFETIME, Nonces};
pub use proof::{ProofClaims, ProofKey};
pub use replay::{REPLAY_CACHE_CAPACITY, Replay, ReplayCache};
pub use verify::{ProofAlgorithm, ProofError, ProofRules, VerifiedProof, htu_of};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The HTTP header a proof travels in.
pub const HEADER: &str = "DPoP";
/// The `Authorization` scheme of a DPoP-bound token (RFC 9449 section 7.1).
pub const SCHEME: &str = "DPoP";
/// The header a server sends a nonce in (section 8 and 9).
pub const NONCE_HEADER: &str = "DPoP-Nonce";
/// The proof's JOSE `typ`: explicit typing (RFC 8725 section 3.11), so no other JWT is ever
/// taken for a proof.
pub const PROOF_TYPE: &str = "dpop+jwt";
/// The token response's `token_type` for a DPoP-bound token (section 5).
pub const TOKEN_TYPE: &str = "DPoP";
/// The error codes of section 7.1 and 8.
pub const INVALID_DPOP_PROOF: &str = "invalid_dpop_proof";
pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";

/// `ath`: base64url(SHA-256(access token)), binding a proof to the token it accompanies.
pub fn ath(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Seconds since the Unix epoch, the unit of `iat`.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
