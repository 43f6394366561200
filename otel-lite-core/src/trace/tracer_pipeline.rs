//! The state one tracer provider shares with its tracers and recording spans: sampler, span
//! limits, resource and processors. A recording span holds it to hand itself over when it
//! ends, so it sits below the span.

use std::time::Duration;

use crate::resource::Resource;
use crate::trace::sampler::Sampler;
use crate::trace::span_data::{FinishedSpan, SpanLimits};

pub(crate) type Processor = crate::pipeline::Processor<FinishedSpan>;

/// What spans of one provider go through.
///
/// A pipeline is leaked when its provider is built and lives as `&'static` for the rest of
/// the process: a recording span then reaches it without a reference count. The count's
/// atomic decrement at every span end was a full fence right after the span was copied into
/// the ring, so each span waited for those cache lines to come back from the export worker's
/// core (measured at about a fifth of the sampled-span cost). What stays behind is a few
/// hundred bytes of configuration per provider; the worker thread, exporter and buffers are
/// released by [`TracerProvider::shutdown`] or when the last provider and tracer handle drops.
///
/// [`TracerProvider::shutdown`]: crate::trace::TracerProvider::shutdown
pub(crate) struct Pipeline {
    pub(crate) limits: SpanLimits,
    pub(crate) sampler: Sampler,
    /// What the sampler decides for a root span, and whether it drops every span, when that
    /// does not depend on the trace id: such spans skip the decision and defer their ids
    /// (see [`Span::deferred`]), so dropping one unseen costs a thread-local read.
    ///
    /// [`Span::deferred`]: crate::trace::Span::deferred
    root_decision: Option<bool>,
    never_samples: bool,
    pub(crate) resource: Resource,
    pub(crate) processors: Vec<Processor>,
}

/// A span the sampler drops whatever its trace id, known before anything is read.
pub(crate) enum Shortcut {
    /// A root (nothing is attached on this thread) under a sampler that drops roots.
    UnsampledRoot,
    /// Any span, under a sampler that drops everything.
    UnsampledUnderCurrent,
    None,
}

impl Pipeline {
    /// A pipeline for `sampler`, with the shortcuts it allows worked out once.
    pub(crate) fn new(
        sampler: Sampler,
        limits: SpanLimits,
        resource: Resource,
        processors: Vec<Processor>,
    ) -> Pipeline {
        Pipeline {
            limits,
            root_decision: sampler.decide_by_parent(None),
            never_samples: sampler == Sampler::AlwaysOff,
            sampler,
            resource,
            processors,
        }
    }

    #[inline]
    pub(crate) fn shortcut(&self) -> Shortcut {
        if self.root_decision != Some(false) {
            Shortcut::None
        } else if !crate::context::is_attached() {
            Shortcut::UnsampledRoot
        } else if self.never_samples {
            Shortcut::UnsampledUnderCurrent
        } else {
            Shortcut::None
        }
    }

    #[inline]
    pub(crate) fn on_end(&self, span: FinishedSpan) {
        match self.processors.as_slice() {
            [] => {}
            [only] => dispatch(only, span),
            many => {
                for p in &many[1..] {
                    dispatch(p, span.clone());
                }
                dispatch(&many[0], span);
            }
        }
    }

    /// Flushes and stops every processor; returns whether everything was exported within
    /// `timeout`.
    pub(crate) fn shutdown(&self, timeout: Duration) -> bool {
        crate::pipeline::shutdown_all(&self.processors, timeout)
    }
}

#[inline]
fn dispatch(p: &Processor, span: FinishedSpan) {
    match p {
        Processor::Batch(b) => b.on_end(span),
        Processor::Simple(e) => Processor::export_now(e, span),
    }
}
