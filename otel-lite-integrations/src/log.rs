//! The `log` bridge: a [`log::Log`] that turns `log` records into otel-lite log records,
//! stamped with the trace and span they were logged in.
//!
//! | `log` | otel-lite log record |
//! |---|---|
//! | level | severity number (`TRACE` 1, `DEBUG` 5, `INFO` 9, `WARN` 13, `ERROR` 17) and text |
//! | message | body, a string (formatted only when it is not a plain literal) |
//! | target | instrumentation scope name |
//! | key-values | attributes, typed where `log` knows the type (see below) |
//! | file, line | `code.file.path`, `code.line.number` |
//! | current span | trace id, span id, trace flags |
//!
//! Key-value values keep their type when they are integers, floats, booleans, strings or
//! chars. An integer outside the `i64` range (a `u64` above `i64::MAX`, a 128-bit integer)
//! becomes its exact decimal text, as everywhere in otel-lite: OpenTelemetry attributes have
//! no unsigned integers, and a rounded id would be a different id. Values captured with
//! `Display` (`key:% = v`) or `Debug` (`key:? = v`), and any other kind, become their
//! formatted text. A null value (`None`) adds no attribute. The module path adds none either:
//! its semantic convention (`code.namespace`) is deprecated, and it is usually the target.
//!
//! An application installs the bridge once, at startup, with
//! [`OtelLiteLogger::install`]; [`OtelLiteLogger::global`] makes one that follows the
//! global logger provider instead of a given one.
//!
//! # Bounds
//!
//! - Each target gets its own logger, made once: the first 768 distinct targets of a bridge
//!   get a scope each; records from later ones (targets made from data) share the scope
//!   `log` and carry their target as the `log.target` attribute.
//! - Attribute keys are copied once into a process-wide table, up to 768 distinct keys of
//!   at most 128 bytes; other keys are copied per record.
//! - A record logged through `log` while the same thread is inside the bridge's export
//!   call (a simple exporter, or a library it calls, logging) is dropped rather than
//!   exported recursively.
//!
//! ```
//! use log::LevelFilter;
//! use otel_lite_core::logs::{AnyValue, InMemoryLogExporter, LoggerProvider};
//! use otel_lite_core::Value;
//! use otel_lite_integrations::log::OtelLiteLogger;
//!
//! let exporter = InMemoryLogExporter::default();
//! let provider = LoggerProvider::builder().with_simple_exporter(exporter.clone()).build();
//! let bridge = OtelLiteLogger::new(&provider).max_level(LevelFilter::Debug);
//!
//! // An application calls `bridge.install()` once and then logs with the plain macros;
//! // `logger:` hands this record to the bridge without installing it. The macros still
//! // check the global level, which `install` would have set.
//! log::set_max_level(LevelFilter::Debug);
//! log::info!(logger: bridge, target: "checkout", order = 42, paid = true; "order {} placed", "o-1");
//!
//! let records = exporter.records();
//! let record = &records[0];
//! assert_eq!((record.severity_number, record.severity_text.as_deref()), (9, Some("INFO")));
//! assert_eq!(record.scope.name.as_str(), "checkout");
//! assert_eq!(record.body, Some(AnyValue::String("order o-1 placed".to_string().into())));
//! let order = record.attributes.iter().find(|kv| kv.key().as_str() == "order").map(|kv| kv.value());
//! assert_eq!(order, Some(&Value::I64(42)));
//! ```

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use log::kv::{self, VisitSource, VisitValue};
use log::{Level, LevelFilter, Log, Metadata, Record};
use otel_lite_core::global;
use otel_lite_core::logs::{AnyValue, LoggerProvider, Severity};
use otel_lite_core::{KeyValue, SharedStr, Value};

use crate::loggers::{emit_guarded, Keyed, StrTable, TargetLoggers};

/// A [`log::Log`] that emits otel-lite log records; see the [module docs](self).
///
/// Records go to the [`LoggerProvider`] given to [`OtelLiteLogger::new`], or for
/// [`OtelLiteLogger::global`] to the one installed with
/// [`global::set_logger_provider`].
pub struct OtelLiteLogger {
    provider: ProviderSource,
    max_level: LevelFilter,
    targets: TargetLoggers,
}

enum ProviderSource {
    Owned(LoggerProvider),
    Global,
}

impl OtelLiteLogger {
    /// A bridge into `provider` (a cheap clone of it is kept), passing records up to
    /// `INFO`; see [`max_level`](Self::max_level).
    #[must_use]
    pub fn new(provider: &LoggerProvider) -> Self {
        Self::with_source(ProviderSource::Owned(provider.clone()))
    }

    /// A bridge into the global logger provider, looked up on each record: records logged
    /// before a provider is installed are dropped, later ones go to it. Passes records up
    /// to `INFO`; see [`max_level`](Self::max_level).
    #[must_use]
    pub fn global() -> Self {
        Self::with_source(ProviderSource::Global)
    }

    fn with_source(provider: ProviderSource) -> Self {
        OtelLiteLogger { provider, max_level: LevelFilter::Info, targets: TargetLoggers::new(OVERFLOW_SCOPE) }
    }

    /// The most verbose level passed on (default `INFO`, so that a library's `debug!` and
    /// `trace!` calls cost nothing unless asked for). [`install`](Self::install) also sets
    /// it as `log`'s global level, which the macros check before calling any logger.
    #[must_use]
    pub fn max_level(mut self, level: LevelFilter) -> Self {
        self.max_level = level;
        self
    }

    /// The level set with [`max_level`](Self::max_level).
    pub fn level_filter(&self) -> LevelFilter {
        self.max_level
    }

    /// Installs this bridge as `log`'s global logger and sets `log`'s global level to its
    /// [`max_level`](Self::max_level).
    ///
    /// # Errors
    ///
    /// [`InstallError::LoggerAlreadySet`] when `log` already has a logger (it allows one
    /// per process); the global level is then left alone.
    pub fn install(self) -> Result<(), InstallError> {
        let level = self.max_level;
        log::set_boxed_logger(Box::new(self)).map_err(InstallError::LoggerAlreadySet)?;
        log::set_max_level(level);
        Ok(())
    }

    fn provider(&self) -> Option<&LoggerProvider> {
        match &self.provider {
            ProviderSource::Owned(provider) => Some(provider),
            ProviderSource::Global => global::logger_provider(),
        }
    }
}

impl fmt::Debug for OtelLiteLogger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let provider = match self.provider {
            ProviderSource::Owned(_) => "owned",
            ProviderSource::Global => "global",
        };
        f.debug_struct("OtelLiteLogger")
            .field("provider", &provider)
            .field("max_level", &self.max_level)
            .field("targets", &self.targets.table.len())
            .finish()
    }
}

impl Log for OtelLiteLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.max_level && self.provider().is_some()
    }

    fn log(&self, record: &Record<'_>) {
        if record.level() > self.max_level {
            return;
        }
        let Some(provider) = self.provider() else { return };
        let target = record.target();
        let (logger, overflowed) = self.targets.get(provider, target);

        let key_values = record.key_values();
        let mut attributes = Vec::with_capacity(key_values.count() + 3);
        // A `Source` may stop early with an error; the pairs visited so far are kept.
        let _ = key_values.visit(&mut Attributes(&mut attributes));
        if let Some(file) = record.file_static() {
            attributes.push(KeyValue::new("code.file.path", file));
        } else if let Some(file) = record.file() {
            attributes.push(KeyValue::new("code.file.path", SharedStr::new(file)));
        }
        if let Some(line) = record.line() {
            attributes.push(KeyValue::new("code.line.number", i64::from(line)));
        }
        if overflowed {
            attributes.push(KeyValue::new("log.target", SharedStr::new(target)));
        }

        let body = match record.args().as_str() {
            Some(literal) => SharedStr::from_static(literal),
            None => format_shared(record.args()),
        };
        emit_guarded(|| logger.log(severity(record.level()), AnyValue::String(body), attributes));
    }

    /// Exports everything emitted so far ([`LoggerProvider::force_flush`]: waits up to 30 s).
    fn flush(&self) {
        if let Some(provider) = self.provider() {
            provider.force_flush();
        }
    }
}

fn severity(level: Level) -> Severity {
    match level {
        Level::Error => Severity::Error,
        Level::Warn => Severity::Warn,
        Level::Info => Severity::Info,
        Level::Debug => Severity::Debug,
        Level::Trace => Severity::Trace,
    }
}

thread_local! {
    /// Where messages are formatted: a string built in place would be copied once more into
    /// the `Arc<str>` a record holds, so this thread's buffer is reused instead.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Formats `value` into a shared string. A `Display` or `Debug` implementation that
/// returns an error leaves what it wrote so far (`format!` would panic instead).
fn format_shared(value: &dyn fmt::Display) -> SharedStr {
    // Buffers grown past this by one huge message are freed rather than kept per thread.
    const KEEP: usize = 4096;
    let from_scratch = SCRATCH.try_with(|scratch| {
        // Borrowed already when a `Display` implementation being formatted logs itself.
        let mut buf = scratch.try_borrow_mut().ok()?;
        buf.clear();
        let _ = write!(buf, "{value}");
        let text = SharedStr::new(buf.as_str());
        if buf.capacity() > KEEP {
            *buf = String::new();
        }
        Some(text)
    });
    from_scratch.ok().flatten().unwrap_or_else(|| {
        let mut buf = String::new();
        let _ = write!(buf, "{value}");
        SharedStr::from(buf)
    })
}

/// Collects key-values as attributes.
struct Attributes<'a>(&'a mut Vec<KeyValue>);

impl<'kvs> VisitSource<'kvs> for Attributes<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        let mut converted = None;
        // The visitor itself never fails; an error would come from the value, which then
        // adds no attribute.
        let _ = value.visit(ToValue(&mut converted));
        if let Some(value) = converted {
            self.0.push(KeyValue::new(interned_key(key.as_str()), value));
        }
        Ok(())
    }
}

/// Converts one key-value value; leaves `None` for a null.
struct ToValue<'a>(&'a mut Option<Value>);

impl VisitValue<'_> for ToValue<'_> {
    fn visit_any(&mut self, value: kv::Value<'_>) -> Result<(), kv::Error> {
        // `Display` of a `log` value formats a `Debug`-captured value with `Debug`.
        *self.0 = Some(Value::String(format_shared(&value)));
        Ok(())
    }
    fn visit_null(&mut self) -> Result<(), kv::Error> {
        Ok(())
    }
    fn visit_u64(&mut self, value: u64) -> Result<(), kv::Error> {
        // `I64` when it fits, else the exact decimal text (see the module docs).
        *self.0 = Some(Value::from(value));
        Ok(())
    }
    fn visit_i64(&mut self, value: i64) -> Result<(), kv::Error> {
        *self.0 = Some(Value::I64(value));
        Ok(())
    }
    fn visit_u128(&mut self, value: u128) -> Result<(), kv::Error> {
        *self.0 = Some(Value::from(value));
        Ok(())
    }
    fn visit_i128(&mut self, value: i128) -> Result<(), kv::Error> {
        *self.0 = Some(Value::from(value));
        Ok(())
    }
    fn visit_f64(&mut self, value: f64) -> Result<(), kv::Error> {
        *self.0 = Some(Value::F64(value));
        Ok(())
    }
    fn visit_bool(&mut self, value: bool) -> Result<(), kv::Error> {
        *self.0 = Some(Value::Bool(value));
        Ok(())
    }
    fn visit_str(&mut self, value: &str) -> Result<(), kv::Error> {
        *self.0 = Some(Value::String(SharedStr::new(value)));
        Ok(())
    }
    fn visit_char(&mut self, value: char) -> Result<(), kv::Error> {
        *self.0 = Some(Value::String(SharedStr::new(value.encode_utf8(&mut [0; 4]))));
        Ok(())
    }
}

// --- interned keys --------------------------------------------------------------------

/// The scope of records whose target came after the per-target table filled up.
const OVERFLOW_SCOPE: &str = "log";
/// Slots of the process-wide key table (a power of two).
const KEY_SLOTS: usize = 1024;
/// Keys longer than this are not interned: the table keeps its keys for good.
const MAX_INTERNED_KEY_LEN: usize = 128;

impl Keyed for &'static str {
    fn key(&self) -> &str {
        self
    }
}

/// `key` as an attribute key. Keys are nearly always literals at the call site, yet `log`
/// hands them over without a `'static` lifetime; allocating each one would cost an
/// allocation per key per record, freed later on the export thread. So each distinct key
/// is copied once into a process-wide table and kept, up to the table's bound (like the
/// core's instrumentation scopes); later or long keys are copied per record (inline, with
/// no allocation, up to `SharedStr::INLINE_CAPACITY` bytes).
fn interned_key(key: &str) -> SharedStr {
    static KEYS: OnceLock<StrTable<&'static str>> = OnceLock::new();
    if key.len() > MAX_INTERNED_KEY_LEN {
        return SharedStr::new(key);
    }
    let table = KEYS.get_or_init(|| StrTable::new(KEY_SLOTS));
    match table.get_or_insert(key, || Box::leak(Box::<str>::from(key))) {
        Some(interned) => SharedStr::from_static(interned),
        None => SharedStr::new(key),
    }
}

/// The bridge could not be installed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InstallError {
    /// `log` already has a global logger (it allows one per process).
    LoggerAlreadySet(log::SetLoggerError),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::LoggerAlreadySet(_) => f.write_str("a `log` logger is already installed"),
        }
    }
}

impl std::error::Error for InstallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InstallError::LoggerAlreadySet(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otel_lite_core::logs::InMemoryLogExporter;
    use std::sync::Arc;

    fn provider() -> (LoggerProvider, InMemoryLogExporter) {
        let exporter = InMemoryLogExporter::default();
        (LoggerProvider::builder().with_simple_exporter(exporter.clone()).build(), exporter)
    }

    #[test]
    fn targets_past_the_bound_share_the_overflow_scope_and_keep_their_target() {
        let (provider, exporter) = provider();
        let bridge = OtelLiteLogger::new(&provider);
        let max_targets = bridge.targets.table.max;
        for i in 0..max_targets + 2 {
            let target = format!("target.{i}");
            bridge.log(&Record::builder().level(Level::Info).target(&target).args(format_args!("m")).build());
        }
        assert_eq!(bridge.targets.table.len(), max_targets);
        let records = exporter.records();
        assert_eq!(records.len(), max_targets + 2);
        for (i, record) in records.iter().enumerate() {
            let target = format!("target.{i}");
            let logged_target = record.attributes.iter().find(|kv| kv.key().as_str() == "log.target");
            if i < max_targets {
                assert_eq!(record.scope.name.as_str(), target);
                assert!(logged_target.is_none());
            } else {
                assert_eq!(record.scope.name.as_str(), OVERFLOW_SCOPE);
                assert_eq!(logged_target.map(|kv| kv.value().to_string()), Some(target));
            }
        }
        // Known targets still find their own logger once the table is full.
        bridge.log(&Record::builder().level(Level::Info).target("target.7").args(format_args!("m")).build());
        assert_eq!(exporter.records().last().map(|r| r.scope.name.to_string()), Some("target.7".into()));
    }

    #[test]
    fn keys_are_interned_once_and_long_ones_are_not() {
        let a = interned_key(&String::from("interned.key"));
        let b = interned_key(&String::from("interned.key"));
        assert_eq!(a.as_str(), "interned.key");
        assert!(std::ptr::eq(a.as_str(), b.as_str()), "one copy per key");
        let long = "k".repeat(MAX_INTERNED_KEY_LEN + 1);
        assert_eq!(interned_key(&long).as_str(), long);
    }

    #[test]
    fn a_failing_display_keeps_what_it_wrote_and_does_not_panic() {
        struct Fails;
        impl fmt::Display for Fails {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("partial")?;
                Err(fmt::Error)
            }
        }
        let (provider, exporter) = provider();
        let bridge = OtelLiteLogger::new(&provider);
        let kvs = [("k", kv::Value::from_display(&Fails))];
        bridge.log(&Record::builder().level(Level::Warn).args(format_args!("{} body", Fails)).key_values(&kvs).build());
        let records = exporter.records();
        assert_eq!(records[0].body, Some(AnyValue::String("partial".into())));
        assert_eq!(records[0].attributes[0].value(), &Value::String("partial".into()));
    }

    #[test]
    fn a_record_logged_while_exporting_is_dropped_not_recursed_into() {
        struct LogsWhileExporting(Arc<OnceLock<OtelLiteLogger>>, InMemoryLogExporter);
        impl otel_lite_core::logs::LogExporter for LogsWhileExporting {
            fn export(
                &mut self,
                batch: Vec<otel_lite_core::logs::LogRecord>,
            ) -> Result<(), otel_lite_core::pipeline::ExportError> {
                if let Some(bridge) = self.0.get() {
                    bridge.log(&Record::builder().level(Level::Error).args(format_args!("nested")).build());
                }
                self.1.export(batch)
            }
        }
        let slot = Arc::new(OnceLock::new());
        let exporter = InMemoryLogExporter::default();
        let provider = LoggerProvider::builder()
            .with_simple_exporter(LogsWhileExporting(Arc::clone(&slot), exporter.clone()))
            .build();
        let _ = slot.set(OtelLiteLogger::new(&provider));
        if let Some(bridge) = slot.get() {
            bridge.log(&Record::builder().level(Level::Error).args(format_args!("outer")).build());
            bridge.log(&Record::builder().level(Level::Error).args(format_args!("second")).build());
        }
        let bodies: Vec<_> = exporter.records().into_iter().filter_map(|r| r.body).collect();
        assert_eq!(bodies, [AnyValue::String("outer".into()), AnyValue::String("second".into())]);
    }
}
