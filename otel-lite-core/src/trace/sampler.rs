//! Samplers: which spans are recorded and exported.

use crate::context::id::TraceId;
use crate::context::SpanContext;

/// A sampling strategy, named as `OTEL_TRACES_SAMPLER` names them.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Sampler {
    /// Record every span (`always_on`).
    AlwaysOn,
    /// Record nothing (`always_off`); contexts still propagate.
    AlwaysOff,
    /// Record a fraction of traces (`traceidratio`), decided from the trace id's 56 random
    /// bits so that every service sampling at the same ratio agrees.
    TraceIdRatio(f64),
    /// Follow the parent's decision; use the inner sampler for root spans
    /// (`parentbased_*`).
    ParentBased(Box<Sampler>),
}

impl Default for Sampler {
    /// `parentbased_always_on`, the specification's default.
    fn default() -> Self {
        Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
    }
}

/// An `OTEL_TRACES_SAMPLER` value (or its argument) that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SamplerConfigError {
    /// The variable's value.
    pub value: String,
}

impl std::fmt::Display for SamplerConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unsupported sampler setting {:?}", self.value)
    }
}
impl std::error::Error for SamplerConfigError {}

impl Sampler {
    /// The sampler for `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` values. Names are
    /// matched case-insensitively, as the specification says of enum values; a missing or
    /// invalid ratio argument means 1.0.
    pub fn from_env_values(name: &str, arg: Option<&str>) -> Result<Sampler, SamplerConfigError> {
        let ratio =
            || arg.and_then(|a| a.trim().parse::<f64>().ok()).filter(|r| (0.0..=1.0).contains(r)).unwrap_or(1.0);
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatio(ratio()),
            "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            "parentbased_traceidratio" => Sampler::ParentBased(Box::new(Sampler::TraceIdRatio(ratio()))),
            _ => return Err(SamplerConfigError { value: name.to_string() }),
        })
    }

    /// Whether a span in `trace_id` with `parent` should be recorded and sampled.
    #[inline]
    pub fn should_sample(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        self.decide_by_parent(parent).unwrap_or_else(|| self.sampled_by_trace_id(trace_id))
    }

    /// The decision when it does not depend on the trace id, so that a root span's id can
    /// be drawn only when it is needed (an unsampled span defers its ids).
    #[inline]
    pub(crate) fn decide_by_parent(&self, parent: Option<&SpanContext>) -> Option<bool> {
        match self {
            Sampler::AlwaysOn => Some(true),
            Sampler::AlwaysOff => Some(false),
            Sampler::TraceIdRatio(_) => None,
            Sampler::ParentBased(root) => match parent {
                // A parent that left the decision to us (B3 without a sampling state) is
                // decided like a root, in its trace.
                Some(p) if p.is_valid() && !p.flags().is_deferred() => Some(p.is_sampled()),
                _ => root.decide_by_parent(None),
            },
        }
    }

    /// The decision `decide_by_parent` leaves open: a trace-id ratio's, for this sampler or
    /// its root sampler.
    #[inline]
    pub(crate) fn sampled_by_trace_id(&self, trace_id: TraceId) -> bool {
        match self {
            Sampler::TraceIdRatio(ratio) => ratio_sampled(*ratio, trace_id),
            Sampler::ParentBased(root) => root.sampled_by_trace_id(trace_id),
            // Decided by `decide_by_parent`.
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
        }
    }
}

/// Consistent probability sampling: the low 56 bits of the trace id are its randomness `R`;
/// the span is sampled when `R >= (1 - ratio) * 2^56`.
fn ratio_sampled(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 || ratio.is_nan() {
        return false;
    }
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low[1..].copy_from_slice(&bytes[9..]);
    let randomness = u64::from_be_bytes(low);
    let threshold = ((1.0 - ratio) * (1u64 << 56) as f64) as u64;
    randomness >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{SpanId, TraceFlags, TraceState};

    #[test]
    fn env_names() {
        assert_eq!(Sampler::from_env_values("always_on", None), Ok(Sampler::AlwaysOn));
        assert_eq!(Sampler::from_env_values("traceidratio", Some("0.25")), Ok(Sampler::TraceIdRatio(0.25)));
        assert_eq!(Sampler::from_env_values("traceidratio", Some("2")), Ok(Sampler::TraceIdRatio(1.0)));
        assert_eq!(Sampler::from_env_values("traceidratio", Some("x")), Ok(Sampler::TraceIdRatio(1.0)));
        assert!(Sampler::from_env_values("sometimes", None).is_err());
        // Enum values are case-insensitive.
        assert_eq!(
            Sampler::from_env_values("ParentBased_Always_Off", None),
            Ok(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
        );
        assert_eq!(Sampler::from_env_values(" ALWAYS_ON ", None), Ok(Sampler::AlwaysOn));
        assert_eq!(Sampler::from_env_values("Sometimes", None), Err(SamplerConfigError { value: "Sometimes".into() }));
    }

    #[test]
    fn ratio_is_close_and_consistent() {
        let s = Sampler::TraceIdRatio(0.25);
        let ids: Vec<TraceId> = (0..40_000).map(|_| TraceId::random()).collect();
        let n = ids.iter().filter(|id| s.should_sample(None, **id)).count();
        assert!((9_000..11_000).contains(&n), "{n}");
        // Lower ratios sample a subset of what higher ratios sample.
        let half = Sampler::TraceIdRatio(0.5);
        assert!(ids.iter().filter(|id| s.should_sample(None, **id)).all(|id| half.should_sample(None, *id)));
    }

    #[test]
    fn parent_based_follows_parent() {
        let s = Sampler::default();
        let sampled =
            SpanContext::new(TraceId::random(), SpanId::random(), TraceFlags::SAMPLED, true, TraceState::default());
        let unsampled =
            SpanContext::new(TraceId::random(), SpanId::random(), TraceFlags::default(), true, TraceState::default());
        assert!(s.should_sample(Some(&sampled), sampled.trace_id()));
        assert!(!s.should_sample(Some(&unsampled), unsampled.trace_id()));
        assert!(s.should_sample(None, TraceId::random()));
    }
}
