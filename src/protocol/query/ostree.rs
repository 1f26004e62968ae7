//! An order-statistics set: a treap (kept in one arena) whose nodes count
//! their subtrees, so insert, remove, rank and n-th are O(log n) expected.

use std::cmp::Ordering;

const NIL: u32 = u32::MAX;

struct Node<K> {
    key: Option<K>,
    left: u32,
    right: u32,
    size: u32,
    priority: u32,
}

/// Ordered keys with positions.
pub struct OsTree<K> {
    nodes: Vec<Node<K>>,
    free: Vec<u32>,
    root: u32,
    seed: u64,
}

impl<K: Ord> Default for OsTree<K> {
    fn default() -> Self {
        OsTree { nodes: Vec::new(), free: Vec::new(), root: NIL, seed: 0x9E37_79B9_7F4A_7C15 }
    }
}

impl<K: Ord> OsTree<K> {
    /// How many keys.
    pub fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    fn size(&self, n: u32) -> u32 {
        if n == NIL {
            0
        } else {
            self.nodes[n as usize].size
        }
    }

    fn fix(&mut self, n: u32) {
        let (l, r) = (self.nodes[n as usize].left, self.nodes[n as usize].right);
        self.nodes[n as usize].size = 1 + self.size(l) + self.size(r);
    }

    fn key(&self, n: u32) -> &K {
        self.nodes[n as usize].key.as_ref().unwrap_or_else(|| unreachable!("a live node holds its key"))
    }

    fn next_priority(&mut self) -> u32 {
        // xorshift64*
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        (self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// Splits `t` into (keys < `key`, keys ≥ `key`).
    fn split(&mut self, t: u32, key: &K) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.key(t) < key {
            let r = self.nodes[t as usize].right;
            let (a, b) = self.split(r, key);
            self.nodes[t as usize].right = a;
            self.fix(t);
            (t, b)
        } else {
            let l = self.nodes[t as usize].left;
            let (a, b) = self.split(l, key);
            self.nodes[t as usize].left = b;
            self.fix(t);
            (a, t)
        }
    }

    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let r = self.nodes[a as usize].right;
            let m = self.merge(r, b);
            self.nodes[a as usize].right = m;
            self.fix(a);
            a
        } else {
            let l = self.nodes[b as usize].left;
            let m = self.merge(a, l);
            self.nodes[b as usize].left = m;
            self.fix(b);
            b
        }
    }

    /// Inserts `key` (absent) and returns its position.
    pub fn insert(&mut self, key: K) -> usize {
        let priority = self.next_priority();
        let node = Node { key: None, left: NIL, right: NIL, size: 1, priority };
        let (l, r) = self.split(self.root, &key);
        let rank = self.size(l) as usize;
        let n = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.nodes[n as usize].key = Some(key);
        let left = self.merge(l, n);
        self.root = self.merge(left, r);
        rank
    }

    /// Removes `key` and returns its position (`None` if absent).
    pub fn remove(&mut self, key: &K) -> Option<usize> {
        let rank = self.rank(key)?;
        let (l, r) = self.split(self.root, key);
        // The smallest key of `r` is `key`: cut it off.
        let (mid, rest) = self.split_first(r);
        if mid != NIL {
            self.nodes[mid as usize].key = None;
            self.free.push(mid);
        }
        self.root = self.merge(l, rest);
        Some(rank)
    }

    /// Splits off the leftmost node of `t`: (that node, the rest).
    fn split_first(&mut self, t: u32) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        let l = self.nodes[t as usize].left;
        if l == NIL {
            let r = self.nodes[t as usize].right;
            self.nodes[t as usize].right = NIL;
            self.fix(t);
            return (t, r);
        }
        let (first, rest) = self.split_first(l);
        self.nodes[t as usize].left = rest;
        self.fix(t);
        (first, t)
    }

    /// The position of `key`, if present.
    pub fn rank(&self, key: &K) -> Option<usize> {
        let mut t = self.root;
        let mut before = 0usize;
        while t != NIL {
            let n = &self.nodes[t as usize];
            match key.cmp(self.key(t)) {
                Ordering::Less => t = n.left,
                Ordering::Equal => return Some(before + self.size(n.left) as usize),
                Ordering::Greater => {
                    before += self.size(n.left) as usize + 1;
                    t = n.right;
                }
            }
        }
        None
    }

    /// The key at position `i`.
    pub fn nth(&self, mut i: usize) -> Option<&K> {
        let mut t = self.root;
        while t != NIL {
            let n = &self.nodes[t as usize];
            let ls = self.size(n.left) as usize;
            match i.cmp(&ls) {
                Ordering::Less => t = n.left,
                Ordering::Equal => return Some(self.key(t)),
                Ordering::Greater => {
                    i -= ls + 1;
                    t = n.right;
                }
            }
        }
        None
    }

    /// The keys from position `from` on, in order (O(log n) to start,
    /// O(1) amortised per key).
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &K> + '_ {
        // An explicit stack down to `from`, then in-order.
        let mut stack = Vec::new();
        let (mut t, mut i) = (self.root, from);
        while t != NIL {
            let n = &self.nodes[t as usize];
            let ls = self.size(n.left) as usize;
            if i < ls {
                stack.push(t);
                t = n.left;
            } else if i == ls {
                stack.push(t);
                break;
            } else {
                i -= ls + 1;
                t = n.right;
            }
        }
        std::iter::from_fn(move || {
            let t = stack.pop()?;
            let mut c = self.nodes[t as usize].right;
            while c != NIL {
                stack.push(c);
                c = self.nodes[c as usize].left;
            }
            Some(self.key(t))
        })
    }
}
