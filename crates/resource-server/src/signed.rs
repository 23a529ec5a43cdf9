//! Cache keys for bytes that end in a signature: a token (JWS compact form) or a certificate
//! (X.509 DER). Both caches that use them sit on the path of every request; hashing a whole
//! 1.1 kB token at its lookup and again at its insertion was 1.2 % of a new token's samples
//! (docs/benchmarks.md).

use std::hash::{Hash, Hasher};

/// Bytes as a cache key: hashed by their last bytes alone, equal only byte for byte. The last
/// bytes are the signature's, which differ between any two things one issuer signed; keys that
/// share an ending only share a bucket, and are still told apart by all their bytes.
#[derive(PartialEq, Eq)]
pub(crate) struct SignedKey(Box<[u8]>);

/// Bytes being looked up, hashed as their [`SignedKey`] would be.
pub(crate) struct SignedRef<'a>(pub &'a [u8]);

/// How many of the last bytes pick a bucket: of a token, 32 base64url characters (~188 bits of
/// an RS256 or ES256 signature); of a certificate, 32 bytes of its issuer's signature.
const HASHED_SUFFIX: usize = 32;

impl SignedKey {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self(bytes.into())
    }
}

fn hash_suffix<H: Hasher>(bytes: &[u8], state: &mut H) {
    bytes[bytes.len().saturating_sub(HASHED_SUFFIX)..].hash(state);
}

impl Hash for SignedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_suffix(&self.0, state)
    }
}

impl Hash for SignedRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_suffix(self.0, state)
    }
}

impl quick_cache::Equivalent<SignedKey> for SignedRef<'_> {
    fn equivalent(&self, key: &SignedKey) -> bool {
        *key.0 == *self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_end_alike_are_different_keys() {
        let cache = quick_cache::sync::Cache::<SignedKey, u8>::new(10);
        let ending = [b'x'; 2 * HASHED_SUFFIX];
        let one = [&b"remembered."[..], &ending].concat();
        let other = [&b"forged."[..], &ending].concat();
        cache.insert(SignedKey::new(&one), 1);
        assert_eq!(cache.get(&SignedRef(&one)), Some(1));
        assert_eq!(cache.get(&SignedRef(&other)), None);
        assert_eq!(cache.get(&SignedRef(&ending[..HASHED_SUFFIX])), None);
        assert_eq!(cache.get(&SignedRef(b"")), None);
    }
}
