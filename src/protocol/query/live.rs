//! Live ordered results: every matching document kept in an
//! order-statistics tree keyed by (sort key, `_id`), so a change to one
//! document costs O(log n) (no re-scan) and the results window
//! (`skip`/`limit`) is refilled from the documents just outside it, never
//! by re-running the query. One diff stream (`addedAt`, `changedAt`,
//! `removedAt`, `movedTo`) feeds every surface.

use super::ostree::OsTree;
use super::sort::SortKey;
use super::{Fields, Query};
use crate::protocol::hash::FastMap;
use std::rc::Rc;

/// One change to the ordered results (indices are positions in the
/// results, as Meteor's `observe` callbacks give them).
#[derive(Debug, Clone, PartialEq)]
pub enum Diff {
    /// `doc` is now at `index`, before the document `before` (`None`: last).
    AddedAt { id: Rc<str>, doc: Rc<Fields>, index: usize, before: Option<Rc<str>> },
    /// The document at `index` changed from `old` to `doc`.
    ChangedAt { id: Rc<str>, doc: Rc<Fields>, old: Rc<Fields>, index: usize },
    /// The document at `index` left the results.
    RemovedAt { id: Rc<str>, old: Rc<Fields>, index: usize },
    /// The document moved from `from` to `to` (positions before and after
    /// the move), now before `before`.
    MovedTo { id: Rc<str>, doc: Rc<Fields>, from: usize, to: usize, before: Option<Rc<str>> },
}

/// The results of one query, kept up to date.
pub struct LiveResults {
    query: Rc<Query>,
    tree: OsTree<SortKey>,
    docs: FastMap<Rc<str>, (SortKey, Rc<Fields>)>,
}

impl LiveResults {
    /// The results over `docs` now.
    /// (Only matching documents are copied.)
    pub fn new<'a, D: std::borrow::Borrow<Fields>>(query: Rc<Query>, docs: impl IntoIterator<Item = (&'a str, D)>) -> Self {
        let mut live = LiveResults { query, tree: OsTree::default(), docs: FastMap::default() };
        for (id, doc) in docs {
            let doc = doc.borrow();
            if live.query.matches(id, doc) {
                let key = live.query.sort_key(id, doc);
                live.tree.insert(key.clone());
                live.docs.insert(key.id().clone(), (key, Rc::new(doc.clone())));
            }
        }
        live
    }

    /// The query.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// How many documents match (skip and limit aside).
    pub fn matching(&self) -> usize {
        self.tree.len()
    }

    fn end(&self) -> usize {
        let skip = self.query.skip();
        match self.query.limit() {
            Some(l) => skip.saturating_add(l),
            None => usize::MAX,
        }
    }

    /// How many results (skip and limit applied).
    pub fn len(&self) -> usize {
        self.tree.len().min(self.end()).saturating_sub(self.query.skip())
    }

    /// True when there is no result.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The results, in order.
    pub fn results(&self) -> impl Iterator<Item = (&Rc<str>, &Rc<Fields>)> + '_ {
        self.tree.iter_from(self.query.skip()).take(self.len()).filter_map(move |k| {
            let (key, doc) = self.docs.get(k.id())?;
            Some((key.id(), doc))
        })
    }

    /// The results as `AddedAt` diffs, in order, each appended (`before`
    /// is `None`, as Meteor's initial `addedAt`/`addedBefore` calls: a
    /// `before` always names a document already in the results).
    pub fn initial(&self) -> Vec<Diff> {
        self.results()
            .enumerate()
            .map(|(i, (id, doc))| Diff::AddedAt { id: id.clone(), doc: doc.clone(), index: i, before: None })
            .collect()
    }

    fn id_at(&self, rank: usize) -> Option<Rc<str>> {
        (rank < self.end()).then(|| self.tree.nth(rank).map(|k| k.id().clone())).flatten()
    }

    fn doc_of(&self, id: &Rc<str>) -> Rc<Fields> {
        self.docs.get(id).map(|(_, d)| d.clone()).unwrap_or_default()
    }

    /// Document `id` is now `doc` (`None`: gone); appends what changed in
    /// the results to `out`.
    pub fn update(&mut self, id: &str, doc: Option<&Fields>, out: &mut Vec<Diff>) {
        let old = self.docs.remove(id);
        let new = doc.filter(|d| self.query.matches(id, d)).map(|d| (self.query.sort_key(id, d), Rc::new(d.clone())));
        match (old, new) {
            (None, None) => {}
            (Some((key, old)), None) => {
                let rank = self.tree.remove(&key);
                if let Some(rank) = rank {
                    self.removed(rank, key.id().clone(), old, out);
                }
            }
            (None, Some((key, doc))) => {
                let rank = self.tree.insert(key.clone());
                let id = key.id().clone();
                self.docs.insert(id.clone(), (key, doc.clone()));
                self.inserted(rank, id, doc, out);
            }
            (Some((old_key, old)), Some((key, doc))) => {
                let id = key.id().clone();
                let (skip, end) = (self.query.skip(), self.end());
                let in_window = |r: usize| r >= skip && r < end;
                if old_key == key {
                    let rank = self.tree.rank(&key);
                    self.docs.insert(id.clone(), (key, doc.clone()));
                    if let Some(r) = rank.filter(|r| in_window(*r)) {
                        if *old != *doc {
                            out.push(Diff::ChangedAt { id, doc, old, index: r - skip });
                        }
                    }
                    return;
                }
                let from = self.tree.remove(&old_key);
                let to = self.tree.insert(key.clone());
                self.docs.insert(id.clone(), (key.clone(), doc.clone()));
                match from {
                    Some(from) if in_window(from) && in_window(to) => {
                        if *old != *doc {
                            out.push(Diff::ChangedAt { id: id.clone(), doc: doc.clone(), old, index: from - skip });
                        }
                        if from != to {
                            let before = self.id_at(to + 1);
                            out.push(Diff::MovedTo { id, doc, from: from - skip, to: to - skip, before });
                        }
                    }
                    Some(from) => {
                        // Out of (or into) the window: a removal then an
                        // insertion, each refilling the window.
                        self.tree.remove(&key);
                        self.removed(from, id.clone(), old, out);
                        let to = self.tree.insert(key);
                        self.inserted(to, id, doc, out);
                    }
                    None => {
                        self.inserted(to, id, doc, out);
                    }
                }
            }
        }
    }

    /// Document `id` (`old`) left position `rank` (the tree no longer holds it).
    fn removed(&self, rank: usize, id: Rc<str>, old: Rc<Fields>, out: &mut Vec<Diff>) {
        let (skip, end) = (self.query.skip(), self.end());
        let n = self.tree.len();
        if rank >= end {
            return;
        }
        if rank < skip {
            // The window slides by one: its first document drops out.
            if n < skip {
                return;
            }
            if let Some(first) = self.tree.nth(skip - 1).map(|k| k.id().clone()) {
                let doc = self.doc_of(&first);
                out.push(Diff::RemovedAt { id: first, old: doc, index: 0 });
            }
        } else {
            out.push(Diff::RemovedAt { id, old, index: rank - skip });
        }
        // The document just past the window comes in at its end.
        if end != usize::MAX && n >= end {
            if let Some(next) = self.tree.nth(end - 1).map(|k| k.id().clone()) {
                let doc = self.doc_of(&next);
                out.push(Diff::AddedAt { id: next, doc, index: end - 1 - skip, before: None });
            }
        }
    }

    /// Document `id` (`doc`) came in at position `rank` (the tree holds it).
    fn inserted(&self, rank: usize, id: Rc<str>, doc: Rc<Fields>, out: &mut Vec<Diff>) {
        let (skip, end) = (self.query.skip(), self.end());
        let n = self.tree.len();
        if rank >= end || n <= skip {
            return;
        }
        // The window's last document is pushed out.
        if end != usize::MAX && n > end {
            if let Some(last) = self.tree.nth(end).map(|k| k.id().clone()) {
                let old = self.doc_of(&last);
                out.push(Diff::RemovedAt { id: last, old, index: end - 1 - skip });
            }
        }
        if rank < skip {
            // The window slides by one: the document before it comes in first.
            if let Some(first) = self.tree.nth(skip).map(|k| k.id().clone()) {
                let doc = self.doc_of(&first);
                out.push(Diff::AddedAt { id: first, doc, index: 0, before: self.id_at(skip + 1) });
            }
        } else {
            out.push(Diff::AddedAt { id, doc, index: rank - skip, before: self.id_at(rank + 1) });
        }
    }
}

/// Applies `diff` to a list of (id, document), as a consumer of the diff
/// stream would (used to check that replaying the diffs rebuilds the
/// results).
pub fn replay(list: &mut Vec<(Rc<str>, Rc<Fields>)>, diff: &Diff) {
    match diff {
        Diff::AddedAt { id, doc, index, .. } => list.insert((*index).min(list.len()), (id.clone(), doc.clone())),
        Diff::ChangedAt { doc, index, .. } => {
            if let Some(slot) = list.get_mut(*index) {
                slot.1 = doc.clone();
            }
        }
        Diff::RemovedAt { index, .. } => {
            if *index < list.len() {
                list.remove(*index);
            }
        }
        Diff::MovedTo { from, to, doc, .. } => {
            if *from < list.len() {
                let (id, _) = list.remove(*from);
                list.insert((*to).min(list.len()), (id, doc.clone()));
            }
        }
    }
}
