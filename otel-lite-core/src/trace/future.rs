//! Carrying the context across `.await`: a future adapter that makes a context current
//! only while the inner future is being polled.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use crate::context::Context;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    /// Pending once, then ready: the adapter must re-enter the context on the second poll.
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    /// A self-referential future (a borrow held across an await), polled through the
    /// adapter's pin projection while pending (miri checks the projection).
    #[test]
    fn a_self_referential_future_sees_its_context_on_every_poll() {
        let trace_id = TraceId::from_bytes([7; 16]);
        let sc =
            SpanContext::new(trace_id, SpanId::from_bytes([1; 8]), TraceFlags::SAMPLED, true, TraceState::default());
        let future = async {
            let local = [1u8; 32];
            let borrowed = &local;
            let before = Context::current().span_context().map(|s| s.trace_id());
            YieldOnce(false).await;
            let after = Context::current().span_context().map(|s| s.trace_id());
            (before, after, borrowed.len())
        }
        .with_context(Context::new().with_span_context(sc));
        let mut future = std::pin::pin!(future);
        let waker = std::task::Waker::noop();
        let mut cx = TaskContext::from_waker(waker);
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert!(Context::current().span_context().is_none(), "the context is current only while polled");
        let Poll::Ready(seen) = future.as_mut().poll(&mut cx) else { panic!("ready on the second poll") };
        assert_eq!(seen, (Some(trace_id), Some(trace_id), 32));
    }
}
