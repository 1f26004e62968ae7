//! Meteor's seeded ids, derived here independently of the client: the
//! stream `DDP.randomStream(scope)` of a method whose call carried a
//! `randomSeed`, i.e. `Random.createWithSeeds(randomSeed, scope)` — Johannes
//! Baagøe's Alea generator seeded through his Mash hash — and ids made as
//! `Random.id()` makes them (17 characters, each
//! `alphabet[floor(fraction() * 55)]`).
//!
//! The arithmetic is IEEE double arithmetic as JavaScript does it: `x >>> 0`
//! is ToUint32 (truncate, then modulo 2³²), `x | 0` is ToInt32, and strings
//! are hashed by UTF-16 code unit (`charCodeAt`).
//!
//! The client has its own implementation (`src/protocol/random.rs`), written
//! separately on purpose: the test server must not share the client's code,
//! so that each is checked against Meteor (tests/meteor_ids.rs here, the
//! client's random.rs tests there) rather than against itself.

/// The alphabet of Meteor's `Random.id()` (no look-alike characters).
pub const UNMISTAKABLE: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

const TWO_32: f64 = 4_294_967_296.0;
/// 2⁻³², written as Meteor's source writes it.
const TWO_NEG_32: f64 = 2.328_306_436_538_696_3e-10;

/// JavaScript's ToUint32 (`x >>> 0`).
fn to_uint32(x: f64) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    x.trunc().rem_euclid(TWO_32)
}

/// JavaScript's ToInt32 (`x | 0`).
fn to_int32(x: f64) -> f64 {
    let u = to_uint32(x);
    if u >= TWO_32 / 2.0 {
        u - TWO_32
    } else {
        u
    }
}

/// Baagøe's Mash hash (version 0.9): its state carries over between calls.
struct Mash {
    n: f64,
}

impl Mash {
    fn new() -> Self {
        Mash { n: f64::from(0xefc8_249d_u32) }
    }

    fn hash(&mut self, data: &str) -> f64 {
        for unit in data.encode_utf16() {
            self.n += f64::from(unit);
            let mut h = 0.025_196_032_824_169_38 * self.n;
            self.n = to_uint32(h);
            h -= self.n;
            h *= self.n;
            self.n = to_uint32(h);
            h -= self.n;
            self.n += h * TWO_32;
        }
        to_uint32(self.n) * TWO_NEG_32
    }
}

/// The Alea generator (version 0.9), seeded with strings as
/// `Random.createWithSeeds(...seeds)` seeds it (each seed `toString`ed).
pub struct Alea {
    s0: f64,
    s1: f64,
    s2: f64,
    c: f64,
}

impl Alea {
    /// A generator seeded with `seeds` (at least one, as Meteor requires).
    pub fn new(seeds: &[&str]) -> Self {
        let mut mash = Mash::new();
        let mut s0 = mash.hash(" ");
        let mut s1 = mash.hash(" ");
        let mut s2 = mash.hash(" ");
        for seed in seeds {
            for s in [&mut s0, &mut s1, &mut s2] {
                *s -= mash.hash(seed);
                if *s < 0.0 {
                    *s += 1.0;
                }
            }
        }
        Alea { s0, s1, s2, c: 1.0 }
    }

    /// The next number in [0, 1) (`Random.fraction()`).
    pub fn fraction(&mut self) -> f64 {
        let t = 2_091_639.0 * self.s0 + self.c * TWO_NEG_32;
        self.s0 = self.s1;
        self.s1 = self.s2;
        self.c = to_int32(t);
        self.s2 = t - self.c;
        self.s2
    }

    /// `Random.id()`: 17 characters of [`UNMISTAKABLE`].
    pub fn id(&mut self) -> String {
        (0..17)
            .map(|_| {
                let i = (self.fraction() * UNMISTAKABLE.len() as f64).floor() as usize;
                UNMISTAKABLE[i.min(UNMISTAKABLE.len() - 1)] as char
            })
            .collect()
    }
}

/// `DDP.randomStream(scope)` in a method invoked with `randomSeed`: Meteor
/// names an empty scope "default".
pub fn stream(random_seed: &str, scope: &str) -> Alea {
    let scope = if scope.is_empty() { "default" } else { scope };
    Alea::new(&[random_seed, scope])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_integer_conversions() {
        assert_eq!(to_uint32(-1.0), 4_294_967_295.0);
        assert_eq!(to_uint32(4_294_967_297.5), 1.0);
        assert_eq!(to_uint32(f64::NAN), 0.0);
        assert_eq!(to_int32(2_147_483_648.0), -2_147_483_648.0);
        assert_eq!(to_int32(-0.5), 0.0);
    }

    #[test]
    fn fractions_stay_in_the_unit_interval() {
        let mut a = stream("seed", "x");
        for _ in 0..10_000 {
            let f = a.fraction();
            assert!((0.0..1.0).contains(&f), "{f}");
        }
    }
}
