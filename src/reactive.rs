//! One reactive value feeding every surface: a futures-signals `Mutable`
//! for Rust, synchronous listeners for JavaScript callbacks and Leptos.

use futures_signals::signal::{Mutable, MutableSignalCloned};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// A list of listeners (`Rc<F>`), each removable through the handle its
/// registration returned. Listeners are called on a snapshot of the list,
/// with no borrow held, so a listener may add or remove listeners. The list
/// is copy-on-write: a snapshot costs a reference count, not an allocation
/// (it runs once per change of every observable).
pub(crate) struct Registry<F: ?Sized> {
    entries: RefCell<Rc<Vec<(u64, Rc<F>)>>>,
    next_id: Cell<u64>,
}

impl<F: ?Sized> Default for Registry<F> {
    fn default() -> Self {
        Registry { entries: RefCell::new(Rc::new(Vec::new())), next_id: Cell::new(0) }
    }
}

/// The listeners of a registry at one moment.
pub(crate) struct Listeners<F: ?Sized>(Rc<Vec<(u64, Rc<F>)>>);

impl<F: ?Sized> Listeners<F> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Rc<F>> {
        self.0.iter().map(|(_, f)| f)
    }
}

impl<F: ?Sized> IntoIterator for Listeners<F> {
    type Item = Rc<F>;
    type IntoIter = ListenersIter<F>;

    fn into_iter(self) -> ListenersIter<F> {
        ListenersIter { list: self.0, next: 0 }
    }
}

/// Walks a snapshot, handing out each listener.
pub(crate) struct ListenersIter<F: ?Sized> {
    list: Rc<Vec<(u64, Rc<F>)>>,
    next: usize,
}

impl<F: ?Sized> Iterator for ListenersIter<F> {
    type Item = Rc<F>;

    fn next(&mut self) -> Option<Rc<F>> {
        let item = self.list.get(self.next)?.1.clone();
        self.next += 1;
        Some(item)
    }
}

impl<F: ?Sized + 'static> Registry<F> {
    /// Adds a listener; the handle removes it (if the registry still lives).
    pub(crate) fn add(self: &Rc<Self>, f: Rc<F>) -> ListenerHandle {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        Rc::make_mut(&mut self.entries.borrow_mut()).push((id, f));
        let weak: Weak<Self> = Rc::downgrade(self);
        ListenerHandle::new(move || {
            if let Some(r) = weak.upgrade() {
                Rc::make_mut(&mut r.entries.borrow_mut()).retain(|(i, _)| *i != id);
            }
        })
    }

    /// The listeners now.
    pub(crate) fn snapshot(&self) -> Listeners<F> {
        Listeners(self.entries.borrow().clone())
    }

    /// How many listeners.
    pub(crate) fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// True when nobody listens.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }
}

struct Shared<T> {
    mutable: Mutable<T>,
    listeners: Rc<Registry<dyn Fn(&T)>>,
}

/// A value that tells its observers when it changes (and only then).
pub struct Observable<T> {
    shared: Rc<Shared<T>>,
}

impl<T> Clone for Observable<T> {
    fn clone(&self) -> Self {
        Observable { shared: self.shared.clone() }
    }
}

impl<T: Clone + PartialEq + 'static> Observable<T> {
    /// A new observable holding `value`.
    pub fn new(value: T) -> Self {
        Observable {
            shared: Rc::new(Shared { mutable: Mutable::new(value), listeners: Rc::default() }),
        }
    }

    /// The current value.
    pub fn get(&self) -> T {
        self.shared.mutable.get_cloned()
    }

    /// Reads the current value without cloning it.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.shared.mutable.lock_ref())
    }

    /// Sets the value; observers hear of it only if it differs.
    pub fn set(&self, value: T) {
        {
            let mut lock = self.shared.mutable.lock_mut();
            if *lock == value {
                return;
            }
            *lock = value.clone();
        }
        // Call listeners on a snapshot of the list, with no borrow held, so a
        // listener may subscribe, unsubscribe or set the value again.
        for l in self.shared.listeners.snapshot() {
            l(&value);
        }
    }

    /// A futures-signals signal of the value.
    pub fn signal(&self) -> MutableSignalCloned<T> {
        self.shared.mutable.signal_cloned()
    }

    /// Calls `listener` on every change until the returned handle is stopped.
    /// (Dropping the handle does not stop it: call [`ListenerHandle::stop`].)
    pub fn subscribe(&self, listener: impl Fn(&T) + 'static) -> ListenerHandle {
        self.shared.listeners.add(Rc::new(listener))
    }

    /// How many listeners are registered (for tests and leak checks).
    pub fn listener_count(&self) -> usize {
        self.shared.listeners.len()
    }
}

/// Stops a listener registered with `subscribe` or `on`.
pub struct ListenerHandle {
    stop: RefCell<Option<Box<dyn FnOnce()>>>,
}

impl ListenerHandle {
    /// Stops the listener; calling it again does nothing.
    pub fn stop(&self) {
        if let Some(f) = self.stop.borrow_mut().take() {
            f();
        }
    }

    pub(crate) fn new(stop: impl FnOnce() + 'static) -> Self {
        ListenerHandle { stop: RefCell::new(Some(Box::new(stop))) }
    }
}

impl std::fmt::Debug for ListenerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerHandle")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_hear_changes_only() {
        let o = Observable::new(1);
        let seen = Rc::new(RefCell::new(vec![]));
        let s = seen.clone();
        let h = o.subscribe(move |v| s.borrow_mut().push(*v));
        o.set(1);
        o.set(2);
        o.set(2);
        o.set(3);
        h.stop();
        o.set(4);
        assert_eq!(*seen.borrow(), vec![2, 3]);
        assert_eq!(o.get(), 4);
        assert_eq!(o.listener_count(), 0);
    }

    #[test]
    fn a_listener_may_unsubscribe_itself_and_set_again() {
        let o = Observable::new(0);
        let handle: Rc<RefCell<Option<ListenerHandle>>> = Rc::new(RefCell::new(None));
        let (o2, h2) = (o.clone(), handle.clone());
        *handle.borrow_mut() = Some(o.subscribe(move |v| {
            if *v == 1 {
                o2.set(2);
                if let Some(h) = h2.borrow().as_ref() {
                    h.stop()
                }
            }
        }));
        o.set(1);
        assert_eq!(o.get(), 2);
        assert_eq!(o.listener_count(), 0);
    }

    #[test]
    fn the_signal_sees_the_value() {
        use futures_signals::signal::SignalExt;
        let o = Observable::new(5);
        let mut stream = o.signal().to_stream();
        let first = futures_executor_lite(&mut stream);
        assert_eq!(first, Some(5));
    }

    /// Polls a stream once with a no-op waker (the first value of a signal
    /// is always ready).
    fn futures_executor_lite<S: futures_util::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::Pin::new(s).poll_next(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => None,
        }
    }
}
