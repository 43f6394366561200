//! Spawning tokio tasks that inherit the caller's context (feature `tokio`).
//!
//! `tokio::spawn` starts a task with no context: the span that was current at the call
//! site is lost. These wrappers capture the current context at the call and make it
//! current inside the task on every poll (or for the whole blocking closure).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use otel_lite::trace::{Context, TracerProvider};
//!
//! let tracer = TracerProvider::builder().build().tracer("docs");
//! let span = tracer.start("parent");
//! let _entered = span.enter();
//! let parent = span.span_context().span_id();
//! let seen = otel_lite::task::spawn(async { Context::current().span_context().map(|s| s.span_id()) })
//!     .await
//!     .unwrap();
//! assert_eq!(seen, Some(parent));
//! # }
//! ```

use std::future::Future;

use otel_lite_core::trace::{Context, FutureExt, WithContext};

/// `tokio::spawn` with the current context carried into the task.
#[track_caller]
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.with_current_context())
}

/// `tokio::task::spawn_blocking` with the current context attached for the closure.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let context = Context::current();
    tokio::task::spawn_blocking(move || {
        let _guard = context.attach();
        f()
    })
}

/// `std::thread::spawn` with the current context attached for the closure.
pub fn spawn_thread<F, R>(f: F) -> std::thread::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let context = Context::current();
    std::thread::spawn(move || {
        let _guard = context.attach();
        f()
    })
}

/// A future wrapped to run with the current context (for executors other than tokio).
pub fn with_current_context<F: Future>(future: F) -> WithContext<F> {
    future.with_current_context()
}
