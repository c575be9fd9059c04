//! A hasher for `u64` keys (request ids, block hashes) in the simulator's hot maps: one
//! multiply instead of SipHash. Maps are only looked up, never iterated for decisions, so
//! the faster hash cannot change results.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing of a single `u64`.
#[derive(Debug, Default, Clone, Copy)]
pub struct U64Hasher(u64);

impl Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }

    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

/// A `HashMap` keyed by `u64` with [`U64Hasher`].
pub type U64Map<V> = HashMap<u64, V, BuildHasherDefault<U64Hasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_work_with_sequential_and_random_keys() {
        let mut m: U64Map<u32> = U64Map::default();
        for i in 0..10_000u64 {
            m.insert(i, i as u32);
            m.insert((i << 32) | 0xffff, 7);
        }
        assert_eq!(m.get(&4242), Some(&4242));
        assert_eq!(m.len(), 20_000);
    }
}
