//! What every signal shares about where it runs: trace and span ids, span contexts,
//! trace state, baggage, and the current [`Context`], carried in a thread-local stack.
//! Below the signals: spans create contexts, propagators read and write them, log records
//! and exemplars read the current one.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Arc;

pub mod baggage;
pub(crate) mod id;
pub(crate) mod trace_state;

pub use baggage::Baggage;
pub use id::{ParseIdError, SpanId, TraceId};
pub use trace_state::{TraceState, TraceStateError};

/// Trace flags: the W3C Trace Context flags (`sampled`, `random`), and two more that only
/// B3 propagates (its debug flag, and a sampling decision left to the receiver).
///
/// The W3C propagator reads and writes only the bits W3C defines, so the B3 bits never
/// reach a `traceparent` header and a `traceparent` cannot set them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// The `sampled` flag: the caller may have recorded this trace.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// The level-2 `random` flag: the rightmost 7 bytes of the trace id are random.
    pub const RANDOM: TraceFlags = TraceFlags(0x02);
    /// The bits W3C Trace Context defines (level 2): what `traceparent` carries.
    pub const W3C_BITS: u8 = 0x03;
    /// B3 debug (`b3: …-d`, `X-B3-Flags: 1`): sampled, and to be sampled downstream too.
    /// Children inherit it, so B3 propagates it.
    pub const B3_DEBUG: TraceFlags = TraceFlags(0x80);
    /// A B3 context that arrived without a sampling state: the decision is this service's
    /// (a parent-based sampler asks its root sampler). Cleared once a decision is made.
    pub const B3_DEFERRED: TraceFlags = TraceFlags(0x40);

    /// Flags from their byte.
    pub const fn new(bits: u8) -> Self {
        TraceFlags(bits)
    }
    /// The byte.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether `sampled` is set.
    pub const fn is_sampled(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// These flags with `sampled` set or cleared: a decision, so no longer deferred.
    pub const fn with_sampled(self, sampled: bool) -> Self {
        let decided = self.0 & !Self::B3_DEFERRED.0;
        TraceFlags(if sampled { decided | 0x01 } else { decided & !0x01 })
    }
    /// Whether `flag` (one of the constants) is set.
    pub const fn contains(self, flag: TraceFlags) -> bool {
        self.0 & flag.0 == flag.0
    }
    /// These flags with `flag` added.
    pub const fn with(self, flag: TraceFlags) -> Self {
        TraceFlags(self.0 | flag.0)
    }
    /// Whether the sampling decision was left to this service (B3 without a sampling state).
    pub const fn is_deferred(self) -> bool {
        self.contains(Self::B3_DEFERRED)
    }
}

/// The identity of a span as it propagates: trace id, span id, flags, trace state.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SpanContext {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    is_remote: bool,
    state: TraceState,
}

impl SpanContext {
    /// A span context.
    #[inline]
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags, is_remote: bool, state: TraceState) -> Self {
        SpanContext { trace_id, span_id, flags, is_remote, state }
    }
    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// The span id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }
    /// The flags.
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }
    /// Whether the span was recorded by (may be sampled at) its origin.
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }
    /// Whether this context came from another process.
    pub fn is_remote(&self) -> bool {
        self.is_remote
    }
    /// The vendor trace state.
    pub fn trace_state(&self) -> &TraceState {
        &self.state
    }
    /// The vendor trace state, taken out.
    #[inline]
    pub(crate) fn into_trace_state(self) -> TraceState {
        self.state
    }
    /// Whether both ids are valid.
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }
}

/// What travels with a unit of work: the current span context and baggage.
///
/// The current context of a thread is set by entering a span or attaching a context, and
/// restored when the returned guard drops:
///
/// ```
/// use otel_lite_core::trace::{Context, SpanContext, SpanId, TraceFlags, TraceId, TraceState};
/// let sc = SpanContext::new(TraceId::random(), SpanId::random(), TraceFlags::SAMPLED, true, TraceState::default());
/// assert!(Context::current().span_context().is_none());
/// {
///     let _guard = Context::new().with_span_context(sc.clone()).attach();
///     assert_eq!(Context::current().span_context(), Some(&sc));
/// }
/// assert!(Context::current().span_context().is_none());
/// ```
#[derive(Clone, Default, Debug, PartialEq)]
pub struct Context {
    span: Option<SpanContext>,
    baggage: Option<Arc<Baggage>>,
}

/// A clone, for APIs that take a context by value or by reference
/// ([`SpanBuilder::parent`](crate::trace::SpanBuilder::parent)).
impl From<&Context> for Context {
    #[inline]
    fn from(context: &Context) -> Self {
        context.clone()
    }
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Context::default()
    }

    /// The current context of this thread (a cheap clone).
    #[inline]
    pub fn current() -> Context {
        with_current(Context::clone)
    }

    /// This context with `span` as its span context.
    #[inline]
    pub fn with_span_context(mut self, span: SpanContext) -> Self {
        self.span = Some(span);
        self
    }

    /// Whether dropping this frees nothing: no baggage, no trace state.
    #[inline]
    pub(crate) fn is_unallocated(&self) -> bool {
        self.baggage.is_none() && self.span.as_ref().is_none_or(|s| s.state.is_unallocated())
    }

    /// The span context and the baggage, taken apart.
    #[inline]
    pub(crate) fn into_parts(self) -> (Option<SpanContext>, Option<Arc<Baggage>>) {
        (self.span, self.baggage)
    }

    /// A context from its parts (see `into_parts`).
    #[inline]
    pub(crate) fn from_parts(span: Option<SpanContext>, baggage: Option<Arc<Baggage>>) -> Context {
        Context { span, baggage }
    }

    /// This context with `baggage`.
    pub fn with_baggage(mut self, baggage: Baggage) -> Self {
        self.baggage = (!baggage.is_empty()).then(|| Arc::new(baggage));
        self
    }

    /// The span context, if any.
    pub fn span_context(&self) -> Option<&SpanContext> {
        self.span.as_ref()
    }

    /// The baggage (empty if none).
    pub fn baggage(&self) -> &Baggage {
        static EMPTY: std::sync::OnceLock<Baggage> = std::sync::OnceLock::new();
        self.baggage.as_deref().unwrap_or_else(|| EMPTY.get_or_init(Baggage::default))
    }

    /// Makes this the current context of the thread until the guard drops.
    pub fn attach(self) -> ContextGuard {
        push_current(|| self)
    }

    /// Makes a clone of this context current (a span entering): the clone is built in its
    /// stack slot rather than on the caller's stack and then moved there.
    #[inline]
    pub(crate) fn attach_clone(&self) -> ContextGuard {
        push_current(|| self.clone())
    }
}

struct Entry {
    id: u64,
    context: Context,
    detached: bool,
}

struct Stack {
    entries: Vec<Entry>,
    next_id: u64,
    root: Context,
}

thread_local! {
    /// Whether this thread's stack has entries: a thread with nothing attached (most spans
    /// start there, as roots) learns it from one thread-pointer-relative load. A type
    /// without a destructor has no registration state to check on access, unlike `CURRENT`.
    static ATTACHED: Cell<bool> = const { Cell::new(false) };
    // Const-initialised: each access is a plain thread-pointer-relative address, without a
    // lazy-initialisation check or an indirect call.
    static CURRENT: RefCell<Stack> = const {
        RefCell::new(Stack { entries: Vec::new(), next_id: 0, root: Context { span: None, baggage: None } })
    };
}

#[inline]
fn push_current(context: impl FnOnce() -> Context) -> ContextGuard {
    CURRENT
        .try_with(|c| {
            let mut c = c.borrow_mut();
            c.next_id += 1;
            let id = c.next_id;
            c.entries.push(Entry { id, context: context(), detached: false });
            ATTACHED.set(true);
            ContextGuard { id, _not_send: PhantomData }
        })
        // The thread is exiting and its stack is gone (a later thread-local's destructor is
        // running): there is nothing to attach to, and panicking here would abort. Made only
        // then: a guard built eagerly for `unwrap_or` was dropped on every attach, a search
        // of the whole stack for an entry that is never there.
        .unwrap_or_else(|_| ContextGuard { id: 0, _not_send: PhantomData })
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The stack is being destroyed with its thread: from now on nothing is attached, and
        // readers must not touch the stack (see `with_current`).
        ATTACHED.set(false);
    }
}

/// Whether anything is attached on this thread; if not, the current context is empty.
#[inline]
pub(crate) fn is_attached() -> bool {
    ATTACHED.get()
}

/// Calls `f` with this thread's current context, without cloning it.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> R {
    if !is_attached() {
        // Nothing attached, or the stack already destroyed with its thread.
        const EMPTY: Context = Context { span: None, baggage: None };
        return f(&EMPTY);
    }
    CURRENT.with(|c| {
        let c = c.borrow();
        // Detached entries are popped eagerly unless an inner one is still live; skip them.
        let cx = c.entries.iter().rev().find(|e| !e.detached).map_or(&c.root, |e| &e.context);
        f(cx)
    })
}

/// Restores the previous context when dropped. Not `Send`: it belongs to the thread whose
/// context it changed.
#[must_use = "the context is current only while the guard lives"]
#[derive(Debug)]
pub struct ContextGuard {
    id: u64,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        // `try_with`: during thread teardown the stack may already be gone; nothing to restore.
        let _ = CURRENT.try_with(|c| {
            let entries = &mut c.borrow_mut().entries;
            // The common case: this guard's entry is on top. `truncate` drops it in place
            // (a `pop` would move it out first).
            if entries.last().is_some_and(|e| e.id == self.id) {
                entries.truncate(entries.len() - 1);
            } else if let Some(e) = entries.iter_mut().rev().find(|e| e.id == self.id) {
                // Guards dropped out of order only mark their entry; the stack unwinds
                // past detached entries once everything above them is gone.
                e.detached = true;
            }
            while entries.last().is_some_and(|e| e.detached) {
                entries.truncate(entries.len() - 1);
            }
            ATTACHED.set(!entries.is_empty());
        });
    }
}

/// Calls `f` with the current span context of this thread, without cloning it.
pub(crate) fn with_current_span_context<R>(f: impl FnOnce(Option<&SpanContext>) -> R) -> R {
    with_current(|cx| f(cx.span_context()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(n: u8) -> Context {
        let sc = SpanContext::new(
            TraceId::from_bytes([n; 16]),
            SpanId::from_bytes([n; 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        Context::new().with_span_context(sc)
    }

    fn current_id() -> Option<u8> {
        Context::current().span_context().map(|s| s.trace_id().to_bytes()[0])
    }

    #[test]
    fn nested_guards_restore() {
        let a = cx(1).attach();
        let b = cx(2).attach();
        assert_eq!(current_id(), Some(2));
        drop(b);
        assert_eq!(current_id(), Some(1));
        drop(a);
        assert_eq!(current_id(), None);
    }

    #[test]
    fn out_of_order_drops_restore_consistently() {
        let a = cx(1).attach();
        let b = cx(2).attach();
        let c = cx(3).attach();
        drop(b);
        assert_eq!(current_id(), Some(3), "an inner guard still lives");
        drop(c);
        assert_eq!(current_id(), Some(1), "b was detached, so the stack unwinds to a");
        drop(a);
        assert_eq!(current_id(), None);
    }

    #[test]
    fn panics_restore_the_context() {
        let result = std::panic::catch_unwind(|| {
            let _g = cx(7).attach();
            panic!("boom");
        });
        assert!(result.is_err());
        assert_eq!(current_id(), None);
    }

    /// A thread's context stack can be destroyed before another thread-local whose
    /// destructor still records (a span ending there, `#[instrument]`ed cleanup): attaching
    /// and reading contexts then must not panic, which would abort the process.
    #[test]
    fn contexts_still_work_in_later_thread_local_destructors() {
        struct UsesContext;
        impl Drop for UsesContext {
            fn drop(&mut self) {
                let guard = cx(9).attach();
                let _ = Context::current();
                drop(guard);
                assert_eq!(current_id(), None);
            }
        }
        thread_local!(static LATE: UsesContext = const { UsesContext });
        std::thread::spawn(|| {
            // Registered first, so destroyed after the context stack registered below.
            LATE.with(|_| {});
            let _outer = cx(1).attach();
            assert_eq!(current_id(), Some(1));
        })
        .join()
        .expect("the thread exits cleanly");
    }

    #[test]
    fn threads_do_not_share_the_current_context() {
        let _g = cx(5).attach();
        assert_eq!(std::thread::spawn(current_id).join().unwrap(), None);
    }
}
