//! A fast hasher for the client's maps.
//!
//! std's default SipHash resists hash flooding by untrusted keys. A client's
//! keys (document ids, collection names, call ids) come from its own server,
//! which can send anything it likes anyway, so that resistance buys nothing
//! here, while SipHash showed up in the per-document profile. This is 64-bit
//! FNV-1a over bytes, with whole-word steps for integers.

// The one place the std tables are named: everything else uses the aliases
// below (clippy.toml disallows the std types with the default hasher).
#[allow(clippy::disallowed_types)]
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a.
#[derive(Clone, Copy)]
pub struct FastHasher(u64);

impl Default for FastHasher {
    fn default() -> Self {
        FastHasher(OFFSET)
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // Spread the low bits (hashbrown takes its control bits from the top).
        let h = self.0;
        h ^ (h >> 29) ^ (h << 17)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(PRIME);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(PRIME);
        self.0 = (self.0 ^ (n >> 32)).wrapping_mul(PRIME);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A `HashMap` with [`FastHasher`].
#[allow(clippy::disallowed_types)]
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A `HashSet` with [`FastHasher`].
#[allow(clippy::disallowed_types)]
pub type FastSet<T> = HashSet<T, BuildHasherDefault<FastHasher>>;

/// A map from names to values for the handful of entries a client keeps by
/// name (collections, stubs, EJSON types, random streams): a vector, looked
/// up by scanning. For a few dozen entries that is as fast as hashing, and
/// each value type costs the wasm a few hundred bytes instead of a hash
/// table's few thousand.
#[derive(Debug, Clone)]
pub struct NameMap<V>(Vec<(String, V)>);

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap(Vec::new())
    }
}

impl<V> NameMap<V> {
    fn index(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| k == name)
    }

    pub fn get(&self, name: &str) -> Option<&V> {
        self.index(name).map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        self.index(name).map(|i| &mut self.0[i].1)
    }

    /// Sets `name` to `value`; returns the value it replaced.
    pub fn insert(&mut self, name: String, value: V) -> Option<V> {
        match self.index(&name) {
            Some(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            None => {
                self.0.push((name, value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<V> {
        self.index(name).map(|i| self.0.swap_remove(i).1)
    }

    /// The value of `name`, made by `make` if there is none yet.
    pub fn get_or_insert_with(&mut self, name: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.index(name) {
            Some(i) => i,
            None => {
                self.0.push((name.to_owned(), make()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_ids_spread_over_buckets() {
        // Sequential ids (as servers often make them) must not pile up in a
        // few buckets: look at the low 10 bits of 10,000 hashes.
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<FastHasher>::default();
        let mut buckets = vec![0u32; 1024];
        for i in 0..10_000 {
            buckets[(build.hash_one(format!("item-{i}")) & 1023) as usize] += 1;
        }
        let max = buckets.iter().copied().max().unwrap_or(0);
        assert!(max < 40, "a bucket holds {max} of 10000 (expected ~10)");
        let mut map: FastMap<String, usize> = FastMap::default();
        for i in 0..1000 {
            map.insert(format!("k{i}"), i);
        }
        assert!((0..1000).all(|i| map.get(&format!("k{i}")) == Some(&i)));
    }

    #[test]
    fn name_maps_insert_replace_get_remove() {
        let mut m: NameMap<u32> = NameMap::default();
        assert_eq!(m.insert("a".into(), 1), None);
        assert_eq!(m.insert("b".into(), 2), None);
        assert_eq!(m.insert("a".into(), 3), Some(1));
        assert_eq!((m.get("a"), m.get("b"), m.get("c"), m.len()), (Some(&3), Some(&2), None, 2));
        *m.get_or_insert_with("c", || 7) += 1;
        *m.get_or_insert_with("a", || 99) += 1;
        assert_eq!((m.get("c"), m.get("a")), (Some(&8), Some(&4)));
        assert_eq!(m.remove("a"), Some(4));
        assert_eq!(m.remove("a"), None);
        let mut v: Vec<u32> = m.values().copied().collect();
        v.sort_unstable();
        assert_eq!(v, [2, 8]);
        assert!(!m.is_empty());
    }
}
