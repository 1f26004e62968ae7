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
        Observable { shared: Rc::new(Shared { mutable: Mutable::new(value), listeners: Rc::default() }) }
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

    /// Calls `listener` on every change while the returned handle lives.
    pub fn subscribe(&self, listener: impl Fn(&T) + 'static) -> ListenerHandle {
        self.shared.listeners.add(Rc::new(listener))
    }

    /// How many listeners are registered (for tests and leak checks).
    pub fn listener_count(&self) -> usize {
        self.shared.listeners.len()
    }
}

/// Keeps a listener registered with `subscribe`, `on_event`, `on_change`…
/// registered for as long as the handle lives: dropping it (or calling
/// [`stop`](ListenerHandle::stop)) removes the listener, as gloo's
/// `EventListener` does. To keep a listener for the life of its source on
/// purpose, call [`forget`](ListenerHandle::forget).
///
/// ```
/// use ddp_live::Observable;
/// let status = Observable::new(0);
/// {
///     let _watch = status.subscribe(|v| println!("now {v}"));
///     status.set(1); // heard
/// } // dropped: removed
/// status.set(2); // not heard
/// assert_eq!(status.listener_count(), 0);
/// status.subscribe(|_| {}).forget(); // kept while `status` lives
/// assert_eq!(status.listener_count(), 1);
/// ```
#[must_use = "dropping a ListenerHandle removes its listener at once; keep it, or call .forget() to keep the listener for the source's life"]
pub struct ListenerHandle {
    stop: Option<Box<dyn FnOnce()>>,
}

impl ListenerHandle {
    /// Stops the listener now (dropping the handle does the same).
    pub fn stop(mut self) {
        self.stop_now();
    }

    /// Keeps the listener for as long as its source lives, giving up the
    /// means to remove it. The handle holds only a weak reference to the
    /// source, so forgetting it makes no cycle.
    pub fn forget(mut self) {
        self.stop = None;
    }

    /// Turns the handle into a [`Stopper`]: the listener stays until
    /// `Stopper::stop` is called, and dropping the `Stopper` keeps it (for
    /// the JavaScript surface, where a handle object may be collected by the
    /// garbage collector while its callback is meant to go on).
    #[cfg(feature = "js")]
    pub(crate) fn into_stopper(mut self) -> Stopper {
        Stopper { stop: RefCell::new(self.stop.take()) }
    }

    fn stop_now(&mut self) {
        if let Some(f) = self.stop.take() {
            f();
        }
    }

    pub(crate) fn new(stop: impl FnOnce() + 'static) -> Self {
        ListenerHandle { stop: Some(Box::new(stop)) }
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

impl std::fmt::Debug for ListenerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerHandle")
    }
}

/// A listener's removal, called explicitly (see [`ListenerHandle::into_stopper`]).
#[cfg(feature = "js")]
pub(crate) struct Stopper {
    stop: RefCell<Option<Box<dyn FnOnce()>>>,
}

#[cfg(feature = "js")]
impl Stopper {
    /// Removes the listener; calling it again does nothing.
    pub(crate) fn stop(&self) {
        let f = self.stop.borrow_mut().take();
        if let Some(f) = f {
            f();
        }
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
                drop(h2.borrow_mut().take());
            }
        }));
        o.set(1);
        assert_eq!(o.get(), 2);
        assert_eq!(o.listener_count(), 0);
    }

    #[test]
    fn dropping_a_handle_removes_its_listener_and_forget_keeps_it() {
        let o = Observable::new(0);
        let heard = Rc::new(Cell::new(0));
        let h = heard.clone();
        let handle = o.subscribe(move |_| h.set(h.get() + 1));
        o.set(1);
        drop(handle);
        o.set(2);
        assert_eq!(heard.get(), 1);
        assert_eq!(o.listener_count(), 0);
        let h = heard.clone();
        o.subscribe(move |_| h.set(h.get() + 1)).forget();
        o.set(3);
        assert_eq!(heard.get(), 2);
        assert_eq!(o.listener_count(), 1);
    }

    /// (The JavaScript surface's stoppers.)
    #[cfg(feature = "js")]
    #[test]
    fn a_stopper_keeps_its_listener_until_stopped() {
        let o = Observable::new(0);
        let heard = Rc::new(Cell::new(0));
        let h = heard.clone();
        o.subscribe(move |_| h.set(h.get() + 1)).forget();
        // A stopper keeps the listener when dropped, removes it on stop().
        let h = heard.clone();
        let stopper = o.subscribe(move |_| h.set(h.get() + 10)).into_stopper();
        o.set(4);
        assert_eq!(heard.get(), 11);
        stopper.stop();
        stopper.stop();
        o.set(5);
        assert_eq!(heard.get(), 12);
        assert_eq!(o.listener_count(), 1);
    }

    #[test]
    fn forgotten_listeners_go_with_their_source() {
        // The listener (and what it captured) is freed with the observable:
        // a forgotten handle makes no cycle.
        let o = Observable::new(0);
        let captured = Rc::new(());
        let c = captured.clone();
        o.subscribe(move |_| {
            let _ = &c;
        })
        .forget();
        assert_eq!(Rc::strong_count(&captured), 2);
        drop(o);
        assert_eq!(Rc::strong_count(&captured), 1);
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
