//! Deterministic ids from a `randomSeed`, so that a client stub and the
//! server generate the same ids for the documents a method inserts.
//!
//! A stream is named by the seed and a scope (e.g. a collection name); its
//! n-th id is the same wherever it is computed. (This is this library's own
//! generator, shared by its client and its test server; Meteor's servers use
//! a different one, so against Meteor the stub's ids are only provisional.)

/// The alphabet of Meteor's `Random.id()`.
pub const ID_ALPHABET: &[u8; 55] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

/// A stream of ids for one seed and scope.
#[derive(Debug, Clone)]
pub struct RandomStream {
    state: u64,
}

impl RandomStream {
    /// The stream named by `seed` and `scope`.
    pub fn new(seed: &str, scope: &str) -> Self {
        // FNV-1a over "seed\0scope" picks the starting state.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed.bytes().chain(std::iter::once(0)).chain(scope.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        RandomStream { state: h }
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next 17-character id.
    pub fn next_id(&mut self) -> String {
        (0..17).map(|_| ID_ALPHABET[(self.next_u64() % 55) as usize] as char).collect()
    }
}

/// A new seed of 20 characters from `random` numbers in `[0, 1)`.
pub fn new_seed(mut random: impl FnMut() -> f64) -> String {
    (0..20).map(|_| ID_ALPHABET[((random() * 55.0) as usize).min(54)] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_scope_same_ids() {
        let mut a = RandomStream::new("seed", "items");
        let mut b = RandomStream::new("seed", "items");
        let ids: Vec<String> = (0..5).map(|_| a.next_id()).collect();
        assert_eq!(ids, (0..5).map(|_| b.next_id()).collect::<Vec<_>>());
        assert!(ids.iter().all(|i| i.len() == 17 && i.bytes().all(|c| ID_ALPHABET.contains(&c))));
        assert_ne!(ids[0], ids[1]);
        assert_ne!(RandomStream::new("seed", "other").next_id(), ids[0]);
        assert_ne!(RandomStream::new("seee", "items").next_id(), ids[0]);
    }

    #[test]
    fn seeds_have_20_characters() {
        let mut x = 0.0;
        let s = new_seed(|| {
            x = (x + 0.37) % 1.0;
            x
        });
        assert_eq!(s.len(), 20);
        assert_eq!(new_seed(|| 0.999_999_9).len(), 20);
    }
}
