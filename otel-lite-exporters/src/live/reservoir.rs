//! The trace reservoir: recent interesting traces, whole, with their log records.
//!
//! The span tee hands it every exported batch on the exporter's worker thread. Spans wait
//! in pending groups by trace until the trace's local root arrives (or, for a trace entered
//! from another process, until the group has been quiet for `settle`); the trace is then
//! decided: every trace enters `recent`, a failed one `failed`, and one slower than the
//! fastest kept `slowest`. A trace is stored once and freed when it leaves its last list.
//! Log records with a trace id wait in a ring until their trace is kept, then move to it.
//!
//! Every part is bounded (see [`ReservoirConfig`]); what is refused is counted in
//! [`ReservoirStats`].

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use otel_lite_core::logs::{AnyValue, LogRecord};
use otel_lite_core::trace::{SpanData, SpanId, Status, TraceId};
use otel_lite_core::SharedStr;

use super::json::JsonWriter;

/// Longest log body kept, in bytes.
const MAX_BODY_BYTES: usize = 1024;
/// Attributes kept per log record.
const MAX_LOG_ATTRS: usize = 16;
/// Longest log attribute value kept, in bytes.
const MAX_LOG_ATTR_BYTES: usize = 256;
/// Which traces the reservoir takes in: all, while the spans offered stay within the budget
/// per second; above it, those whose trace id's low 64 bits (random, per W3C) fall under a
/// threshold, so that every span of a trace gets the same answer. The rate is the larger
/// of the last second's and this second's so far: a burst is sampled within its first
/// second, and a second of quiet restores everything.
#[derive(Clone, Debug)]
struct Admission {
    budget: u64,
    second: u64,
    /// Offered this second and the last.
    this_second: u64,
    last_second: u64,
    /// Taken in this second: never more than the budget.
    taken: u64,
    threshold: u64,
}

impl Admission {
    fn new(budget: u64) -> Self {
        Admission { budget, second: 0, this_second: 0, last_second: 0, taken: 0, threshold: u64::MAX }
    }

    /// Counts `offered` spans at `now_ns` and gives the threshold for them (`u64::MAX`:
    /// take all).
    fn threshold(&mut self, offered: usize, now_ns: u64) -> u64 {
        let second = now_ns / 1_000_000_000;
        if second != self.second {
            self.last_second = if second == self.second + 1 { self.this_second } else { 0 };
            self.this_second = 0;
            self.taken = 0;
            self.second = second;
        }
        self.this_second = self.this_second.saturating_add(offered as u64);
        let rate = self.last_second.max(self.this_second);
        self.threshold = if rate <= self.budget {
            u64::MAX
        } else {
            // budget / rate of the id space; below u64::MAX since budget < rate.
            (u128::from(u64::MAX) * u128::from(self.budget) / u128::from(rate)) as u64
        };
        self.threshold
    }

    /// How many more may be taken in this second.
    fn quota(&self) -> usize {
        usize::try_from(self.budget.saturating_sub(self.taken)).unwrap_or(usize::MAX)
    }

    /// Counts what was taken.
    fn took(&mut self, n: usize) {
        self.taken = self.taken.saturating_add(n as u64);
    }

    /// The threshold of the latest batch of spans.
    fn current(&self) -> u64 {
        self.threshold
    }

    fn admits(id: TraceId, threshold: u64) -> bool {
        let bytes = id.to_bytes();
        let mut low = [0u8; 8];
        low.copy_from_slice(&bytes[8..]);
        threshold == u64::MAX || u64::from_be_bytes(low) <= threshold
    }
}

/// A map keyed by trace id, hashed by [`IdHashing`].
type IdMap<V> = HashMap<TraceId, V, IdHashing>;

/// Hashes trace ids with a keyed multiply-fold: std's SipHash was 45% of `observe`'s time
/// (several lookups per span). Keyed per reservoir from std's random keys, because trace ids
/// that arrive from other processes are the sender's to choose: unkeyed, crafted ids could
/// all land in one bucket.
#[derive(Clone, Debug)]
struct IdHashing {
    seed: u64,
    key: u64,
}

impl IdHashing {
    fn new() -> Self {
        use std::hash::BuildHasher;
        let random = std::hash::RandomState::new();
        // An odd multiplier keeps every bit of the input in play.
        IdHashing {
            seed: random.hash_one(0x243f_6a88_85a3_08d3_u64),
            key: random.hash_one(0x1319_8a2e_0370_7344_u64) | 1,
        }
    }
}

impl std::hash::BuildHasher for IdHashing {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher { state: self.seed, key: self.key }
    }
}

/// See [`IdHashing`].
struct IdHasher {
    state: u64,
    key: u64,
}

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.state = fold(self.state ^ u64::from_le_bytes(word), self.key);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.state = fold(self.state ^ n as u64, self.key);
    }
    fn finish(&self) -> u64 {
        self.state
    }
}

/// The 128-bit product's halves, xored: every input bit reaches the high bits hashbrown
/// uses for its control bytes.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// How many let-go trace ids the reservoir remembers, to drop their late spans (40 bytes
/// each with the map's entry).
const RELEASED_IDS: usize = 4096;

/// A span's or record's bookkeeping beyond its strings, for the byte estimates.
const SPAN_OVERHEAD: usize = 256;

/// The reservoir's sizes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ReservoirConfig {
    /// Failed traces kept, newest first out (default 32).
    pub failed: usize,
    /// Slowest traces kept (default 32).
    pub slowest: usize,
    /// How long a trace counts among the slowest (default 10 min), so one slow outlier
    /// does not hold its place forever.
    pub slow_window: Duration,
    /// Most recent traces kept, so that exemplar links usually resolve (default 16).
    pub recent: usize,
    /// Spans kept per trace (default 256); later ones are counted, not kept.
    pub max_spans_per_trace: usize,
    /// Spans waiting for their trace's root, in all (default 4096).
    pub pending_spans: usize,
    /// Traces waiting for their root (default 1024).
    pub pending_traces: usize,
    /// Estimated bytes of the waiting spans (default 8 MiB).
    pub pending_bytes: usize,
    /// Estimated bytes of the kept traces and their logs (default 16 MiB).
    pub kept_bytes: usize,
    /// How long a trace entered from another process waits after its last span before it
    /// is decided (default 10 s): it has no local root to close it.
    pub settle: Duration,
    /// Log records waiting for their trace to be kept (default 2048).
    pub unclaimed_logs: usize,
    /// Log records kept per trace (default 64).
    pub logs_per_trace: usize,
    /// Spans per second the reservoir takes in (default 20,000). Above it, whole traces
    /// are sampled by trace id, so that the exporter's worker, which feeds the reservoir,
    /// spends a bounded time on it (about 150 ns a span) and keeps up with the spans it
    /// exports; the page then shows a sample of the traces.
    pub max_spans_per_second: u64,
    /// Log records with a trace id per second the reservoir copies (default 20,000); above
    /// it, sampled by trace id too.
    pub max_logs_per_second: u64,
}

impl Default for ReservoirConfig {
    fn default() -> Self {
        ReservoirConfig {
            failed: 32,
            slowest: 32,
            slow_window: Duration::from_secs(600),
            recent: 16,
            max_spans_per_trace: 256,
            pending_spans: 4096,
            pending_traces: 1024,
            pending_bytes: 8 << 20,
            kept_bytes: 16 << 20,
            settle: Duration::from_secs(10),
            unclaimed_logs: 2048,
            logs_per_trace: 64,
            max_spans_per_second: 20_000,
            max_logs_per_second: 20_000,
        }
    }
}

/// What the reservoir refused or let go, since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReservoirStats {
    /// Traces decided (kept at least in `recent`).
    pub traces_decided: u64,
    /// Waiting traces evicted, oldest first, by the pending bounds.
    pub pending_evicted: u64,
    /// Spans beyond a trace's span limit, or ending after their trace was decided and let go.
    pub spans_dropped: u64,
    /// Kept traces let go early for the kept-bytes bound.
    pub kept_evicted: u64,
    /// Log records dropped: unclaimed ones pushed out of their ring, or beyond a trace's limit.
    pub logs_dropped: u64,
    /// Spans not taken in because their trace was not sampled (above
    /// [`ReservoirConfig::max_spans_per_second`]).
    pub spans_sampled_out: u64,
    /// Log records not copied because their trace was not sampled.
    pub logs_sampled_out: u64,
}

impl ReservoirStats {
    /// Writes the counts into the open object of `w`, under their field names.
    pub fn write_json(&self, w: &mut JsonWriter) {
        w.key("traces_decided").u64(self.traces_decided);
        w.key("pending_evicted").u64(self.pending_evicted);
        w.key("spans_dropped").u64(self.spans_dropped);
        w.key("kept_evicted").u64(self.kept_evicted);
        w.key("logs_dropped").u64(self.logs_dropped);
        w.key("spans_sampled_out").u64(self.spans_sampled_out);
        w.key("logs_sampled_out").u64(self.logs_sampled_out);
    }
}

/// What the reservoir needs of a span; [`SpanData`] has it, and so do the tests' fakes
/// (core gives no way to choose a real span's end time).
pub(crate) trait SpanLike: Clone {
    fn trace_id(&self) -> TraceId;
    fn parent_span_id(&self) -> SpanId;
    fn parent_is_remote(&self) -> bool;
    fn name(&self) -> &str;
    fn start_ns(&self) -> u64;
    fn end_ns(&self) -> u64;
    fn is_error(&self) -> bool;
    /// An estimate of the memory the span holds.
    fn approx_bytes(&self) -> usize;
}

impl SpanLike for SpanData {
    fn trace_id(&self) -> TraceId {
        SpanData::trace_id(self)
    }
    fn parent_span_id(&self) -> SpanId {
        SpanData::parent_span_id(self)
    }
    fn parent_is_remote(&self) -> bool {
        SpanData::parent_is_remote(self)
    }
    fn name(&self) -> &str {
        SpanData::name(self)
    }
    fn start_ns(&self) -> u64 {
        self.start_unix_nanos()
    }
    fn end_ns(&self) -> u64 {
        self.end_unix_nanos()
    }
    fn is_error(&self) -> bool {
        matches!(self.status(), Status::Error { .. })
    }
    fn approx_bytes(&self) -> usize {
        // Strings dominate, and attribute values are as long as the value length limit
        // allows; counting them is cheap next to the clone the tee makes anyway.
        let kv = |kv: &otel_lite_core::KeyValue| kv.key().as_str().len() + value_len(kv.value()) + 16;
        let events: usize =
            self.events().iter().map(|e| e.name.as_str().len() + e.attributes.iter().map(kv).sum::<usize>() + 32).sum();
        let links: usize = self.links().iter().map(|l| l.attributes.iter().map(kv).sum::<usize>() + 48).sum();
        SPAN_OVERHEAD + SpanData::name(self).len() + self.attributes().iter().map(kv).sum::<usize>() + events + links
    }
}

fn value_len(v: &otel_lite_core::Value) -> usize {
    match v {
        otel_lite_core::Value::String(s) => s.as_str().len(),
        _ => 8,
    }
}

/// A log record kept for the live page: copied out of the exported record, with its
/// strings capped.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LiveLog {
    /// When it happened (or was observed), ns since the Unix epoch.
    pub time_ns: u64,
    /// The severity number (0 when unspecified).
    pub severity: u8,
    /// The severity text, if any.
    pub severity_text: Option<SharedStr>,
    /// The body rendered as text, at most 1 KiB.
    pub body: String,
    /// At most 16 attributes, values rendered as text of at most 256 bytes.
    pub attrs: Vec<(SharedStr, String)>,
    /// The span it was emitted in.
    pub span_id: SpanId,
    /// The event name, for records that are events.
    pub event_name: Option<SharedStr>,
}

impl LiveLog {
    /// A record as the reservoir keeps it.
    pub fn new(time_ns: u64, severity: u8, body: impl Into<String>, span_id: SpanId) -> Self {
        let mut body = body.into();
        truncate_at_char(&mut body, MAX_BODY_BYTES);
        LiveLog { time_ns, severity, severity_text: None, body, attrs: Vec::new(), span_id, event_name: None }
    }

    /// Copies what the page shows of `record`.
    pub fn from_record(record: &LogRecord) -> Self {
        let mut body = String::new();
        if let Some(b) = &record.body {
            write_any(&mut body, b, MAX_BODY_BYTES);
        }
        truncate_at_char(&mut body, MAX_BODY_BYTES);
        let attrs = record
            .attributes
            .iter()
            .take(MAX_LOG_ATTRS)
            .map(|kv| {
                let mut v = kv.value().to_string();
                truncate_at_char(&mut v, MAX_LOG_ATTR_BYTES);
                (kv.key().clone(), v)
            })
            .collect();
        LiveLog {
            time_ns: record.timestamp_unix_nanos.unwrap_or(record.observed_unix_nanos),
            severity: record.severity_number,
            severity_text: record.severity_text.as_ref().map(|t| SharedStr::from(t.to_string())),
            body,
            attrs,
            span_id: record.span_id,
            event_name: record.event_name.clone(),
        }
    }

    fn approx_bytes(&self) -> usize {
        SPAN_OVERHEAD / 2
            + self.body.len()
            + self.attrs.iter().map(|(k, v)| k.as_str().len() + v.len() + 16).sum::<usize>()
    }
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Renders a log body as text, stopping once `out` reaches `max` bytes (a nested body
/// could otherwise be rendered in full only to be cut).
fn write_any(out: &mut String, v: &AnyValue, max: usize) {
    if out.len() >= max {
        return;
    }
    match v {
        AnyValue::String(s) => {
            // Only what can be kept: a body may be megabytes long.
            let room = max - out.len();
            let s = s.as_str();
            let mut end = s.len().min(room + 4);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            out.push_str(&s[..end]);
        }
        AnyValue::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        AnyValue::I64(i) => {
            let _ = write!(out, "{i}");
        }
        AnyValue::F64(f) => {
            let _ = write!(out, "{f}");
        }
        AnyValue::Bytes(b) => {
            let _ = write!(out, "<{} bytes>", b.len());
        }
        AnyValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if out.len() >= max {
                    break;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                write_any(out, item, max);
            }
            out.push(']');
        }
        AnyValue::Map(entries) => {
            out.push('{');
            for (i, (k, item)) in entries.iter().enumerate() {
                if out.len() >= max {
                    break;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k.as_str());
                out.push_str(": ");
                write_any(out, item, max);
            }
            out.push('}');
        }
        // `AnyValue` is another crate's non-exhaustive enum.
        _ => out.push('?'),
    }
}

/// A kept trace: its spans as exported, and what the lists show of it.
#[derive(Clone, Debug)]
pub struct KeptTrace<S = SpanData> {
    id: TraceId,
    spans: Vec<S>,
    root_name: String,
    start_ns: u64,
    dur_ns: u64,
    error: bool,
    remote_root: bool,
    dropped_spans: u32,
    bytes: usize,
}

impl<S> KeptTrace<S> {
    /// The trace id.
    pub fn id(&self) -> TraceId {
        self.id
    }
    /// Its spans in arrival order (at most the per-trace limit).
    pub fn spans(&self) -> &[S] {
        &self.spans
    }
    /// The root span's name (for a trace entered from another process: its earliest span's).
    pub fn root_name(&self) -> &str {
        &self.root_name
    }
    /// When the root started, ns since the Unix epoch.
    pub fn start_unix_nanos(&self) -> u64 {
        self.start_ns
    }
    /// The root's duration (entered from another process: first start to last end), ns.
    pub fn duration_nanos(&self) -> u64 {
        self.dur_ns
    }
    /// Whether a span has an error status.
    pub fn is_error(&self) -> bool {
        self.error
    }
    /// Whether the trace had no local root (it was entered from another process).
    pub fn has_remote_root(&self) -> bool {
        self.remote_root
    }
    /// Spans left out for the per-trace limit.
    pub fn dropped_spans(&self) -> u32 {
        self.dropped_spans
    }
    fn summary(&self) -> TraceSummary {
        TraceSummary {
            id: self.id,
            root: self.root_name.clone(),
            start_ns: self.start_ns,
            dur_ns: self.dur_ns,
            spans: self.spans.len(),
            error: self.error,
        }
    }
}

/// One line of a trace list.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceSummary {
    /// The trace id.
    pub id: TraceId,
    /// The root span's name.
    pub root: String,
    /// When the root started, ns since the Unix epoch.
    pub start_ns: u64,
    /// The root's duration, ns.
    pub dur_ns: u64,
    /// Spans kept.
    pub spans: usize,
    /// Whether a span failed.
    pub error: bool,
}

/// The three lists, as the overview shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceLists {
    /// Failed traces, newest first.
    pub failed: Vec<TraceSummary>,
    /// The slowest traces of the slow window, slowest first.
    pub slowest: Vec<TraceSummary>,
    /// The most recent traces, newest first.
    pub recent: Vec<TraceSummary>,
}

/// Spans of one trace waiting for its root.
struct Pending<S> {
    spans: Vec<S>,
    bytes: usize,
    dropped: u32,
    /// When the last span arrived (the observer's clock).
    last_ns: u64,
    /// Whether a span's parent is in another process: the group then settles by time.
    entered_remotely: bool,
    /// Tells this group from an older one of the same trace in `pending_order`.
    seq: u64,
}

struct SlowEntry {
    id: TraceId,
    dur_ns: u64,
    kept_at_ns: u64,
}

/// The reservoir's state, generic over the span type so tests can use fake spans.
pub(crate) struct State<S> {
    cfg: ReservoirConfig,
    pending: IdMap<Pending<S>>,
    pending_order: VecDeque<(TraceId, u64)>,
    pending_spans: usize,
    pending_bytes: usize,
    seq: u64,
    kept: IdMap<Arc<KeptTrace<S>>>,
    kept_logs: IdMap<Vec<LiveLog>>,
    kept_bytes: usize,
    failed: VecDeque<TraceId>,
    slowest: Vec<SlowEntry>,
    recent: VecDeque<TraceId>,
    unclaimed: VecDeque<(TraceId, LiveLog)>,
    /// Unclaimed records per trace, so a promotion without logs skips the ring.
    unclaimed_by_trace: IdMap<u32>,
    admission: Admission,
    log_admission: Admission,
    /// Traces decided and let go, newest last, so that their late spans are dropped
    /// rather than left waiting for a root (bounded by [`RELEASED_IDS`]).
    released: IdMap<()>,
    released_order: VecDeque<TraceId>,
    stats: ReservoirStats,
}

impl<S: SpanLike> State<S> {
    pub(crate) fn new(cfg: ReservoirConfig) -> Self {
        let ids = IdHashing::new();
        let admission = Admission::new(cfg.max_spans_per_second);
        let log_admission = Admission::new(cfg.max_logs_per_second);
        State {
            cfg,
            pending: IdMap::with_hasher(ids.clone()),
            pending_order: VecDeque::new(),
            pending_spans: 0,
            pending_bytes: 0,
            seq: 0,
            kept: IdMap::with_hasher(ids.clone()),
            kept_logs: IdMap::with_hasher(ids.clone()),
            kept_bytes: 0,
            failed: VecDeque::new(),
            slowest: Vec::new(),
            recent: VecDeque::new(),
            unclaimed: VecDeque::new(),
            unclaimed_by_trace: IdMap::with_hasher(ids.clone()),
            admission,
            log_admission,
            released: IdMap::with_hasher(ids.clone()),
            released_order: VecDeque::new(),
            stats: ReservoirStats::default(),
        }
    }

    /// Takes in one exported batch at `now_ns`.
    pub(crate) fn observe(&mut self, spans: impl IntoIterator<Item = S>, now_ns: u64) {
        for span in spans {
            self.observe_one(span, now_ns);
        }
        self.settle(now_ns);
        self.compact_order();
    }

    fn observe_one(&mut self, span: S, now_ns: u64) {
        let id = span.trace_id();
        if self.kept.contains_key(&id) {
            self.add_late(id, span, now_ns);
            return;
        }
        if self.released.contains_key(&id) {
            // A span that ended after its trace was decided and let go (a background task
            // outliving the request): it would wait for a root that has come and gone.
            self.stats.spans_dropped += 1;
            return;
        }
        // The span that closes a group: the local root, or the span this process entered
        // the trace with (its parent is remote), which ends after its in-process children.
        // Waiting for quiet instead held a remotely entered trace for `settle`, and above
        // about 100 such traces a second the pending bound evicted every one of them.
        let local_root = !span.parent_span_id().is_valid() || span.parent_is_remote();
        let bytes = span.approx_bytes();
        if local_root && !self.pending.contains_key(&id) {
            // A trace of one span (or whose children were evicted): decided at once,
            // without passing through the pending bookkeeping.
            let group =
                Pending { spans: vec![span], bytes, dropped: 0, last_ns: now_ns, entered_remotely: false, seq: 0 };
            self.decide(id, group, now_ns);
            return;
        }
        let group = match self.pending.get_mut(&id) {
            Some(g) => g,
            None => {
                self.seq += 1;
                self.pending_order.push_back((id, self.seq));
                self.pending.entry(id).or_insert(Pending {
                    spans: Vec::new(),
                    bytes: 0,
                    dropped: 0,
                    last_ns: now_ns,
                    entered_remotely: false,
                    seq: self.seq,
                })
            }
        };
        group.last_ns = now_ns;
        group.entered_remotely |= span.parent_is_remote();
        // The root is kept even past the limit: it names and times the trace.
        if group.spans.len() < self.cfg.max_spans_per_trace || local_root {
            group.spans.push(span);
            group.bytes += bytes;
            self.pending_spans += 1;
            self.pending_bytes += bytes;
        } else {
            group.dropped += 1;
            self.stats.spans_dropped += 1;
        }
        if local_root {
            if let Some(group) = self.take_pending(&id) {
                self.decide(id, group, now_ns);
            }
        } else {
            self.bound_pending();
        }
    }

    fn take_pending(&mut self, id: &TraceId) -> Option<Pending<S>> {
        let group = self.pending.remove(id)?;
        self.pending_spans -= group.spans.len();
        self.pending_bytes -= group.bytes;
        Some(group)
    }

    /// Evicts the oldest waiting groups while a pending bound is exceeded.
    fn bound_pending(&mut self) {
        while self.pending_spans > self.cfg.pending_spans
            || self.pending.len() > self.cfg.pending_traces
            || self.pending_bytes > self.cfg.pending_bytes
        {
            let Some((id, seq)) = self.pending_order.pop_front() else { break };
            if self.pending.get(&id).is_some_and(|g| g.seq == seq) {
                self.take_pending(&id);
                self.stats.pending_evicted += 1;
            }
        }
        self.compact_order();
    }

    /// Decided groups leave stale entries in `pending_order`; they are dropped before they
    /// outnumber the live ones.
    fn compact_order(&mut self) {
        if self.pending_order.len() > 2 * self.pending.len() + 64 {
            let pending = &self.pending;
            self.pending_order.retain(|(id, seq)| pending.get(id).is_some_and(|g| g.seq == *seq));
        }
    }

    /// Decides the groups entered from another process that have been quiet for `settle`.
    fn settle(&mut self, now_ns: u64) {
        let settle = duration_ns(self.cfg.settle);
        let due: Vec<TraceId> = self
            .pending
            .iter()
            .filter(|(_, g)| g.entered_remotely && now_ns.saturating_sub(g.last_ns) >= settle)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(group) = self.take_pending(&id) {
                self.decide(id, group, now_ns);
            }
        }
    }

    /// A span of a trace already kept: appended (a copy is made if a reader holds the trace).
    fn add_late(&mut self, id: TraceId, span: S, now_ns: u64) {
        // The trace's local root after it was decided on a span it entered through (a call
        // from this process to itself, over HTTP): the root names and times the trace.
        if !span.parent_span_id().is_valid() {
            if let Some(trace) = self.kept.get_mut(&id).filter(|t| t.remote_root || t.root_name.is_empty()) {
                let t = Arc::make_mut(trace);
                t.root_name = span.name().to_string();
                t.start_ns = span.start_ns();
                t.dur_ns = span.end_ns().saturating_sub(span.start_ns());
                t.remote_root = false;
                let dur_ns = t.dur_ns;
                self.slowest.retain(|e| e.id != id);
                self.consider_slow(id, dur_ns, now_ns);
                if self.kept.contains_key(&id) {
                    self.add_span_to_kept(id, span);
                }
                // Out of `slowest` and in no other list: `consider_slow` did not take it.
                self.release(id);
                return;
            }
        }
        self.add_span_to_kept(id, span);
    }

    fn add_span_to_kept(&mut self, id: TraceId, span: S) {
        let Some(trace) = self.kept.get_mut(&id) else { return };
        if trace.spans.len() >= self.cfg.max_spans_per_trace {
            Arc::make_mut(trace).dropped_spans += 1;
            self.stats.spans_dropped += 1;
            return;
        }
        let bytes = span.approx_bytes();
        let error = span.is_error();
        let t = Arc::make_mut(trace);
        t.spans.push(span);
        t.bytes += bytes;
        let newly_failed = error && !t.error;
        t.error |= error;
        self.kept_bytes += bytes;
        if newly_failed && !self.failed.contains(&id) {
            self.push_failed(id);
        }
        self.bound_kept(id);
    }

    fn decide(&mut self, id: TraceId, group: Pending<S>, now_ns: u64) {
        let Some(first) = group.spans.first() else { return };
        let root = group
            .spans
            .iter()
            .find(|s| !s.parent_span_id().is_valid())
            .or_else(|| group.spans.iter().find(|s| s.parent_is_remote()));
        let (root_name, start_ns, dur_ns) = match root {
            // A local root's own time; an entry span's up to the last of its group, since
            // work it started may outlive it.
            Some(r) if !r.parent_span_id().is_valid() => {
                (r.name().to_string(), r.start_ns(), r.end_ns().saturating_sub(r.start_ns()))
            }
            Some(r) => {
                let end = group.spans.iter().map(S::end_ns).max().unwrap_or(r.end_ns());
                (r.name().to_string(), r.start_ns(), end.saturating_sub(r.start_ns()))
            }
            None => {
                let earliest = group.spans.iter().min_by_key(|s| s.start_ns()).unwrap_or(first);
                let start = earliest.start_ns();
                let end = group.spans.iter().map(S::end_ns).max().unwrap_or(start);
                (earliest.name().to_string(), start, end.saturating_sub(start))
            }
        };
        let error = group.spans.iter().any(S::is_error);
        let trace = KeptTrace {
            id,
            root_name,
            start_ns,
            dur_ns,
            error,
            remote_root: root.is_none_or(|r| r.parent_span_id().is_valid()),
            dropped_spans: group.dropped,
            bytes: group.bytes,
            spans: group.spans,
        };
        self.stats.traces_decided += 1;
        self.kept_bytes += trace.bytes;
        self.kept.insert(id, Arc::new(trace));
        self.claim_logs(id);

        if error {
            self.push_failed(id);
        }
        self.consider_slow(id, dur_ns, now_ns);
        self.recent.push_back(id);
        while self.recent.len() > self.cfg.recent {
            if let Some(old) = self.recent.pop_front() {
                self.release(old);
            }
        }
        // With `recent` at 0 a plain trace is in no list at all.
        self.release(id);
        self.bound_kept(id);
    }

    fn push_failed(&mut self, id: TraceId) {
        self.failed.push_back(id);
        while self.failed.len() > self.cfg.failed {
            if let Some(old) = self.failed.pop_front() {
                self.release(old);
            }
        }
    }

    fn consider_slow(&mut self, id: TraceId, dur_ns: u64, now_ns: u64) {
        let window = duration_ns(self.cfg.slow_window);
        let mut aged = Vec::new();
        self.slowest.retain(|e| {
            let keep = now_ns.saturating_sub(e.kept_at_ns) < window;
            if !keep {
                aged.push(e.id);
            }
            keep
        });
        for old in aged {
            self.release(old);
        }
        if self.cfg.slowest == 0 {
            return;
        }
        if self.slowest.len() >= self.cfg.slowest {
            let Some((i, fastest)) = self.slowest.iter().enumerate().min_by_key(|(_, e)| e.dur_ns) else { return };
            if dur_ns <= fastest.dur_ns {
                return;
            }
            let old = self.slowest.swap_remove(i).id;
            self.release(old);
        }
        self.slowest.push(SlowEntry { id, dur_ns, kept_at_ns: now_ns });
    }

    fn remember_released(&mut self, id: TraceId) {
        if self.released.insert(id, ()).is_none() {
            self.released_order.push_back(id);
            while self.released_order.len() > RELEASED_IDS {
                if let Some(old) = self.released_order.pop_front() {
                    self.released.remove(&old);
                }
            }
        }
    }

    fn in_a_list(&self, id: &TraceId) -> bool {
        self.failed.contains(id) || self.recent.contains(id) || self.slowest.iter().any(|e| e.id == *id)
    }

    /// Frees a trace that is in no list any more.
    fn release(&mut self, id: TraceId) {
        if self.in_a_list(&id) {
            return;
        }
        if let Some(t) = self.kept.remove(&id) {
            self.kept_bytes = self.kept_bytes.saturating_sub(t.bytes);
            self.remember_released(id);
        }
        if let Some(logs) = self.kept_logs.remove(&id) {
            self.kept_bytes = self.kept_bytes.saturating_sub(logs.iter().map(LiveLog::approx_bytes).sum::<usize>());
        }
    }

    /// Lets traces go while the kept bytes exceed their bound: recent ones first, then the
    /// fastest of the slowest, then the oldest failed. `newest` goes last.
    fn bound_kept(&mut self, newest: TraceId) {
        while self.kept_bytes > self.cfg.kept_bytes {
            let before = self.kept.len();
            if let Some(i) = self.recent.iter().position(|id| *id != newest) {
                if let Some(id) = self.recent.remove(i) {
                    self.release(id);
                }
            } else if let Some((i, _)) =
                self.slowest.iter().enumerate().filter(|(_, e)| e.id != newest).min_by_key(|(_, e)| e.dur_ns)
            {
                let id = self.slowest.swap_remove(i).id;
                self.release(id);
            } else if let Some(i) = self.failed.iter().position(|id| *id != newest) {
                if let Some(id) = self.failed.remove(i) {
                    self.release(id);
                }
            } else {
                // Only the newest is left: it goes too if it alone is over the bound.
                self.recent.retain(|id| *id != newest);
                self.failed.retain(|id| *id != newest);
                self.slowest.retain(|e| e.id != newest);
                self.release(newest);
                self.stats.kept_evicted += 1;
                break;
            }
            if self.kept.len() < before {
                self.stats.kept_evicted += 1;
            }
        }
    }

    /// Takes in one log record of trace `id`.
    pub(crate) fn observe_log(&mut self, id: TraceId, log: LiveLog) {
        if self.kept.contains_key(&id) {
            let logs = self.kept_logs.entry(id).or_default();
            if logs.len() >= self.cfg.logs_per_trace {
                self.stats.logs_dropped += 1;
                return;
            }
            self.kept_bytes += log.approx_bytes();
            logs.push(log);
            self.bound_kept(id);
            return;
        }
        if self.cfg.unclaimed_logs == 0 {
            self.stats.logs_dropped += 1;
            return;
        }
        while self.unclaimed.len() >= self.cfg.unclaimed_logs {
            if let Some((old, _)) = self.unclaimed.pop_front() {
                self.forget_unclaimed(old);
                self.stats.logs_dropped += 1;
            }
        }
        self.unclaimed.push_back((id, log));
        *self.unclaimed_by_trace.entry(id).or_default() += 1;
    }

    fn forget_unclaimed(&mut self, id: TraceId) {
        if let Some(n) = self.unclaimed_by_trace.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                self.unclaimed_by_trace.remove(&id);
            }
        }
    }

    /// Moves the waiting records of a trace that was just kept to it.
    fn claim_logs(&mut self, id: TraceId) {
        if self.unclaimed_by_trace.remove(&id).is_none() {
            return;
        }
        let mut claimed = Vec::new();
        let mut rest = VecDeque::with_capacity(self.unclaimed.len());
        for (t, log) in self.unclaimed.drain(..) {
            if t == id {
                claimed.push(log);
            } else {
                rest.push_back((t, log));
            }
        }
        self.unclaimed = rest;
        if claimed.len() > self.cfg.logs_per_trace {
            self.stats.logs_dropped += (claimed.len() - self.cfg.logs_per_trace) as u64;
            claimed.truncate(self.cfg.logs_per_trace);
        }
        self.kept_bytes += claimed.iter().map(LiveLog::approx_bytes).sum::<usize>();
        self.kept_logs.insert(id, claimed);
    }

    /// A kept trace and its log records.
    pub(crate) fn trace(&self, id: TraceId) -> Option<(Arc<KeptTrace<S>>, Vec<LiveLog>)> {
        let trace = self.kept.get(&id)?.clone();
        Some((trace, self.kept_logs.get(&id).cloned().unwrap_or_default()))
    }

    pub(crate) fn is_kept(&self, id: TraceId) -> bool {
        self.kept.contains_key(&id)
    }

    pub(crate) fn lists(&self) -> TraceLists {
        let summary = |id: &TraceId| self.kept.get(id).map(|t| t.summary());
        let mut slowest: Vec<&SlowEntry> = self.slowest.iter().collect();
        slowest.sort_by_key(|e| std::cmp::Reverse(e.dur_ns));
        TraceLists {
            failed: self.failed.iter().rev().filter_map(summary).collect(),
            slowest: slowest.into_iter().filter_map(|e| summary(&e.id)).collect(),
            recent: self.recent.iter().rev().filter_map(summary).collect(),
        }
    }

    pub(crate) fn stats(&self) -> ReservoirStats {
        self.stats
    }

    /// Bytes held now: (waiting spans, kept traces and their logs).
    #[cfg(test)]
    fn bytes(&self) -> (usize, usize) {
        (self.pending_bytes, self.kept_bytes)
    }
}

/// Recent interesting traces for the live page; shared (`Arc`) by the span tee, the log
/// tee and the page. Writers lock once per exported batch, on the exporter's worker;
/// readers clone what they show and render it outside the lock.
pub struct TraceReservoir {
    state: Mutex<State<SpanData>>,
}

impl std::fmt::Debug for TraceReservoir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceReservoir").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Default for TraceReservoir {
    fn default() -> Self {
        Self::new(ReservoirConfig::default())
    }
}

impl TraceReservoir {
    /// An empty reservoir with these sizes.
    pub fn new(config: ReservoirConfig) -> Self {
        TraceReservoir { state: Mutex::new(State::new(config)) }
    }

    fn lock(&self) -> MutexGuard<'_, State<SpanData>> {
        // The state stays consistent between calls, so a panic elsewhere does not spoil it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in an exported batch (copies of its spans) at `now_ns`, ns since the Unix epoch.
    pub fn observe(&self, spans: &[SpanData], now_ns: u64) {
        let mut state = self.lock();
        let threshold = state.admission.threshold(spans.len(), now_ns);
        let quota = state.admission.quota();
        // Only the sampled traces' spans are copied, and no more than the second's budget
        // (one trace can have any number of spans).
        let mut taken = 0;
        let admitted = spans
            .iter()
            .filter(|s| Admission::admits(s.trace_id(), threshold))
            .take(quota)
            .inspect(|_| taken += 1)
            .cloned();
        state.observe(admitted, now_ns);
        state.admission.took(taken);
        state.stats.spans_sampled_out += (spans.len() - taken) as u64;
    }

    /// Takes in exported log records; those without a trace id are skipped.
    pub fn observe_logs(&self, records: &[LogRecord]) {
        let in_traces = records.iter().filter(|r| r.trace_id.is_valid()).count();
        if in_traces == 0 {
            return;
        }
        // Records beyond their own budget are sampled by trace id, like spans; and records
        // of traces the span side does not take in are of no use to the page.
        let (threshold, quota) = {
            let mut state = self.lock();
            let logs = state.log_admission.threshold(in_traces, otel_lite_core::now_unix_nanos());
            (logs.min(state.admission.current()), state.log_admission.quota())
        };
        let admitted = |r: &&LogRecord| r.trace_id.is_valid() && Admission::admits(r.trace_id, threshold);
        // Copied before locking: rendering bodies need not hold up the span tee.
        let copies: Vec<(TraceId, LiveLog)> =
            records.iter().filter(admitted).take(quota).map(|r| (r.trace_id, LiveLog::from_record(r))).collect();
        let mut state = self.lock();
        state.log_admission.took(copies.len());
        state.stats.logs_sampled_out += (in_traces - copies.len()) as u64;
        for (id, log) in copies {
            state.observe_log(id, log);
        }
    }

    /// Decides the traces entered from another process that have settled by `now_ns`
    /// (exports do this too; a sampler calls it when no spans arrive).
    pub fn settle(&self, now_ns: u64) {
        self.lock().settle(now_ns);
    }

    /// A kept trace and its log records.
    pub fn trace(&self, id: TraceId) -> Option<(Arc<KeptTrace>, Vec<LiveLog>)> {
        self.lock().trace(id)
    }

    /// Whether a trace is kept (an exemplar link to it can be opened).
    pub fn is_kept(&self, id: TraceId) -> bool {
        self.lock().is_kept(id)
    }

    /// The failed, slowest and recent lists.
    pub fn lists(&self) -> TraceLists {
        self.lock().lists()
    }

    /// What was refused or let go so far.
    pub fn stats(&self) -> ReservoirStats {
        self.lock().stats()
    }
}

impl TraceLists {
    /// Writes `"traces":{"failed":[…],"slowest":[…],"recent":[…]}` into the open object of
    /// `w`, as budgeted rows `{id, root, start_ns, dur_ns, spans, error}`.
    pub fn write_json(&self, w: &mut JsonWriter) {
        w.key("traces").begin_object();
        for (name, list) in [("failed", &self.failed), ("slowest", &self.slowest), ("recent", &self.recent)] {
            w.key(name).begin_array();
            for t in list {
                let fits = w.row(|w| {
                    w.begin_object();
                    w.key("id").trace_id(t.id);
                    w.key("root").str(&t.root);
                    w.key("start_ns").u64(t.start_ns);
                    w.key("dur_ns").u64(t.dur_ns);
                    w.key("spans").u64(t.spans as u64);
                    w.key("error").bool(t.error);
                    w.end_object();
                });
                if !fits {
                    break;
                }
            }
            w.end_array();
        }
        w.end_object();
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within the budget every trace is taken; a second at ten times the budget takes about
    /// a tenth of the traces, by trace id; the next second stays sampled (the rate is the
    /// last second's); a quiet second after that takes everything again.
    #[test]
    fn above_the_budget_traces_are_sampled_by_id() {
        let mut admission = Admission::new(1_000);
        assert_eq!(admission.threshold(1_000, 5 * S), u64::MAX);
        let threshold = admission.threshold(9_000, 5 * S + MS);
        let ids: Vec<TraceId> = (0..20_000u128)
            .map(|n| TraceId::from_bytes(n.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835).to_be_bytes()))
            .collect();
        let share = ids.iter().filter(|id| Admission::admits(**id, threshold)).count() as f64 / ids.len() as f64;
        assert!((0.08..0.12).contains(&share), "{share}");
        assert_ne!(admission.threshold(10, 6 * S), u64::MAX, "last second's rate still counts");
        assert_eq!(admission.current(), admission.threshold(0, 6 * S + MS));
        assert_eq!(admission.threshold(10, 8 * S), u64::MAX, "after a quiet second");
    }

    /// Real spans above the budget: about budget/offered of the traces are taken, each
    /// with all of its spans, and the rest are counted as sampled out.
    #[test]
    fn a_sampled_batch_keeps_whole_traces() {
        use otel_lite_core::trace::{InMemorySpanExporter, TracerProvider};
        let exported = InMemorySpanExporter::default();
        let provider = TracerProvider::builder().with_simple_exporter(exported.clone()).build();
        let tracer = provider.tracer("test");
        for _ in 0..200 {
            let root = tracer.start("root");
            let _entered = root.enter();
            for _ in 0..4 {
                drop(tracer.start("child"));
            }
        }
        let batch = exported.spans();
        assert_eq!(batch.len(), 1000);
        let config = ReservoirConfig { max_spans_per_second: 250, recent: 1000, ..ReservoirConfig::default() };
        let reservoir = TraceReservoir::new(config);
        reservoir.observe(&batch, T0);
        let lists = reservoir.lists();
        let kept = lists.recent.len();
        assert!((20..=80).contains(&kept), "about a quarter of 200 traces: {kept}");
        for summary in &lists.recent {
            assert_eq!(summary.spans, 5, "whole traces");
        }
        // The second's quota may cut the last admitted trace short: its spans wait for a
        // root that never comes, and it is not listed.
        let taken = 1000 - reservoir.stats().spans_sampled_out;
        assert!(taken <= 250 && (5 * kept as u64..5 * kept as u64 + 5).contains(&taken), "{taken} taken, {kept} kept");

        // One trace with more spans than a second's budget: the budget holds.
        let exported = InMemorySpanExporter::default();
        let provider = TracerProvider::builder().with_simple_exporter(exported.clone()).build();
        let tracer = provider.tracer("test");
        let root = tracer.start("root");
        let entered = root.enter();
        for _ in 0..1000 {
            drop(tracer.start("child"));
        }
        drop(entered);
        drop(root);
        let one_trace = exported.spans();
        let reservoir =
            TraceReservoir::new(ReservoirConfig { max_spans_per_second: 100, ..ReservoirConfig::default() });
        reservoir.observe(&one_trace, T0);
        assert!(reservoir.stats().spans_sampled_out >= 901, "{:?}", reservoir.stats());
    }

    /// Log records above their own budget are sampled by trace id and counted.
    #[test]
    fn log_records_above_their_budget_are_sampled() {
        use otel_lite_core::logs::{InMemoryLogExporter, LoggerProvider, Severity};
        use otel_lite_core::trace::TracerProvider;
        let records = InMemoryLogExporter::default();
        let logger_provider = LoggerProvider::builder().with_simple_exporter(records.clone()).build();
        let tracer_provider = TracerProvider::builder().with_simple_exporter(crate::live::Discard).build();
        let (tracer, logger) = (tracer_provider.tracer("test"), logger_provider.logger("test"));
        for _ in 0..1000 {
            let span = tracer.start("request");
            let _entered = span.enter();
            logger.log(Severity::Info, "handled", vec![]);
        }
        let batch = records.records();
        assert_eq!(batch.len(), 1000);
        let reservoir = TraceReservoir::new(ReservoirConfig { max_logs_per_second: 100, ..ReservoirConfig::default() });
        reservoir.observe_logs(&batch);
        let out = reservoir.stats().logs_sampled_out;
        assert!((850..=950).contains(&out), "about 900 of 1000 sampled out: {out}");
    }

    /// Trace ids hash apart within a reservoir, including ids that differ in one bit of
    /// either half, and differently in two reservoirs (the keys are random).
    #[test]
    fn trace_ids_hash_by_keyed_folds() {
        use std::hash::BuildHasher;
        let (a, b) = (IdHashing::new(), IdHashing::new());
        let base = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128;
        let ids: Vec<TraceId> = (0..128).map(|bit| TraceId::from_bytes((base ^ (1 << bit)).to_be_bytes())).collect();
        let hashes: std::collections::HashSet<u64> = ids.iter().map(|id| a.hash_one(id)).collect();
        assert_eq!(hashes.len(), ids.len());
        assert!(ids.iter().filter(|id| a.hash_one(id) == b.hash_one(id)).count() <= 1);
        // Hashbrown takes its control byte from the top 7 bits: they vary too.
        let tops: std::collections::HashSet<u64> = ids.iter().map(|id| a.hash_one(id) >> 57).collect();
        assert!(tops.len() > 32, "{} distinct top bytes", tops.len());
    }

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000 * MS;
    const T0: u64 = 1_700_000_000 * S;

    /// A span with chosen ids and times.
    #[derive(Clone, Debug)]
    struct Fake {
        trace: u64,
        parent: u64,
        remote: bool,
        name: &'static str,
        start: u64,
        end: u64,
        error: bool,
        bytes: usize,
    }

    impl SpanLike for Fake {
        fn trace_id(&self) -> TraceId {
            TraceId::from_bytes(u128::from(self.trace).to_be_bytes())
        }
        fn parent_span_id(&self) -> SpanId {
            SpanId::from_bytes(self.parent.to_be_bytes())
        }
        fn parent_is_remote(&self) -> bool {
            self.remote
        }
        fn name(&self) -> &str {
            self.name
        }
        fn start_ns(&self) -> u64 {
            self.start
        }
        fn end_ns(&self) -> u64 {
            self.end
        }
        fn is_error(&self) -> bool {
            self.error
        }
        fn approx_bytes(&self) -> usize {
            self.bytes
        }
    }

    fn tid(trace: u64) -> TraceId {
        TraceId::from_bytes(u128::from(trace).to_be_bytes())
    }

    fn child(trace: u64) -> Fake {
        Fake { trace, parent: 1, remote: false, name: "child", start: T0, end: T0 + MS, error: false, bytes: 100 }
    }

    /// A local root lasting `dur_ms`.
    fn root(trace: u64, dur_ms: u64) -> Fake {
        Fake { parent: 0, name: "root", end: T0 + dur_ms * MS, ..child(trace) }
    }

    fn failed(f: Fake) -> Fake {
        Fake { error: true, ..f }
    }

    fn ids(list: &[TraceSummary]) -> Vec<TraceId> {
        list.iter().map(|t| t.id).collect()
    }

    fn state() -> State<Fake> {
        State::new(ReservoirConfig::default())
    }

    #[test]
    fn a_root_in_a_later_batch_closes_the_trace() {
        let mut s = state();
        s.observe([child(1), child(1)], T0);
        assert!(!s.is_kept(tid(1)));
        assert_eq!(s.bytes().0, 200);
        s.observe([root(1, 30)], T0 + S);
        let (t, _) = s.trace(tid(1)).expect("kept");
        assert_eq!((t.spans().len(), t.root_name(), t.duration_nanos()), (3, "root", 30 * MS));
        assert!(!t.is_error() && !t.has_remote_root());
        assert_eq!(s.bytes(), (0, 300));
        assert_eq!(ids(&s.lists().recent), [tid(1)]);
        assert_eq!(ids(&s.lists().slowest), [tid(1)]);
        assert!(s.lists().failed.is_empty());
    }

    #[test]
    fn late_spans_join_the_kept_trace_and_can_make_it_failed() {
        let mut s = state();
        s.observe([root(1, 10)], T0);
        let (before, _) = s.trace(tid(1)).expect("kept");
        s.observe([child(1), failed(child(1))], T0 + S);
        let (t, _) = s.trace(tid(1)).expect("kept");
        assert_eq!(t.spans().len(), 3);
        assert_eq!(before.spans().len(), 1, "a reader's copy is not changed under it");
        assert!(t.is_error());
        assert_eq!(ids(&s.lists().failed), [tid(1)]);
        assert_eq!(s.bytes().1, 300);
        assert!(s.pending.is_empty());
    }

    #[test]
    fn a_trace_entered_remotely_is_decided_by_its_entry_span() {
        let mut s = state();
        let entry = Fake { parent: 9, remote: true, name: "GET /x", start: T0, end: T0 + 50 * MS, ..child(1) };
        let inner = Fake { parent: 5, start: T0 + 10 * MS, end: T0 + 80 * MS, ..child(1) };
        s.observe([inner], T0);
        assert!(!s.is_kept(tid(1)), "waits for the span it entered through");
        s.observe([entry], T0 + S);
        let (t, _) = s.trace(tid(1)).expect("decided at once");
        assert!(t.has_remote_root());
        // Up to the last span of the group: the inner span outlived the entry span.
        assert_eq!((t.root_name(), t.start_unix_nanos(), t.duration_nanos()), ("GET /x", T0, 80 * MS));
        // An orphan without a remote parent waits for its root, whatever the time.
        s.observe([child(2)], T0 + 10 * S);
        s.observe([], T0 + 100 * S);
        assert!(!s.is_kept(tid(2)) && s.pending.contains_key(&tid(2)));
    }

    /// A request that calls this same process over HTTP: the inner server span has a remote
    /// parent and ends first, deciding the trace; the local root arriving later names and
    /// times it, and a failure in it makes the trace failed.
    #[test]
    fn a_local_root_after_an_inner_entry_span_names_the_trace() {
        let mut s = state();
        let inner = Fake { parent: 7, remote: true, name: "GET /inventory/{item}", ..child(3) };
        s.observe([inner], T0);
        assert_eq!(s.trace(tid(3)).expect("decided").0.root_name(), "GET /inventory/{item}");
        s.observe([failed(Fake { name: "GET /checkout", ..root(3, 40) })], T0 + S);
        let (t, _) = s.trace(tid(3)).expect("kept");
        assert_eq!((t.root_name(), t.duration_nanos(), t.spans().len()), ("GET /checkout", 40 * MS, 2));
        assert!(!t.has_remote_root() && t.is_error());
        assert_eq!(ids(&s.lists().failed), vec![tid(3)]);
        assert_eq!(s.lists().slowest[0].dur_ns, 40 * MS);
    }

    /// A service behind an ingress that sends `traceparent`: every trace enters remotely.
    /// At 500 traces a second for 30 s, far past what waiting for quiet allowed (the pending
    /// bound of 1024 traces over 10 s), every trace is decided and none is evicted.
    #[test]
    fn remotely_entered_traces_at_a_high_rate_are_all_decided() {
        let mut s = state();
        for n in 0..15_000u64 {
            let at = T0 + n * 2 * MS;
            let trace = n + 1;
            let children: Vec<Fake> =
                (0..3).map(|_| Fake { parent: 100, start: at, end: at + MS, ..child(trace) }).collect();
            s.observe(children, at + MS);
            let entry = Fake { parent: 9, remote: true, name: "GET /api", start: at, end: at + 2 * MS, ..child(trace) };
            s.observe([entry], at + 2 * MS);
        }
        let stats = s.stats();
        assert_eq!((stats.traces_decided, stats.pending_evicted), (15_000, 0), "{stats:?}");
        assert!(s.pending.is_empty());
        assert_eq!(s.lists().recent.len(), 16);
    }

    /// Background work that outlives its request: its spans end after the trace was decided
    /// and let go. They are dropped, not left waiting for a root, so they cannot push a
    /// slow request that is still running out of the pending groups.
    #[test]
    fn spans_ending_after_their_trace_was_let_go_do_not_wait() {
        let mut s =
            State::new(ReservoirConfig { recent: 1, slowest: 0, pending_traces: 8, ..ReservoirConfig::default() });
        // A slow request in progress: one child exported, its root still running.
        s.observe([Fake { parent: 50, ..child(1000) }], T0);
        for n in 1..=20 {
            s.observe([root(n, 1)], T0 + n * MS);
            // The previous request's background child ends now: after its root was decided
            // and, with one recent slot, let go when this request was.
            if n > 1 {
                s.observe([Fake { parent: 1, ..child(n - 1) }], T0 + n * MS + 1);
            }
        }
        assert_eq!(s.stats().pending_evicted, 0, "{:?}", s.stats());
        s.observe([root(1000, 5_000)], T0 + 5 * S);
        let (t, _) = s.trace(tid(1000)).expect("the slow request is kept");
        assert_eq!(t.spans().len(), 2, "with its child");
    }

    #[test]
    fn failed_slowest_and_recent_select_and_age() {
        let mut s = state();
        // 40 plain traces lasting 1..=40 ms, then 40 failed ones lasting 1 ms.
        for i in 1..=40 {
            s.observe([root(i, i)], T0);
        }
        let lists = s.lists();
        assert_eq!(ids(&lists.slowest), (9..=40).rev().map(tid).collect::<Vec<_>>(), "the 32 slowest, slowest first");
        assert_eq!(ids(&lists.recent), (25..=40).rev().map(tid).collect::<Vec<_>>(), "the 16 newest");
        for i in 101..=140 {
            s.observe([failed(root(i, 1))], T0 + S);
        }
        let lists = s.lists();
        assert_eq!(ids(&lists.failed), (109..=140).rev().map(tid).collect::<Vec<_>>(), "the 32 newest failures");
        assert_eq!(ids(&lists.recent), (125..=140).rev().map(tid).collect::<Vec<_>>());
        assert_eq!(lists.slowest.len(), 32, "1 ms failures are not slower than the slowest");
        // Everything kept is in a list; the others were freed.
        assert_eq!(s.kept.len(), 32 + 32, "failed and slowest (recent overlaps failed)");
        assert!(!s.is_kept(tid(8)) && !s.is_kept(tid(101)));
        // Ten minutes on, the slow ones age out when the next trace arrives.
        s.observe([root(200, 2)], T0 + 601 * S);
        assert_eq!(ids(&s.lists().slowest), [tid(200)]);
        assert!(!s.is_kept(tid(40)));
        assert_eq!(s.stats().traces_decided, 81);
    }

    #[test]
    fn a_trace_is_freed_when_it_leaves_its_last_list() {
        let mut s = State::new(ReservoirConfig { slowest: 0, ..ReservoirConfig::default() });
        s.observe([failed(root(1, 5))], T0);
        for i in 2..=18 {
            s.observe([root(i, 5)], T0);
        }
        assert!(s.is_kept(tid(1)), "out of recent but still failed");
        assert!(!s.is_kept(tid(2)));
        for i in 20..52 {
            s.observe([failed(root(i, 5))], T0);
        }
        assert!(!s.is_kept(tid(1)));
        assert_eq!(s.kept.len(), 32);
        assert_eq!(s.bytes().1, 32 * 100);
    }

    #[test]
    fn the_per_trace_span_limit_keeps_the_root() {
        let mut s = State::new(ReservoirConfig { max_spans_per_trace: 4, ..ReservoirConfig::default() });
        s.observe(std::iter::repeat_with(|| child(1)).take(6), T0);
        s.observe([root(1, 1)], T0);
        let (t, _) = s.trace(tid(1)).expect("kept");
        assert_eq!((t.spans().len(), t.dropped_spans()), (5, 2));
        assert_eq!(t.root_name(), "root");
        s.observe([child(1)], T0);
        let (t, _) = s.trace(tid(1)).expect("kept");
        assert_eq!((t.spans().len(), t.dropped_spans()), (5, 3), "late spans respect it too");
        assert_eq!(s.stats().spans_dropped, 3);
    }

    #[test]
    fn pending_bounds_evict_the_oldest_group() {
        let cfg = ReservoirConfig { pending_spans: 10, pending_traces: 3, pending_bytes: 1000, ..Default::default() };
        // Traces: the fourth group pushes out the first.
        let mut s = State::new(cfg.clone());
        s.observe((1..=4).map(child), T0);
        assert_eq!(s.pending.len(), 3);
        assert!(!s.pending.contains_key(&tid(1)));
        assert_eq!(s.stats().pending_evicted, 1);
        s.observe([root(1, 1)], T0);
        assert_eq!(s.trace(tid(1)).map(|(t, _)| t.spans().len()), Some(1), "its children are gone");
        // Spans: eleven in two groups.
        let mut s = State::new(cfg.clone());
        s.observe(std::iter::repeat_with(|| child(1)).take(6).chain(std::iter::repeat_with(|| child(2)).take(5)), T0);
        assert_eq!((s.pending.len(), s.pending_spans), (1, 5));
        // Bytes: 400 + 400 + 400 > 1000.
        let mut s = State::new(cfg);
        s.observe((1..=3).map(|t| Fake { bytes: 400, ..child(t) }), T0);
        assert_eq!(s.bytes().0, 800);
        assert!(!s.pending.contains_key(&tid(1)));
        // Stale order entries do not grow without bound, in one batch or many.
        let mut s = state();
        for i in 0..10_000 {
            s.observe([child(i), root(i, 1)], T0);
            s.observe([root(20_000 + i, 1)], T0);
        }
        s.observe((30_000..40_000).flat_map(|i| [child(i), root(i, 1)]), T0);
        assert!(s.pending_order.len() <= 64, "{}", s.pending_order.len());
        assert_eq!(s.kept.len(), 32 + 16, "the first 32 (ties keep their place) and the last 16");
    }

    #[test]
    fn the_kept_bytes_bound_lets_recent_go_first() {
        let cfg = ReservoirConfig { kept_bytes: 1000, ..Default::default() };
        let mut s = State::new(cfg);
        s.observe([failed(root(1, 1))], T0);
        s.observe([Fake { bytes: 300, ..root(2, 50) }], T0);
        for i in 3..=10 {
            s.observe([root(i, 1)], T0);
        }
        let (_, kept) = s.bytes();
        assert!(kept <= 1000, "{kept}");
        assert!(s.is_kept(tid(1)) && s.is_kept(tid(2)), "failed and slowest outlive plain recent ones");
        assert!(s.is_kept(tid(10)), "the newest stays");
        assert!(!s.is_kept(tid(3)), "the oldest plain one went first");
        assert!(s.stats().kept_evicted > 0);
        // One trace over the bound on its own is not kept.
        s.observe([Fake { bytes: 5000, ..root(9, 1) }], T0);
        assert!(!s.is_kept(tid(9)));
        assert!(s.bytes().1 <= 1000);
    }

    fn log(body: &str) -> LiveLog {
        LiveLog::new(T0, 17, body, SpanId::from_bytes([3; 8]))
    }

    #[test]
    fn logs_wait_for_their_trace_and_follow_it() {
        let mut s = state();
        s.observe_log(tid(1), log("before"));
        s.observe_log(tid(2), log("other"));
        s.observe([child(1)], T0);
        s.observe_log(tid(1), log("while pending"));
        s.observe([root(1, 1)], T0);
        s.observe_log(tid(1), log("after"));
        let (_, logs) = s.trace(tid(1)).expect("kept");
        let bodies: Vec<&str> = logs.iter().map(|l| l.body.as_str()).collect();
        assert_eq!(bodies, ["before", "while pending", "after"]);
        assert_eq!(s.unclaimed.len(), 1, "trace 2's record still waits");
        let logs_bytes: usize = ["before", "while pending", "after"].map(|b| log(b).approx_bytes()).iter().sum();
        assert_eq!(s.bytes().1, 200 + logs_bytes);
    }

    #[test]
    fn log_bounds() {
        let cfg = ReservoirConfig { unclaimed_logs: 3, logs_per_trace: 2, ..Default::default() };
        let mut s = State::new(cfg);
        for body in ["a", "b", "c", "d"] {
            s.observe_log(tid(1), log(body));
        }
        assert_eq!(s.stats().logs_dropped, 1, "the oldest waiting record");
        s.observe([root(1, 1)], T0);
        let (_, logs) = s.trace(tid(1)).expect("kept");
        assert_eq!(logs.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        s.observe_log(tid(1), log("e"));
        assert_eq!(s.stats().logs_dropped, 3);
        assert!(s.unclaimed_by_trace.is_empty() && s.unclaimed.is_empty());
        // Freed with its trace.
        for i in 2..=40 {
            s.observe([root(i, 5)], T0);
        }
        assert!(!s.is_kept(tid(1)) && !s.kept_logs.contains_key(&tid(1)));
    }

    #[test]
    fn log_records_are_copied_with_caps() {
        use otel_lite_core::logs::AnyValue;
        use otel_lite_core::KeyValue;
        static SCOPE: std::sync::OnceLock<otel_lite_core::InstrumentationScope> = std::sync::OnceLock::new();
        let scope = SCOPE.get_or_init(otel_lite_core::InstrumentationScope::default);
        let record = LogRecord {
            timestamp_unix_nanos: None,
            observed_unix_nanos: 42,
            severity_number: 17,
            severity_text: Some("ERROR".into()),
            body: Some(AnyValue::Map(vec![
                ("k".into(), AnyValue::Array(vec![AnyValue::I64(1), AnyValue::Bool(true)])),
                ("big".into(), AnyValue::String("é".repeat(2000).into())),
            ])),
            attributes: (0..20).map(|i| KeyValue::new("a", "x".repeat(300 + i))).collect(),
            dropped_attributes: 0,
            trace_id: tid(1),
            span_id: SpanId::from_bytes([1; 8]),
            trace_flags: Default::default(),
            event_name: None,
            scope,
        };
        let l = LiveLog::from_record(&record);
        assert!(l.body.starts_with("{k: [1, true], big: éé"), "{}", &l.body[..30]);
        assert!(l.body.len() <= MAX_BODY_BYTES);
        assert_eq!(l.attrs.len(), MAX_LOG_ATTRS);
        assert!(l.attrs.iter().all(|(_, v)| v.len() == MAX_LOG_ATTR_BYTES));
        assert_eq!((l.time_ns, l.severity, l.severity_text.as_ref().map(SharedStr::as_str)), (42, 17, Some("ERROR")));
    }

    #[test]
    fn lists_render_as_json() {
        let r = TraceReservoir::default();
        let lists = TraceLists {
            failed: vec![TraceSummary {
                id: tid(5),
                root: "GET </script>".into(),
                start_ns: T0,
                dur_ns: 7,
                spans: 3,
                error: true,
            }],
            ..TraceLists::default()
        };
        let stats = ReservoirStats { spans_dropped: 3, ..ReservoirStats::default() };
        let mut w = JsonWriter::with_budget(1 << 16);
        w.begin_object();
        lists.write_json(&mut w);
        w.key("reservoir").begin_object();
        stats.write_json(&mut w);
        w.end_object();
        w.end_object();
        let text = w.finish();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let t = &v["traces"]["failed"][0];
        assert_eq!(t["id"], tid(5).to_string());
        assert_eq!(
            (t["root"].as_str(), t["dur_ns"].as_u64(), t["spans"].as_u64()),
            (Some("GET </script>"), Some(7), Some(3))
        );
        assert_eq!(v["traces"]["recent"].as_array().map(Vec::len), Some(0));
        assert_eq!(v["reservoir"]["spans_dropped"], 3);
        assert_eq!(v["reservoir"].as_object().map(|o| o.len()), Some(7));
        assert!(r.lists().recent.is_empty());
    }

    /// The tees around real providers: spans and logs reach both the reservoir and the
    /// wrapped exporters.
    #[test]
    fn tees_feed_the_reservoir_from_real_providers() {
        use crate::live::{LiveLogTee, LiveSpanTee};
        use otel_lite_core::logs::{InMemoryLogExporter, LoggerProvider, Severity};
        use otel_lite_core::trace::{InMemorySpanExporter, TracerProvider};

        let reservoir = Arc::new(TraceReservoir::default());
        let spans = InMemorySpanExporter::default();
        let logs = InMemoryLogExporter::default();
        let tracer_provider =
            TracerProvider::builder().with_simple_exporter(LiveSpanTee::new(spans.clone(), reservoir.clone())).build();
        let logger_provider =
            LoggerProvider::builder().with_simple_exporter(LiveLogTee::new(logs.clone(), reservoir.clone())).build();
        let tracer = tracer_provider.tracer("test");
        let logger = logger_provider.logger("test");

        let mut root = tracer.start("GET /checkout");
        let trace_id = root.span_context().trace_id();
        {
            let _in_root = root.enter();
            let mut pay = tracer.start("pay");
            {
                let _in_pay = pay.enter();
                logger.log(Severity::Error, "card declined", vec![otel_lite_core::KeyValue::new("card", "visa")]);
            }
            pay.set_status(Status::error("declined"));
            pay.end();
        }
        logger.log(Severity::Info, "outside any span", vec![]);
        assert!(!reservoir.is_kept(trace_id), "the child came alone");
        root.end();
        drop(tracer_provider);
        drop(logger_provider);

        assert_eq!(spans.spans().len(), 2, "the wrapped exporter got every span");
        assert_eq!(logs.records().len(), 2, "and every record");
        let (trace, trace_logs) = reservoir.trace(trace_id).expect("kept");
        let names: Vec<&str> = trace.spans().iter().map(|s| s.name()).collect();
        assert_eq!(names, ["pay", "GET /checkout"]);
        assert!(trace.is_error());
        assert_eq!(trace.root_name(), "GET /checkout");
        assert_eq!(trace_logs.len(), 1);
        assert_eq!(trace_logs[0].body, "card declined");
        assert_eq!(trace_logs[0].span_id, trace.spans()[0].span_id());
        assert_eq!(trace_logs[0].attrs, [("card".into(), "visa".to_string())]);
        assert_eq!(ids(&reservoir.lists().failed), [trace_id]);
    }

    #[test]
    fn a_tee_around_discard_still_keeps_traces() {
        use crate::live::{Discard, LiveSpanTee};
        use otel_lite_core::trace::{BatchConfig, TracerProvider};

        let reservoir = Arc::new(TraceReservoir::default());
        let provider = TracerProvider::builder()
            .with_batch_exporter(LiveSpanTee::new(Discard, reservoir.clone()), BatchConfig::default())
            .build();
        let tracer = provider.tracer("test");
        let trace_id = tracer.in_span("root", |root| {
            drop(tracer.start("child"));
            root.span_context().trace_id()
        });
        assert!(provider.force_flush());
        let (trace, _) = reservoir.trace(trace_id).expect("kept");
        assert_eq!(trace.spans().len(), 2);
        assert_eq!(ids(&reservoir.lists().recent), [trace_id]);
    }
}
