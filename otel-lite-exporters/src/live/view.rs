//! [`LiveView`]: what the live page reads. It samples the registry into a
//! [`SnapshotRing`] on a timer, keeps the reservoir its tees feed, and renders the page's
//! two JSON documents.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use otel_lite_core::trace::{SpanData, SpanKind, Status, TraceId};
use otel_lite_core::{KeyValue, Registry};

use super::json::JsonWriter;
use super::reservoir::{LiveLog, ReservoirConfig, TraceReservoir};
use super::ring::SnapshotRing;
use super::{LiveLogTee, LiveSpanTee};

/// The most bytes one JSON document of the live page takes (rows past it are left out and
/// the document says `"truncated":true`).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Attributes shown per span or event; more are counted in `more_attrs`.
const MAX_ATTRS: usize = 64;
/// Events shown per span.
const MAX_EVENTS: usize = 32;
/// Characters of an attribute value shown.
const MAX_VALUE_CHARS: usize = 512;

/// Settings of the live page.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LiveConfig {
    /// How often the registry is sampled (default 5 s; sparklines hold 120 samples).
    pub sample_interval: Duration,
    /// Whether peers other than loopback may open the page (default `false`: they get the
    /// same 404 as for any unknown path).
    pub allow_remote: bool,
    /// How many traces, spans and bytes the reservoir keeps.
    pub reservoir: ReservoirConfig,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            sample_interval: Duration::from_secs(5),
            allow_remote: false,
            reservoir: ReservoirConfig::default(),
        }
    }
}

impl LiveConfig {
    /// Sets [`LiveConfig::sample_interval`] (at least 100 ms).
    pub fn sample_interval(mut self, interval: Duration) -> Self {
        self.sample_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Sets [`LiveConfig::allow_remote`].
    pub fn allow_remote(mut self, allow: bool) -> Self {
        self.allow_remote = allow;
        self
    }
}

/// The live page's state, shared by the endpoint, the sampler and the tees. Cheap to clone.
///
/// ```
/// use otel_lite_core::Registry;
/// use otel_lite_exporters::live::{LiveConfig, LiveView};
///
/// let registry = Registry::new();
/// let view = LiveView::new(registry.clone(), LiveConfig::default());
/// view.sample();
/// assert!(view.overview_json().starts_with("{\"v\":1"));
/// ```
#[derive(Clone, Debug)]
pub struct LiveView {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    config: LiveConfig,
    reservoir: Arc<TraceReservoir>,
    ring: Mutex<SnapshotRing>,
    /// When the last sample was taken, ns since the Unix epoch (0: none yet).
    sampled_at: AtomicU64,
}

impl LiveView {
    /// A view of `registry` (its resource's `service.name` titles the page).
    pub fn new(registry: Registry, config: LiveConfig) -> Self {
        let reservoir = Arc::new(TraceReservoir::new(config.reservoir.clone()));
        LiveView {
            inner: Arc::new(Inner {
                registry,
                config,
                reservoir,
                ring: Mutex::new(SnapshotRing::starting_at(otel_lite_core::now_unix_nanos())),
                sampled_at: AtomicU64::new(0),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &LiveConfig {
        &self.inner.config
    }

    /// The trace reservoir the tees feed.
    pub fn reservoir(&self) -> &Arc<TraceReservoir> {
        &self.inner.reservoir
    }

    /// Wraps a span exporter so that the page sees its batches (on its worker thread).
    pub fn span_tee<E>(&self, inner: E) -> LiveSpanTee<E> {
        LiveSpanTee::new(inner, Arc::clone(&self.inner.reservoir))
    }

    /// Wraps a log exporter so that the page sees its records with a trace id.
    pub fn log_tee<E>(&self, inner: E) -> LiveLogTee<E> {
        LiveLogTee::new(inner, Arc::clone(&self.inner.reservoir))
    }

    /// Takes one sample: collects the registry into the ring and settles the reservoir's
    /// traces that were entered from another process. The endpoint's sampler calls it
    /// every [`LiveConfig::sample_interval`]; requests never collect.
    pub fn sample(&self) {
        let snapshot = self.inner.registry.collect();
        let now = otel_lite_core::now_unix_nanos();
        self.ring().push(&snapshot, now);
        self.inner.reservoir.settle(now);
        // Relaxed: a time shown on the page, read on its own.
        self.inner.sampled_at.store(now, Ordering::Relaxed);
    }

    /// A poisoned lock only means a panic elsewhere mid-push; the ring stays usable.
    fn ring(&self) -> MutexGuard<'_, SnapshotRing> {
        self.inner.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The overview document (`/live/api/overview`), at most [`MAX_DOCUMENT_BYTES`] plus
    /// its closing brackets.
    pub fn overview_json(&self) -> String {
        let reservoir = &self.inner.reservoir;
        // The lists first: the ring's exemplars ask which traces are kept.
        let lists = reservoir.lists();
        let mut w = JsonWriter::with_budget(MAX_DOCUMENT_BYTES);
        w.begin_object();
        w.key("v").u64(1);
        w.key("service").str(&self.inner.registry.resource().service_name());
        w.key("now_ns").u64(otel_lite_core::now_unix_nanos());
        w.key("sample_ns").u64(self.inner.sampled_at.load(Ordering::Relaxed));
        w.key("interval_ms").u64(u64::try_from(self.inner.config.sample_interval.as_millis()).unwrap_or(u64::MAX));
        // The small parts first: the budget cuts rows from the end, and the metric rows
        // (five sparklines each) are what may not all fit.
        let stats = reservoir.stats();
        w.key("reservoir").begin_object();
        stats.write_json(&mut w);
        w.end_object();
        lists.write_json(&mut w);
        {
            let ring = self.ring();
            w.key("samples").u64(ring.samples());
            ring.write_json(&mut w, &|id| reservoir.is_kept(id));
        }
        let truncated = w.truncated();
        w.key("truncated").bool(truncated);
        w.end_object();
        w.finish()
    }

    /// The document of one kept trace (`/live/api/trace/{id}`), or `None` if the
    /// reservoir does not hold it.
    pub fn trace_json(&self, id: TraceId) -> Option<String> {
        let (trace, logs) = self.inner.reservoir.trace(id)?;
        let start = trace.spans().iter().map(SpanData::start_unix_nanos).min().unwrap_or(0);
        let offset = |t: u64| t.saturating_sub(start);
        let mut w = JsonWriter::with_budget(MAX_DOCUMENT_BYTES);
        w.begin_object();
        w.key("id").trace_id(id);
        w.key("root").str(trace.root_name());
        w.key("start_ns").u64(start);
        w.key("spans").begin_array();
        for span in trace.spans() {
            if !w.row(|w| write_span(w, span, &offset)) {
                break;
            }
        }
        w.end_array();
        w.key("logs").begin_array();
        for log in &logs {
            if !w.row(|w| write_log(w, log, &offset)) {
                break;
            }
        }
        w.end_array();
        w.key("dropped_spans").u64(u64::from(trace.dropped_spans()));
        let incomplete = w.truncated() || trace.dropped_spans() > 0;
        w.key("incomplete").bool(incomplete);
        w.end_object();
        Some(w.finish())
    }
}

fn write_span(w: &mut JsonWriter, span: &SpanData, offset: &dyn Fn(u64) -> u64) {
    w.begin_object();
    w.key("id").span_id(span.span_id());
    w.key("parent");
    if span.parent_span_id().is_valid() {
        w.span_id(span.parent_span_id());
    } else {
        w.str("");
    }
    w.key("remote_parent").bool(span.parent_is_remote());
    w.key("name").str(span.name());
    w.key("kind").str(kind_name(span.kind()));
    w.key("scope").str(span.scope().name.as_str());
    w.key("start_ns").u64(offset(span.start_unix_nanos()));
    w.key("dur_ns").u64(span.end_unix_nanos().saturating_sub(span.start_unix_nanos()));
    let (status, message) = match span.status() {
        Status::Unset => ("unset", ""),
        Status::Ok => ("ok", ""),
        Status::Error { description } => ("error", description.as_ref()),
        // `Status` is non-exhaustive: a kind added later shows as unset until named here.
        #[allow(unreachable_patterns)]
        _ => ("unset", ""),
    };
    w.key("status").str(status);
    w.key("status_msg").str(message);
    write_attrs(w, span.attributes());
    w.key("events").begin_array();
    for event in span.events().iter().take(MAX_EVENTS) {
        w.begin_object();
        w.key("t").u64(offset(event.time_unix_nanos));
        w.key("name").str(event.name.as_str());
        write_attrs(w, &event.attributes);
        w.end_object();
    }
    w.end_array();
    w.key("dropped").begin_object();
    w.key("attributes").u64(u64::from(span.dropped_attributes()));
    let hidden_events = span.events().len().saturating_sub(MAX_EVENTS) as u64;
    w.key("events").u64(u64::from(span.dropped_events()) + hidden_events);
    w.key("links").u64(u64::from(span.dropped_links()));
    w.end_object();
    w.end_object();
}

/// `"attrs":[[key, value], …]`, values as text, and `"more_attrs"` past [`MAX_ATTRS`].
fn write_attrs(w: &mut JsonWriter, attributes: &[KeyValue]) {
    w.key("attrs").begin_array();
    for kv in attributes.iter().take(MAX_ATTRS) {
        w.begin_array();
        w.str(kv.key().as_str());
        w.str_capped(&kv.value().to_string(), MAX_VALUE_CHARS);
        w.end_array();
    }
    w.end_array();
    w.key("more_attrs").u64(attributes.len().saturating_sub(MAX_ATTRS) as u64);
}

fn write_log(w: &mut JsonWriter, log: &LiveLog, offset: &dyn Fn(u64) -> u64) {
    w.begin_object();
    w.key("span").span_id(log.span_id);
    w.key("t").u64(offset(log.time_ns));
    w.key("sev").u64(u64::from(log.severity));
    w.key("sev_text").str(log.severity_text.as_ref().map_or("", |t| t.as_str()));
    w.key("event").str(log.event_name.as_ref().map_or("", |n| n.as_str()));
    w.key("body").str_capped(&log.body, MAX_VALUE_CHARS * 2);
    w.key("attrs").begin_array();
    for (key, value) in &log.attrs {
        w.begin_array();
        w.str(key.as_str());
        w.str_capped(value, MAX_VALUE_CHARS);
        w.end_array();
    }
    w.end_array();
    w.end_object();
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        // `SpanKind` is non-exhaustive.
        #[allow(unreachable_patterns)]
        _ => "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otel_lite_core::trace::TracerProvider;

    /// A call made before the first sample (a loaded machine can delay it by seconds) shows
    /// in that first sample's rate and error ratio, not only in its count.
    #[test]
    fn calls_before_the_first_sample_are_rated() {
        let registry = Registry::new();
        let view = LiveView::new(registry.clone(), LiveConfig::default());
        let calls = registry.counter::<u64>("function.calls").build().expect("registers");
        let attrs = [
            KeyValue::new("function", "reserve"),
            KeyValue::new("module", "m"),
            KeyValue::new("result", "error"),
            KeyValue::new("error.type", "io"),
        ];
        calls.add(1, &attrs);
        std::thread::sleep(std::time::Duration::from_millis(20));
        view.sample();
        let overview: serde_json::Value = serde_json::from_str(&view.overview_json()).expect("JSON");
        let row = &overview["functions"][0];
        assert_eq!((row["name"].as_str(), row["count"].as_u64()), (Some("reserve"), Some(1)), "{overview}");
        assert!(row["rate"].as_f64().is_some_and(|r| r > 0.0), "{row}");
        assert_eq!(row["err"].as_f64(), Some(1.0), "{row}");
    }

    /// 256 functions with full sparklines are more than a document holds: their rows are
    /// cut, but the trace lists and the health rows, written first, are all there.
    #[test]
    fn a_full_ring_leaves_the_trace_lists_in_the_overview() {
        let registry = Registry::new();
        let calls = registry.counter::<u64>("function.calls").build().expect("registers");
        let durations = registry.histogram("function.calls.duration").unit("s").build().expect("registers");
        let view = LiveView::new(registry.clone(), LiveConfig::default());
        let provider = TracerProvider::builder().with_simple_exporter(view.span_tee(super::super::Discard)).build();
        let mut span = provider.tracer("test").start("failed request");
        span.set_status(Status::error("boom"));
        drop(span);
        for sample in 0..120u64 {
            for f in 0..256u64 {
                let attrs = [KeyValue::new("function", format!("function_{f}")), KeyValue::new("module", "m")];
                calls.add(sample + f, &attrs);
                durations.record(0.001 * (1 + (sample * f) % 97) as f64, &attrs);
            }
            view.sample();
        }
        let text = view.overview_json();
        let overview: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(overview["truncated"], true, "the test must overflow the document ({} bytes)", text.len());
        assert!(text.len() <= MAX_DOCUMENT_BYTES + 64);
        assert_eq!(overview["traces"]["failed"][0]["root"], "failed request");
        assert!(overview["functions"].as_array().is_some_and(|f| !f.is_empty() && f.len() < 256));
        assert!(overview["health"].is_array());
    }
}
