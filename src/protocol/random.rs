//! Deterministic ids from a `randomSeed`, exactly as Meteor derives them, so
//! that a client stub and a Meteor server generate the same ids for the
//! documents a method inserts (an optimistic insert is then replaced by the
//! server's document in place, with no flicker and no duplicate).
//!
//! Meteor's method invocation seeds one generator per scope (for example
//! `"/collection/todos"`) with the pair `(randomSeed, scope)`, and that
//! generator is Johannes Baagøe's Alea, whose seeds are folded in with his
//! Mash hash. Both run on IEEE doubles as JavaScript computes them; this
//! module follows the published algorithm step by step in `f64`, with
//! JavaScript's `>>> 0` and `| 0` conversions. `Random.id()` then picks 17
//! characters of an unmistakable alphabet with `floor(fraction · 55)`.
//! The tests check the ids against Meteor's own server code (`newId(scope)`
//! of the fixture in `shared/meteor-server`) when it is present.

/// The alphabet of Meteor's `Random.id()`.
pub const ID_ALPHABET: &[u8; 55] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";

const TWO_POW_32: f64 = 4_294_967_296.0;
const TWO_POW_MINUS_32: f64 = 2.328_306_436_538_696_3e-10;

/// JavaScript's `x >>> 0` (ToUint32) for a finite number.
fn to_uint32(x: f64) -> f64 {
    x.trunc().rem_euclid(TWO_POW_32)
}

/// JavaScript's `x | 0` (ToInt32) for a finite number.
fn to_int32(x: f64) -> f64 {
    let u = to_uint32(x);
    if u >= TWO_POW_32 / 2.0 {
        u - TWO_POW_32
    } else {
        u
    }
}

/// Baagøe's Mash: a running hash of strings (as UTF-16 code units, as
/// JavaScript's `charCodeAt` sees them) into `[0, 1)`.
struct Mash {
    n: f64,
}

impl Mash {
    fn new() -> Self {
        Mash { n: f64::from(0xefc8_249d_u32) }
    }

    fn mash(&mut self, data: &str) -> f64 {
        let mut n = self.n;
        for unit in data.encode_utf16() {
            n += f64::from(unit);
            let mut h = 0.025_196_032_824_169_38 * n;
            n = to_uint32(h);
            h -= n;
            h *= n;
            n = to_uint32(h);
            h -= n;
            n += h * TWO_POW_32;
        }
        self.n = n;
        to_uint32(n) * TWO_POW_MINUS_32
    }
}

/// Baagøe's Alea generator: fractions in `[0, 1)` from a list of seeds.
#[derive(Debug, Clone)]
pub struct Alea {
    s0: f64,
    s1: f64,
    s2: f64,
    c: f64,
}

impl Alea {
    /// A generator seeded with `seeds`, in order (Meteor's
    /// `Random.createWithSeeds(...seeds)`).
    pub fn new(seeds: &[&str]) -> Self {
        let mut mash = Mash::new();
        let mut s0 = mash.mash(" ");
        let mut s1 = mash.mash(" ");
        let mut s2 = mash.mash(" ");
        for seed in seeds {
            for s in [&mut s0, &mut s1, &mut s2] {
                *s -= mash.mash(seed);
                if *s < 0.0 {
                    *s += 1.0;
                }
            }
        }
        Alea { s0, s1, s2, c: 1.0 }
    }

    /// The next fraction in `[0, 1)` (Meteor's `Random.fraction()`).
    pub fn fraction(&mut self) -> f64 {
        let t = 2_091_639.0 * self.s0 + self.c * TWO_POW_MINUS_32;
        self.s0 = self.s1;
        self.s1 = self.s2;
        self.c = to_int32(t);
        self.s2 = t - self.c;
        self.s2
    }

    /// `n` characters picked from `alphabet` (Meteor's `Random.choice`).
    fn string(&mut self, n: usize, alphabet: &[u8]) -> String {
        (0..n)
            .map(|_| {
                let i = (self.fraction() * alphabet.len() as f64).floor() as usize;
                char::from(alphabet[i.min(alphabet.len() - 1)])
            })
            .collect()
    }

    /// A 17-character id (Meteor's `Random.id()`).
    pub fn id(&mut self) -> String {
        self.string(17, ID_ALPHABET)
    }

    /// `digits` lowercase hexadecimal digits (Meteor's `Random.hexString`).
    pub fn hex_string(&mut self, digits: usize) -> String {
        self.string(digits, b"0123456789abcdef")
    }
}

/// The ids of one scope of a method call: Meteor's
/// `DDP.randomStream(scope)` inside a method that got `randomSeed`.
#[derive(Debug, Clone)]
pub struct RandomStream {
    alea: Alea,
}

impl RandomStream {
    /// The stream named by `seed` (the call's `randomSeed`) and `scope`.
    pub fn new(seed: &str, scope: &str) -> Self {
        RandomStream { alea: Alea::new(&[seed, scope]) }
    }

    /// The next 17-character id.
    pub fn next_id(&mut self) -> String {
        self.alea.id()
    }
}

/// A new `randomSeed` of 20 hexadecimal digits (the shape Meteor's client
/// sends), from `random` numbers in `[0, 1)`.
pub fn new_seed(mut random: impl FnMut() -> f64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..20).map(|_| char::from(HEX[((random() * 16.0) as usize).min(15)])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn javascript_integer_conversions() {
        assert_eq!(to_uint32(-1.0), 4_294_967_295.0);
        assert_eq!(to_uint32(4_294_967_296.5), 0.0);
        assert_eq!(to_uint32(3.99), 3.0);
        assert_eq!(to_int32(2_147_483_648.0), -2_147_483_648.0);
        assert_eq!(to_int32(12.7), 12.0);
        assert_eq!(to_int32(-12.7), -12.0);
    }

    #[test]
    fn fractions_stay_in_the_unit_interval_and_streams_are_independent() {
        let mut a = Alea::new(&["seed", "items"]);
        for _ in 0..10_000 {
            let f = a.fraction();
            assert!((0.0..1.0).contains(&f), "{f}");
        }
        let mut x = RandomStream::new("seed", "items");
        let mut y = RandomStream::new("seed", "items");
        let ids: Vec<String> = (0..5).map(|_| x.next_id()).collect();
        assert_eq!(ids, (0..5).map(|_| y.next_id()).collect::<Vec<_>>());
        assert!(ids.iter().all(|i| i.len() == 17 && i.bytes().all(|c| ID_ALPHABET.contains(&c))));
        assert_ne!(ids[0], ids[1]);
        assert_ne!(RandomStream::new("seed", "other").next_id(), ids[0]);
        assert_ne!(RandomStream::new("seee", "items").next_id(), ids[0]);
    }

    #[test]
    fn seeds_are_20_hex_digits() {
        let mut x = 0.0;
        let s = new_seed(|| {
            x = (x + 0.37) % 1.0;
            x
        });
        assert_eq!(s.len(), 20);
        assert!(s.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(new_seed(|| 0.999_999_9), "ffffffffffffffffffff");
    }

    /// The ids of `seed`/`scope` as Meteor's own code makes them, by running
    /// the fixture's `random` package under node (`None` when the fixture or
    /// node is absent).
    fn meteor_ids(cases: &[(String, String)], per_stream: usize) -> Option<Vec<Vec<String>>> {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/meteor-server");
        if !fixture.join("shim.js").exists() {
            return None;
        }
        // Its npm dependencies, as its run.sh installs them (scripts/setup.sh
        // does it first; this covers a bare `cargo test`).
        if !fixture.join("node_modules/@meteorjs/reify").is_dir() {
            let npm = std::process::Command::new("npm")
                .current_dir(&fixture)
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .status();
            assert!(npm.is_ok_and(|s| s.success()), "npm install in the Meteor fixture failed");
        }
        let script = format!(
            r#"const M = require({shim:?});
               const cases = JSON.parse(process.argv[1]);
               const out = cases.map(([seed, scope]) => {{
                 const s = new M.DDPCommon.RandomStream({{seed}});
                 const seq = s._sequence(scope);
                 return Array.from({{length: {per_stream}}}, () => seq.id());
               }});
               process.stdout.write(JSON.stringify(out));
               process.exit(0);"#,
            shim = fixture.join("shim.js").to_string_lossy(),
        );
        let output = std::process::Command::new("node")
            .current_dir(&fixture)
            .arg("-e")
            .arg(script)
            .arg(serde_json::to_string(cases).ok()?)
            .output()
            .ok()?;
        assert!(output.status.success(), "node failed: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout);
        Some(serde_json::from_str(text.trim()).expect("the fixture prints JSON"))
    }

    #[test]
    fn ids_equal_meteors_for_the_same_seed_and_scope() {
        let mut r = Alea::new(&["test cases"]);
        let mut cases: Vec<(String, String)> = (0..200).map(|i| (r.hex_string(20), format!("/collection/c{i}"))).collect();
        // Scopes and seeds of every shape: empty, unicode (UTF-16 pairs), long.
        cases.push((r.hex_string(20), String::new()));
        cases.push((r.hex_string(20), "/rpc/insertTodo".into()));
        cases.push(("seed with spaces and ünïcödé 🎉".into(), "scope 𝄞 ✓".into()));
        cases.push(("x".repeat(5000), "y".repeat(3000)));
        let Some(meteor) = meteor_ids(&cases, 5) else {
            println!("skipped: no Meteor fixture (../shared/meteor-server) or no node");
            return;
        };
        for ((seed, scope), expected) in cases.iter().zip(meteor) {
            let mut ours = RandomStream::new(seed, scope);
            let got: Vec<String> = (0..expected.len()).map(|_| ours.next_id()).collect();
            assert_eq!(got, expected, "seed {seed:?} scope {scope:?}");
        }
    }
}
