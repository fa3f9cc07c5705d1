//! Deterministic randomness for the catalogue and the tastes: splitmix64 and a keyed hash
//! built from it. Our own, not `rand`, because the output must never change with a crate
//! upgrade: tests (and people's bookmarked demo screenshots) pin exact ids and rankings.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// One splitmix64 finaliser step: a bijective, well-mixed function of `x`.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Hash of a seed and a list of parts; order matters. Parts are small integers (indices,
/// domain tags, day numbers), so callers build keys like `hash(seed, &[TAG, user, artist])`.
pub(crate) fn hash(seed: u64, parts: &[u64]) -> u64 {
    let mut h = mix64(seed ^ GOLDEN);
    for &part in parts {
        h = mix64(h.wrapping_add(GOLDEN) ^ part);
    }
    h
}

/// A hash as a float in `[0, 1)`, using the top 53 bits so every value is exact.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Tag a string for use as a hash part (FNV-1a; only ever fed our own constants and ids).
pub(crate) fn tag(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// A splitmix64 stream, for building one object's many random attributes in sequence.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// Uniform in `0..n` (n > 0). The modulo bias is below 2^-50 for our small `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        unit(self.next_u64()) < p
    }

    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A Spotify-shaped id: 22 base62 characters, each drawn independently so every position
/// looks random (encoding one u128 would leave the first character in a narrow range).
pub(crate) fn base62_id(key: u64) -> String {
    let mut rng = SplitMix::new(key);
    (0..22).map(|_| char::from(rng.pick(BASE62))).collect()
}

/// What Spotify checks before looking an id up: exactly 22 base62 characters.
pub(crate) fn is_base62_id(s: &str) -> bool {
    s.len() == 22 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_base62_chars_and_stable() {
        let id = base62_id(hash(2026, &[1, 2]));
        assert_eq!(id.len(), 22);
        assert!(is_base62_id(&id));
        assert_eq!(id, base62_id(hash(2026, &[1, 2])));
        assert_ne!(id, base62_id(hash(2026, &[1, 3])));
        assert_ne!(id, base62_id(hash(2027, &[1, 2])));
    }

    #[test]
    fn id_shape_check_rejects_near_misses() {
        assert!(is_base62_id("4Z8W4fKeB5YxbusRsdQVPb"));
        assert!(!is_base62_id("4Z8W4fKeB5YxbusRsdQVP"));
        assert!(!is_base62_id("4Z8W4fKeB5YxbusRsdQVPb1"));
        assert!(!is_base62_id("4Z8W4fKeB5YxbusRsdQVP-"));
        assert!(!is_base62_id("4Z8W4fKeB5YxbusRsdQVPé"));
    }

    #[test]
    fn unit_stays_in_range() {
        assert_eq!(unit(0), 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }

    #[test]
    fn hash_depends_on_order_of_parts() {
        assert_ne!(hash(1, &[1, 2]), hash(1, &[2, 1]));
        assert_ne!(hash(1, &[]), hash(1, &[0]));
    }

    #[test]
    fn splitmix_matches_reference_values() {
        // Reference output of splitmix64 seeded with 0 (Vigna's C implementation).
        let mut rng = SplitMix::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
