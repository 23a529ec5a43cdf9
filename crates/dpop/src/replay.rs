//! RFC 9449 section 11.1: a proof is single-use. A server remembers the `jti` of every proof it
//! accepted for as long as that proof could still be accepted (its `iat` window), and refuses a
//! proof whose `jti` it has seen.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most proofs remembered at once: 9 bytes a bucket, the sets' buckets a power of two above
/// 8/7 of their entries (9 MiB when full; ~13.5 MiB for the moment a set grows), enough for
/// ~7,500 DPoP requests a second over the default 65 s window.
pub const REPLAY_CACHE_CAPACITY: usize = 500_000;

/// What [`ReplayCache::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Not seen before; now remembered.
    Fresh,
    /// Seen before within the window: the proof is a replay.
    Replayed,
    /// Full: nothing can be remembered, so nothing is accepted (fail closed) until the window
    /// moves on. Only proofs that passed every other check, for a valid token, get in, so
    /// filling it takes a valid token and its key.
    Full,
}

/// Proof ids seen within the last window, in two generations: an id lives in the current one,
/// then in the previous one, so it is remembered for at least one window and at most two, and
/// forgetting costs a swap, not a scan. Memory is bounded by the capacity, never by traffic.
///
/// Each id is kept as a 64-bit keyed hash of the key's thumbprint and the `jti` (a random key per
/// process: nobody can aim two ids at one hash). A collision could only refuse an honest proof,
/// never accept a replay; with 500,000 ids its odds are about 1 in 10^8.
pub struct ReplayCache {
    window: Duration,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    generations: Mutex<Generations>,
}

struct Generations {
    started: Instant,
    current: HashSet<u64>,
    previous: HashSet<u64>,
}

impl ReplayCache {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity,
            hasher: Default::default(),
            generations: Mutex::new(Generations {
                started: Instant::now(),
                current: HashSet::new(),
                previous: HashSet::new(),
            }),
        }
    }

    /// Whether the proof of key `jkt` with id `jti` is new, remembering it if so.
    pub fn check(&self, jkt: &str, jti: &str) -> Replay {
        self.check_at(jkt, jti, Instant::now())
    }

    fn check_at(&self, jkt: &str, jti: &str, now: Instant) -> Replay {
        let id = self.hasher.hash_one((jkt, jti));
        let mut guard = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let generations = &mut *guard;
        let elapsed = now.saturating_duration_since(generations.started);
        if elapsed >= 2 * self.window {
            // Everything remembered was accepted over a window ago.
            generations.current.clear();
            generations.previous.clear();
            generations.started = now;
        } else if elapsed >= self.window {
            generations.previous = std::mem::take(&mut generations.current);
            generations.started = now;
        }
        if generations.current.contains(&id) || generations.previous.contains(&id) {
            return Replay::Replayed;
        }
        if generations.current.len() + generations.previous.len() >= self.capacity {
            return Replay::Full;
        }
        generations.current.insert(id);
        Replay::Fresh
    }

    /// How many proof ids are remembered now.
    pub fn len(&self) -> usize {
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        generations.current.len() + generations.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes the two sets hold allocated, for the benchmark's memory figure: each bucket a
    /// u64 and a control byte, the buckets a power of two of which 7/8 may fill (hashbrown's
    /// layout; `capacity()` reports the 7/8).
    pub fn allocated_bytes(&self) -> usize {
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = |set: &HashSet<u64>| match set.capacity() {
            0 => 0,
            usable => (usable * 8).div_ceil(7).next_power_of_two() * (size_of::<u64>() + 1),
        };
        bytes(&generations.current) + bytes(&generations.previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_id_is_accepted_once_per_window_and_forgotten_after_it() {
        let window = Duration::from_secs(60);
        let cache = ReplayCache::new(window, 100);
        let start = Instant::now();
        assert_eq!(cache.check_at("k", "a", start), Replay::Fresh);
        assert_eq!(cache.check_at("k", "a", start), Replay::Replayed);
        // The same jti under another key is another proof.
        assert_eq!(cache.check_at("other", "a", start), Replay::Fresh);
        // Remembered through the whole window, across a rotation.
        let later = start + window + Duration::from_secs(1);
        assert_eq!(cache.check_at("k", "a", later), Replay::Replayed);
        // Forgotten two windows on: no proof that old is accepted anyway.
        let much_later = later + 2 * window;
        assert_eq!(cache.check_at("k", "a", much_later), Replay::Fresh);
    }

    #[test]
    fn a_full_cache_refuses_instead_of_forgetting() {
        let cache = ReplayCache::new(Duration::from_secs(60), 3);
        let now = Instant::now();
        for jti in ["a", "b", "c"] {
            assert_eq!(cache.check_at("k", jti, now), Replay::Fresh);
        }
        assert_eq!(cache.check_at("k", "d", now), Replay::Full);
        assert_eq!(cache.check_at("k", "a", now), Replay::Replayed);
        assert_eq!(cache.len(), 3);
        // Two windows on, room again.
        let later = now + Duration::from_secs(121);
        assert_eq!(cache.check_at("k", "d", later), Replay::Fresh);
    }
}
