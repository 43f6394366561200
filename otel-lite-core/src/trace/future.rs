//! Carrying the context across `.await`: a future adapter that makes a context current
//! only while the inner future is being polled.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::trace::context::Context;
use crate::trace::span::Span;

/// A future that runs inside a span or context. The span (if any) ends when the future
/// completes or is dropped.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WithContext<F> {
    inner: F,
    context: Context,
    span: Option<Span>,
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`, and
        // `WithContext` has no `Drop` impl or `Unpin` impl that could move it; the other
        // fields are never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let _guard = this.context.clone().attach();
        // SAFETY: see above; `this.inner` stays in place for the life of `self`.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let result = inner.poll(cx);
        if result.is_ready() {
            // End the span when the work completes, not when the caller drops the future.
            if let Some(mut span) = this.span.take() {
                span.end();
            }
        }
        result
    }
}

/// Adds `.in_span(span)` and `.with_context(cx)` to every future.
///
/// ```
/// use otel_lite_core::trace::{Context, FutureExt, TracerProvider};
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let tracer = TracerProvider::builder().build().tracer("docs");
/// let span = tracer.start("fetch");
/// let trace_id = span.span_context().trace_id();
/// let seen = block_on(async { Context::current().span_context().map(|s| s.trace_id()) }.in_span(span));
/// assert_eq!(seen, Some(trace_id));
/// ```
pub trait FutureExt: Future + Sized {
    /// Runs this future inside `span` (current during every poll), ending the span when
    /// the future completes.
    fn in_span(self, span: Span) -> WithContext<Self> {
        WithContext { inner: self, context: span.context().clone(), span: Some(span) }
    }

    /// Runs this future with `context` current during every poll.
    fn with_context(self, context: Context) -> WithContext<Self> {
        WithContext { inner: self, context, span: None }
    }

    /// Runs this future with the caller's current context (capture it now, at the spawn
    /// site, so a task started elsewhere inherits it).
    fn with_current_context(self) -> WithContext<Self> {
        self.with_context(Context::current())
    }
}

impl<F: Future> FutureExt for F {}
