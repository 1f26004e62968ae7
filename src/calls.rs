//! Method calls from Rust: [`Connection::call`] and its forms, and the
//! [`MethodCall`] future. A method's client stub (if one is defined) runs
//! first ([`crate::stubs`]); the driver then queues the call.

use crate::connection::{Connection, Done, ResultHook, WeakConnection};
use crate::protocol::machine::{CallOptions, MethodError};
use futures_channel::oneshot;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Outcome = Result<Option<Value>, MethodError>;

impl Connection {
    /// Calls server method `name` with `args` (a tuple or `Vec` is the
    /// argument list; any other value is the single argument) and decodes
    /// the result into `R`. The call is queued at once — while offline it
    /// waits in the outbox — and the future resolves when the server's
    /// `result` and `updated` both arrived.
    ///
    /// Dropping the future before the call was sent cancels it; use
    /// [`MethodCall::detach`] to fire and forget.
    ///
    /// ```no_run
    /// # async fn f(conn: ddp_live::Connection) -> Result<(), ddp_live::MethodError> {
    /// let sum: i64 = conn.call("add", (2, 3)).await?;
    /// assert_eq!(sum, 5);
    /// # Ok(()) }
    /// ```
    pub fn call<R: DeserializeOwned>(&self, name: &str, args: impl Serialize) -> MethodCall<R> {
        self.apply(name, args, CallOptions::default())
    }

    /// [`Connection::call`] with options (`wait`, `no_retry`, `timeout_ms`).
    pub fn apply<R: DeserializeOwned>(&self, name: &str, args: impl Serialize, options: CallOptions) -> MethodCall<R> {
        let params = match serde_json::to_value(args) {
            Ok(Value::Array(a)) => a,
            Ok(Value::Null) => Vec::new(),
            Ok(other) => vec![other],
            Err(e) => return MethodCall::failed(MethodError::BadArguments(e.to_string())),
        };
        self.apply_raw(name, params, options, None)
    }

    /// The untyped form: `params` are EJSON-encoded JSON values, and
    /// `on_result` runs as soon as the `result` arrives (before `updated`).
    /// The method's Rust stub, if one is defined, runs first.
    pub fn apply_raw<R: DeserializeOwned>(
        &self,
        name: &str,
        params: Vec<Value>,
        options: CallOptions,
        on_result: Option<ResultHook>,
    ) -> MethodCall<R> {
        self.apply_decoded(name, params, options, on_result, decode_result::<R>)
    }

    /// [`Connection::apply_raw`] resolving to the JSON result as it came
    /// (`null` when there was none), without serde's decoding.
    pub(crate) fn apply_value(&self, name: &str, params: Vec<Value>, options: CallOptions) -> MethodCall<Value> {
        self.apply_decoded(name, params, options, None, |v| Ok(v.unwrap_or(Value::Null)))
    }

    fn apply_decoded<R>(
        &self,
        name: &str,
        params: Vec<Value>,
        options: CallOptions,
        on_result: Option<ResultHook>,
        decode: fn(Option<Value>) -> Result<R, MethodError>,
    ) -> MethodCall<R> {
        let simulation = match crate::stubs::simulate(self, name, &params, options.throw_stub_exceptions) {
            Ok(s) => s,
            Err(e) => return MethodCall::failed(MethodError::StubFailed(e.message)),
        };
        let mut options = options;
        options.random_seed = options.random_seed.or(simulation.seed);
        let return_stub = options.return_stub_value;
        let (tx, rx) = oneshot::channel();
        let mut call = match self.place_call(name, params, options, on_result, simulation.writes, Done::Future(tx)) {
            Ok(id) => MethodCall { conn: self.downgrade(), id: Some(id), rx: Some(rx), early: None, early_value: None, decode },
            Err(e) => return MethodCall::failed(e),
        };
        if let (true, Some(v)) = (return_stub, simulation.value) {
            // The server call goes on (detached); the caller gets the stub's value.
            call.early_value = Some(v);
        }
        call
    }

    /// Like [`Connection::apply_raw`], resolving to the raw result: `None`
    /// when the server sent no `result` field (a method that returned
    /// nothing), as opposed to `Some(Value::Null)`.
    pub fn apply_raw_outcome(
        &self,
        name: &str,
        params: Vec<Value>,
        options: CallOptions,
        on_result: Option<ResultHook>,
    ) -> MethodCall<Option<Value>> {
        self.apply_decoded(name, params, options, on_result, Ok)
    }
}

/// A method call in progress: a future of its decoded result.
///
/// Dropping it before the call was sent cancels the call; once sent, the
/// call runs and dropping only discards the answer.
#[must_use = "a call is cancelled when its future is dropped before it is sent; use .detach() to fire and forget"]
pub struct MethodCall<R> {
    conn: WeakConnection,
    id: Option<u64>,
    rx: Option<oneshot::Receiver<Outcome>>,
    early: Option<MethodError>,
    /// With `return_stub_value`: the stub's value, resolved at once.
    early_value: Option<Value>,
    decode: fn(Option<Value>) -> Result<R, MethodError>,
}

fn decode_result<R: DeserializeOwned>(v: Option<Value>) -> Result<R, MethodError> {
    serde_json::from_value(v.unwrap_or(Value::Null)).map_err(|e| MethodError::BadResult(e.to_string()))
}

impl<R> MethodCall<R> {
    pub(crate) fn failed(e: MethodError) -> Self {
        MethodCall {
            conn: WeakConnection::default(),
            id: None,
            rx: None,
            early: Some(e),
            early_value: None,
            decode: |_| Err(MethodError::Closed),
        }
    }

    /// The call's id (its DDP method id), or `None` if it was refused at once.
    pub fn id(&self) -> Option<u64> {
        self.id
    }

    /// Cancels the call if it has not been sent; the future then resolves
    /// to `cancelled`. Returns whether it was cancelled.
    pub fn cancel(&self) -> bool {
        match (self.id, self.conn.upgrade()) {
            (Some(id), Some(conn)) => conn.cancel_call(id),
            _ => false,
        }
    }

    /// Lets the call go on without waiting for (or cancelling) it.
    pub fn detach(mut self) {
        self.id = None;
    }
}

impl<R> Unpin for MethodCall<R> {}

impl<R> Future for MethodCall<R> {
    type Output = Result<R, MethodError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(e) = this.early.take() {
            return Poll::Ready(Err(e));
        }
        if let Some(v) = this.early_value.take() {
            this.id = None; // the server call goes on: never cancel it on drop
            return Poll::Ready((this.decode)(Some(v)));
        }
        let Some(rx) = this.rx.as_mut() else {
            return Poll::Ready(Err(MethodError::Closed));
        };
        match Pin::new(rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => {
                this.id = None; // finished: nothing to cancel on drop
                this.rx = None;
                let outcome = outcome.unwrap_or(Err(MethodError::Closed))?;
                Poll::Ready((this.decode)(outcome))
            }
        }
    }
}

impl<R> Drop for MethodCall<R> {
    fn drop(&mut self) {
        if let (Some(id), Some(conn)) = (self.id, self.conn.upgrade()) {
            // Only an unsent call is cancelled; a sent one runs on.
            conn.forget_unsent_call(id);
        }
    }
}
