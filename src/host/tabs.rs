//! Groups of tabs in memory (natively, and in the simulated host): the
//! connections of one thread that join the same group behave like the
//! tabs of one browser: what one posts reaches the others later, in order,
//! and one at a time holds the group's lock, the next in line taking it
//! when its holder leaves.

use super::{TabEvent, TabHandler, TabLink};
use crate::protocol::hash::NameMap;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

/// Runs a delivery later (the host's `later`).
pub(crate) type Schedule = Rc<dyn Fn(Box<dyn FnOnce()>)>;

#[derive(Default)]
struct Group {
    members: Vec<(u64, Weak<TabHandler>)>,
    /// Members by name, with what waits for each to go.
    names: Vec<(u64, String, Vec<Box<dyn FnOnce()>>)>,
    /// Who holds the lock, then who waits for it, in order.
    lock: VecDeque<u64>,
}

/// The groups of one thread (or of one simulated world).
#[derive(Default)]
pub(crate) struct MemoryTabs {
    groups: RefCell<NameMap<Group>>,
    next: std::cell::Cell<u64>,
}

impl MemoryTabs {
    /// Joins group `name`; deliveries go through `schedule`.
    pub(crate) fn join(self: &Rc<Self>, name: &str, member: &str, handler: TabHandler, schedule: Schedule) -> Box<dyn TabLink> {
        let id = self.next.get() + 1;
        self.next.set(id);
        let handler = Rc::new(handler);
        let mut groups = self.groups.borrow_mut();
        let group = groups.get_or_insert_with(name, Group::default);
        group.members.push((id, Rc::downgrade(&handler)));
        group.names.push((id, member.to_owned(), Vec::new()));
        group.lock.push_back(id);
        let leads = group.lock.len() == 1;
        drop(groups);
        if leads {
            deliver_leader(&schedule, Rc::downgrade(&handler));
        }
        Box::new(Member { tabs: Rc::downgrade(self), name: name.to_owned(), id, _handler: handler, schedule })
    }
}

fn deliver_leader(schedule: &Schedule, to: Weak<TabHandler>) {
    schedule(Box::new(move || {
        if let Some(h) = to.upgrade() {
            h(TabEvent::Leader);
        }
    }));
}

struct Member {
    tabs: Weak<MemoryTabs>,
    name: String,
    id: u64,
    /// Held here only: a member gone hears nothing more.
    _handler: Rc<TabHandler>,
    schedule: Schedule,
}

impl TabLink for Member {
    fn post(&self, head: &str, body: &str) {
        let Some(tabs) = self.tabs.upgrade() else { return };
        let groups = tabs.groups.borrow();
        let Some(group) = groups.get(&self.name) else { return };
        for (id, to) in &group.members {
            if *id == self.id {
                continue;
            }
            let (to, head, body) = (to.clone(), head.to_owned(), body.to_owned());
            (self.schedule)(Box::new(move || {
                if let Some(h) = to.upgrade() {
                    h(TabEvent::Message(&head, &body));
                }
            }));
        }
    }

    fn watch(&self, member: &str, gone: Box<dyn FnOnce()>) {
        let Some(tabs) = self.tabs.upgrade() else { return };
        let mut groups = tabs.groups.borrow_mut();
        let watched = groups.get_mut(&self.name).and_then(|g| g.names.iter_mut().find(|(_, n, _)| n == member));
        match watched {
            Some((_, _, watchers)) => watchers.push(gone),
            None => {
                drop(groups);
                (self.schedule)(gone);
            }
        }
    }

    fn take_over(&self) {
        self.steal();
    }
}

impl Member {
    fn handler_of(group: &Group, id: u64) -> Option<Weak<TabHandler>> {
        group.members.iter().find(|(m, _)| *m == id).map(|(_, h)| h.clone())
    }
}

impl Member {
    /// See [`TabLink::take_over`].
    fn steal(&self) {
        let Some(tabs) = self.tabs.upgrade() else { return };
        let mut groups = tabs.groups.borrow_mut();
        let Some(group) = groups.get_mut(&self.name) else { return };
        let holder = group.lock.front().copied();
        if holder == Some(self.id) {
            return;
        }
        // This member first; the one deposed waits in line again, last.
        group.lock.retain(|id| *id != self.id && Some(*id) != holder);
        group.lock.push_front(self.id);
        let deposed = holder.and_then(|h| {
            group.lock.push_back(h);
            Member::handler_of(group, h)
        });
        let me = Member::handler_of(group, self.id);
        drop(groups);
        if let Some(to) = deposed {
            (self.schedule)(Box::new(move || {
                if let Some(h) = to.upgrade() {
                    h(TabEvent::Deposed);
                }
            }));
        }
        if let Some(me) = me {
            deliver_leader(&self.schedule, me);
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let Some(tabs) = self.tabs.upgrade() else { return };
        let mut groups = tabs.groups.borrow_mut();
        let Some(group) = groups.get_mut(&self.name) else { return };
        group.members.retain(|(id, _)| *id != self.id);
        let watchers: Vec<Box<dyn FnOnce()>> =
            group.names.iter_mut().filter(|(id, _, _)| *id == self.id).flat_map(|(_, _, w)| std::mem::take(w)).collect();
        group.names.retain(|(id, _, _)| *id != self.id);
        let held = group.lock.front() == Some(&self.id);
        group.lock.retain(|id| *id != self.id);
        let next = held.then(|| group.lock.front().copied()).flatten();
        let next = next.and_then(|n| group.members.iter().find(|(id, _)| *id == n).map(|(_, h)| h.clone()));
        if group.members.is_empty() {
            groups.remove(&self.name);
        }
        drop(groups);
        for gone in watchers {
            (self.schedule)(gone);
        }
        if let Some(next) = next {
            deliver_leader(&self.schedule, next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn members_hear_each_other_in_order_and_the_lock_passes_on() {
        let queue: Rc<RefCell<VecDeque<Box<dyn FnOnce()>>>> = Rc::default();
        let q = queue.clone();
        let schedule: Schedule = Rc::new(move |f| q.borrow_mut().push_back(f));
        let run = || loop {
            let next = queue.borrow_mut().pop_front();
            match next {
                Some(f) => f(),
                None => break,
            }
        };
        let tabs = Rc::new(MemoryTabs::default());
        let heard: Rc<RefCell<Vec<String>>> = Rc::default();
        let member = |who: &'static str| {
            let heard = heard.clone();
            tabs.join(
                "g",
                who,
                Box::new(move |e| {
                    heard.borrow_mut().push(match e {
                        TabEvent::Message(h, b) => format!("{who} {h} {b}"),
                        TabEvent::Leader => format!("{who} leads"),
                        TabEvent::Deposed => format!("{who} deposed"),
                    })
                }),
                schedule.clone(),
            )
        };
        let a = member("a");
        let b = member("b");
        let c = member("c");
        let gone: Rc<RefCell<Vec<&str>>> = Rc::default();
        for who in ["b", "a", "zz"] {
            let gone = gone.clone();
            c.watch(who, Box::new(move || gone.borrow_mut().push(who)));
        }
        // Nothing during the calls.
        assert!(heard.borrow().is_empty());
        a.post("x", "1");
        b.post("y", "2");
        run();
        assert_eq!(*heard.borrow(), ["a leads", "b x 1", "c x 1", "a y 2", "c y 2"]);
        heard.borrow_mut().clear();
        // A waiting member leaving does not take the lock.
        run();
        assert_eq!(*gone.borrow(), ["zz"], "a member not in the group is gone at once");
        drop(b);
        run();
        assert!(heard.borrow().is_empty());
        assert_eq!(*gone.borrow(), ["zz", "b"]);
        drop(a);
        run();
        assert_eq!(*heard.borrow(), ["c leads"]);
        assert_eq!(*gone.borrow(), ["zz", "b", "a"]);
        // A post to a group that only has its poster reaches no one.
        c.post("z", "3");
        run();
        assert_eq!(heard.borrow().len(), 1);
        // A member takes the lock over from its holder, who waits in line
        // again and leads once the taker leaves.
        let d = member("d");
        run();
        heard.borrow_mut().clear();
        d.take_over();
        d.take_over();
        run();
        assert_eq!(*heard.borrow(), ["c deposed", "d leads"], "once: d leads already");
        heard.borrow_mut().clear();
        drop(d);
        run();
        assert_eq!(*heard.borrow(), ["c leads"]);
        drop(c);
        assert!(tabs.groups.borrow().is_empty());
    }
}
