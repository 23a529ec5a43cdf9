//! Server nonces (RFC 9449 section 9): a server that wants proofs made after a moment it chose
//! sends a nonce, and accepts only proofs carrying a current one. These are stateless: a nonce
//! is its period's number and an HMAC of it, so checking one needs no memory of what was sent.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long one nonce is handed out; it is accepted for that period and the next one.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(60);

/// Issues and checks nonces with a key made at start (a restart invalidates them all, and the
/// client then gets `use_dpop_nonce` once and retries with the new one).
pub struct Nonces {
    key: hmac::Key,
}

impl Default for Nonces {
    fn default() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Self {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system's randomness"),
        }
    }
}

impl Nonces {
    /// The nonce to hand out at `now` (seconds since the epoch).
    pub fn current(&self, now: i64) -> String {
        self.of_period(now.max(0) as u64 / NONCE_LIFETIME.as_secs())
    }

    /// Whether `nonce` was handed out by this server in this period or the one before.
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let period = now.max(0) as u64 / NONCE_LIFETIME.as_secs();
        [period, period.saturating_sub(1)].iter().any(|p| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                nonce.as_bytes(),
                self.of_period(*p).as_bytes(),
            )
            .is_ok()
        })
    }

    fn of_period(&self, period: u64) -> String {
        let tag = hmac::sign(&self.key, &period.to_be_bytes());
        let mut bytes = period.to_be_bytes().to_vec();
        bytes.extend_from_slice(&tag.as_ref()[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_lives_two_periods_and_only_on_the_server_that_made_it() {
        let nonces = Nonces::default();
        let now = 1_800_000_000;
        let nonce = nonces.current(now);
        assert!(nonces.accepts(&nonce, now));
        assert!(nonces.accepts(&nonce, now + 60));
        assert!(!nonces.accepts(&nonce, now + 180));
        assert!(!nonces.accepts("made-up", now));
        assert!(
            !Nonces::default().accepts(&nonce, now),
            "another server's key"
        );
    }
}
