//! `otel_lite::init()`: one call that sets up the resource, propagators, sampler and the
//! trace, metric and log pipelines from the standard `OTEL_*` environment variables.
//!
//! The variables are listed on [`init`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use otel_lite_core::logs::{LogRecordLimits, LoggerProvider};
use otel_lite_core::metrics::snapshot::Temporality;
use otel_lite_core::propagation::Propagators;
use otel_lite_core::trace::{BatchConfig, Sampler, SpanExporter, SpanLimits, TracerProvider};
use otel_lite_core::{global, Resource};

/// A problem with one variable: its name, its value, and what was done instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnvWarning {
    /// The variable.
    pub variable: String,
    /// Its value.
    pub value: String,
    /// What happened.
    pub reason: String,
}

impl std::fmt::Display for EnvWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={:?}: {}", self.variable, self.value, self.reason)
    }
}

/// Where a signal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exporter {
    /// OTLP over HTTP.
    Otlp,
    /// The Prometheus `/metrics` endpoint (metrics only).
    Prometheus,
    /// Standard output.
    Console,
}

/// Whether and for whom the live page is served ([`Config::live`]).
#[cfg(feature = "live")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveMode {
    /// Not served: `/live` is a 404, and nothing is sampled or kept.
    Off,
    /// Served to peers on loopback naming `localhost` or a loopback address (the default).
    Loopback,
    /// Served to any peer that reaches the endpoint by an IP address (a DNS name in `Host`
    /// is refused, against DNS rebinding). The page shows span attributes and log
    /// records: only where the network around the endpoint is trusted.
    Remote,
}

/// Everything `init` sets up, resolved from the environment (or built in code).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `OTEL_SDK_DISABLED`.
    pub disabled: bool,
    /// The resource.
    pub resource: Resource,
    /// Trace exporters.
    pub traces: Vec<Exporter>,
    /// Metric exporters.
    pub metrics: Vec<Exporter>,
    /// Log exporters.
    pub logs: Vec<Exporter>,
    /// The `OTEL_PROPAGATORS` value (validated).
    pub propagators: String,
    /// The sampler.
    pub sampler: Sampler,
    /// Span limits.
    pub span_limits: SpanLimits,
    /// Log record limits.
    pub log_limits: LogRecordLimits,
    /// The span batch processor.
    pub span_batch: BatchConfig,
    /// The log batch processor.
    pub log_batch: BatchConfig,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub metric_export_interval: Duration,
    /// `OTEL_METRIC_EXPORT_TIMEOUT`.
    pub metric_export_timeout: Duration,
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
    pub metrics_temporality: Temporality,
    /// Evict a series after this long without records, freeing its cardinality slot
    /// ([`otel_lite_core::metrics::RegistryBuilder::evict_idle_series`]). Default: twice
    /// `OTEL_METRIC_EXPORT_INTERVAL` when metrics go only to OTLP with delta temporality
    /// (each export forgets the series' history anyway), else never: Prometheus and other
    /// cumulative readers keep every series.
    pub metric_evict_idle: Option<Duration>,
    /// Prometheus endpoint host.
    pub prometheus_host: String,
    /// Prometheus endpoint port.
    pub prometheus_port: u16,
    /// What was wrong in the environment.
    pub warnings: Vec<EnvWarning>,
    /// Whether [`install`](Config::install) also routes the `tracing`, `metrics` and `log`
    /// crates into otel-lite, for those of the features `tracing`, `metrics` and `log` that
    /// are on (see [`init`]'s "Bridges"). Default `true`; set it to `false` when the
    /// application composes its own subscriber, recorder or logger (with
    /// `otel_lite::integrations`) or installs one after `init`.
    pub install_bridges: bool,
    /// Which process metrics [`install`](Config::install) registers (`None`: none), from
    /// `OTEL_LITE_PROCESS_METRICS`: `semconv` (default; the OpenTelemetry names),
    /// `prometheus` (the names existing dashboards query: `process_cpu_seconds_total`,
    /// `process_resident_memory_bytes`, ...), `both`, or `none`.
    #[cfg(feature = "process")]
    pub process_metrics: Option<crate::integrations::process::ProcessMetricNames>,
    /// The `build_info` series [`install`](Config::install) registers: set by
    /// [`with_build_info`](Config::with_build_info) (usually with
    /// [`build_info!`](crate::build_info)), else a build of the resource's
    /// `service.version` when `OTEL_RESOURCE_ATTRIBUTES` gives one.
    pub build_info: Option<crate::metrics::BuildInfo>,
    /// The live page on the Prometheus endpoint (feature `live`), from `OTEL_LITE_LIVE`:
    /// `on` (default: for loopback peers only), `remote` (for any peer that reaches the
    /// endpoint) or `off`. It needs the Prometheus exporter; with it on, spans and log
    /// records are recorded for the page even when no exporter takes them.
    #[cfg(feature = "live")]
    pub live: LiveMode,
    /// The live page's settings (sampling interval, reservoir sizes); `OTEL_LITE_LIVE`
    /// decides whether remote peers may open it.
    #[cfg(feature = "live")]
    pub live_config: crate::live::LiveConfig,
    /// The `OTEL_EXPORTER_OTLP_*` variables, for the OTLP exporters.
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    env: Vec<(String, String)>,
    /// What code added with `with_span_exporter` and `with_otlp`.
    additions: Additions,
}

/// A function that adjusts one signal's OTLP exporter settings.
#[cfg(feature = "otlp")]
type OtlpAdjust = dyn Fn(crate::otlp::Signal, &mut crate::otlp::SignalConfig) + Send + Sync;

/// Code-level additions to a [`Config`]. Clones of a configuration share its added
/// exporters; the one that is installed takes them.
#[derive(Clone, Default)]
struct Additions {
    span_exporters: Arc<Mutex<Vec<Box<dyn SpanExporter>>>>,
    #[cfg(feature = "otlp")]
    otlp: Option<Arc<OtlpAdjust>>,
}

impl std::fmt::Debug for Additions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let exporters = self.span_exporters.lock().map_or(0, |e| e.len());
        let mut d = f.debug_struct("Additions");
        d.field("span_exporters", &exporters);
        #[cfg(feature = "otlp")]
        d.field("otlp", &self.otlp.is_some());
        d.finish()
    }
}

fn exporters(
    var: &str,
    value: Option<String>,
    allowed: &[(&str, Exporter)],
    default: Vec<Exporter>,
    warnings: &mut Vec<EnvWarning>,
) -> Vec<Exporter> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else { return default };
    let (mut out, mut unknown) = (Vec::new(), Vec::new());
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        // Enum values are case-insensitive.
        if name.eq_ignore_ascii_case("none") {
            return Vec::new();
        }
        match allowed.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some((_, e)) if !out.contains(e) => out.push(*e),
            Some(_) => {}
            None => unknown.push(name),
        }
    }
    if unknown.is_empty() {
        return out;
    }
    let names = unknown.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    let reason = if out.is_empty() {
        out = default;
        format!("unknown exporter {names}; using the default")
    } else {
        format!("unknown exporter {names}; ignored")
    };
    warnings.push(EnvWarning { variable: var.into(), value, reason });
    out
}

impl Config {
    /// Resolves the configuration from the process environment.
    pub fn from_env() -> Config {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// Resolves the configuration from `get` (a variable source).
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Config {
        let mut warnings = Vec::new();
        let mut warn = |variable: &str, value: &str, reason: String| {
            warnings.push(EnvWarning { variable: variable.into(), value: value.into(), reason })
        };
        let disabled = match get("OTEL_SDK_DISABLED") {
            None => false,
            Some(v) if v.trim().eq_ignore_ascii_case("true") => true,
            Some(v) if v.trim().eq_ignore_ascii_case("false") || v.trim().is_empty() => false,
            Some(v) => {
                warn("OTEL_SDK_DISABLED", &v, "expected true or false; using false".into());
                false
            }
        };
        #[cfg(feature = "process")]
        let process_metrics = {
            use crate::integrations::process::ProcessMetricNames;
            match get("OTEL_LITE_PROCESS_METRICS").map(|v| v.trim().to_ascii_lowercase()) {
                None => Some(ProcessMetricNames::Semconv),
                Some(v) if v.is_empty() || v == "semconv" => Some(ProcessMetricNames::Semconv),
                Some(v) if v == "prometheus" => Some(ProcessMetricNames::Prometheus),
                Some(v) if v == "both" => Some(ProcessMetricNames::Both),
                Some(v) if v == "none" => None,
                Some(v) => {
                    let reason = "expected semconv, prometheus, both or none; using semconv".to_string();
                    warn("OTEL_LITE_PROCESS_METRICS", &v, reason);
                    Some(ProcessMetricNames::Semconv)
                }
            }
        };
        #[cfg(feature = "live")]
        let live = match get("OTEL_LITE_LIVE").map(|v| v.trim().to_ascii_lowercase()) {
            None => LiveMode::Loopback,
            Some(v) if v.is_empty() || v == "on" || v == "true" => LiveMode::Loopback,
            Some(v) if v == "off" || v == "false" => LiveMode::Off,
            Some(v) if v == "remote" => LiveMode::Remote,
            Some(v) => {
                warn("OTEL_LITE_LIVE", &v, "expected on, off or remote; using on (loopback only)".into());
                LiveMode::Loopback
            }
        };
        let (resource, resource_warnings) = Resource::from_env_reporting(&get);
        if !resource_warnings.is_empty() {
            let problems: Vec<String> =
                resource_warnings.iter().map(|w| format!("entry {:?}: {}", w.entry, w.reason)).collect();
            let value = get("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
            warn("OTEL_RESOURCE_ATTRIBUTES", &value, format!("{}; the whole value is discarded", problems.join(", ")));
        }
        let otlp_endpoint_set = ["", "TRACES_", "METRICS_", "LOGS_"]
            .iter()
            .any(|s| get(&format!("OTEL_EXPORTER_OTLP_{s}ENDPOINT")).is_some_and(|v| !v.trim().is_empty()));
        let otlp_default = if otlp_endpoint_set { vec![Exporter::Otlp] } else { Vec::new() };
        let mut metrics_default = vec![Exporter::Prometheus];
        metrics_default.extend(otlp_default.iter().copied());

        let mut w2 = Vec::new();
        let traces = exporters(
            "OTEL_TRACES_EXPORTER",
            get("OTEL_TRACES_EXPORTER"),
            &[("otlp", Exporter::Otlp), ("console", Exporter::Console)],
            otlp_default.clone(),
            &mut w2,
        );
        let metrics = exporters(
            "OTEL_METRICS_EXPORTER",
            get("OTEL_METRICS_EXPORTER"),
            &[("otlp", Exporter::Otlp), ("prometheus", Exporter::Prometheus), ("console", Exporter::Console)],
            metrics_default,
            &mut w2,
        );
        let logs = exporters(
            "OTEL_LOGS_EXPORTER",
            get("OTEL_LOGS_EXPORTER"),
            &[("otlp", Exporter::Otlp), ("console", Exporter::Console)],
            otlp_default,
            &mut w2,
        );
        for w in w2 {
            warn(&w.variable, &w.value, w.reason);
        }

        let propagators = match get("OTEL_PROPAGATORS").filter(|v| !v.trim().is_empty()) {
            None => "tracecontext,baggage".to_string(),
            Some(v) => match Propagators::from_env_value(&v) {
                Ok(_) => v,
                Err(e) => {
                    warn("OTEL_PROPAGATORS", &v, format!("{e}; using tracecontext,baggage"));
                    "tracecontext,baggage".to_string()
                }
            },
        };

        let sampler = match get("OTEL_TRACES_SAMPLER").filter(|v| !v.trim().is_empty()) {
            None => Sampler::default(),
            Some(name) => {
                let arg = get("OTEL_TRACES_SAMPLER_ARG");
                if let Some(a) = &arg {
                    if name.contains("traceidratio") && !a.trim().parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r))
                    {
                        warn("OTEL_TRACES_SAMPLER_ARG", a, "expected a ratio in [0, 1]; using 1.0".into());
                    }
                }
                Sampler::from_env_values(&name, arg.as_deref()).unwrap_or_else(|_| {
                    warn("OTEL_TRACES_SAMPLER", &name, "unknown sampler; using parentbased_always_on".into());
                    Sampler::default()
                })
            }
        };

        // A count or a length; `None` (only as a default) means no limit.
        let mut limit = |var: &str, default: Option<u32>| -> Option<u32> {
            match get(var) {
                None => default,
                Some(v) => v.trim().parse::<u32>().map(Some).unwrap_or_else(|_| {
                    let fallback = default.map_or_else(|| "no limit".to_string(), |d| d.to_string());
                    warn(var, &v, format!("not a count; using {fallback}"));
                    default
                }),
            }
        };
        let general = limit("OTEL_ATTRIBUTE_COUNT_LIMIT", Some(128));
        let general_length = limit("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", None);
        let span_limits = SpanLimits {
            max_attributes: limit("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", general).unwrap_or(128),
            max_events: limit("OTEL_SPAN_EVENT_COUNT_LIMIT", Some(128)).unwrap_or(128),
            max_links: limit("OTEL_SPAN_LINK_COUNT_LIMIT", Some(128)).unwrap_or(128),
            max_attributes_per_event: limit("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", general).unwrap_or(128),
            max_attributes_per_link: limit("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", general).unwrap_or(128),
            max_attribute_value_length: limit("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", general_length),
        };
        let log_limits = LogRecordLimits {
            max_attributes: limit("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", general).unwrap_or(128),
            max_attribute_value_length: limit("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", general_length),
        };

        let mut batch_warnings = Vec::new();
        let mut keep =
            |k: &str, v: &str, why: &str| batch_warnings.push((k.to_string(), v.to_string(), why.to_string()));
        let span_batch = BatchConfig::from_env_with(&get, &mut keep);
        let log_batch = BatchConfig::logs_from_env_with(&get, &mut keep);
        for (k, v, why) in batch_warnings {
            warn(&k, &v, why);
        }

        let mut millis = |var: &str, default: u64| -> Duration {
            match get(var) {
                None => Duration::from_millis(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Duration::from_millis(ms),
                    _ => {
                        warn(var, &v, format!("not a positive number of milliseconds; using {default}"));
                        Duration::from_millis(default)
                    }
                },
            }
        };
        let metric_export_interval = millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000);
        let metric_export_timeout = millis("OTEL_METRIC_EXPORT_TIMEOUT", 30_000);

        let metrics_temporality = match get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE") {
            None => Temporality::Cumulative,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "cumulative" => Temporality::Cumulative,
                "delta" => Temporality::Delta,
                "lowmemory" => Temporality::LowMemory,
                _ => {
                    warn("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", &v, "unknown; using cumulative".into());
                    Temporality::Cumulative
                }
            },
        };

        // Delta export carries no history forward, so an attribute set seen once (a finished
        // job, a rolled-out pod) need not hold its slot for ever. Two intervals: its last
        // delta is exported before it goes.
        let delta_only = metrics_temporality == Temporality::Delta
            && !metrics.is_empty()
            && metrics.iter().all(|e| matches!(e, Exporter::Otlp));
        let metric_evict_idle = delta_only.then(|| metric_export_interval.saturating_mul(2));

        // Read as the endpoint's own `from_env` reads them.
        #[cfg(feature = "prometheus")]
        let (prometheus_host, prometheus_port) = {
            let address = crate::prometheus::EnvAddress::from_env_with(&get);
            if let Some(v) = &address.invalid_port {
                warn("OTEL_EXPORTER_PROMETHEUS_PORT", v, format!("not a port number; using {}", address.port));
            }
            (address.host, address.port)
        };
        // Without the endpoint compiled in, nothing binds them.
        #[cfg(not(feature = "prometheus"))]
        let (prometheus_host, prometheus_port) = (String::from("localhost"), 9464);

        // Kept for the OTLP exporters, which read their own variables.
        let env: Vec<(String, String)> = [
            "ENDPOINT",
            "PROTOCOL",
            "HEADERS",
            "COMPRESSION",
            "TIMEOUT",
            "CERTIFICATE",
            "CLIENT_CERTIFICATE",
            "CLIENT_KEY",
        ]
        .iter()
        .flat_map(|s| {
            ["", "TRACES_", "METRICS_", "LOGS_"].into_iter().map(move |sig| format!("OTEL_EXPORTER_OTLP_{sig}{s}"))
        })
        .filter_map(|k| get(&k).map(|v| (k, v)))
        .collect();
        // Resolved now, once for the three signals, so that a bad shared variable is one
        // warning, printed with the others.
        #[cfg(feature = "otlp")]
        for signal in [crate::otlp::Signal::Traces, crate::otlp::Signal::Metrics, crate::otlp::Signal::Logs] {
            let (_, found) = crate::otlp::SignalConfig::from_env_with(signal, |k| lookup(&env, k));
            for w in found {
                if !warnings.iter().any(|e| e.variable == w.variable && e.value == w.value) {
                    warnings.push(EnvWarning { variable: w.variable, value: w.value, reason: w.reason.into() });
                }
            }
        }

        let build_info =
            resource.attributes().get("service.version").map(|v| crate::metrics::BuildInfo::new(v.to_string()));
        Config {
            disabled,
            resource,
            traces,
            metrics,
            logs,
            propagators,
            sampler,
            span_limits,
            log_limits,
            span_batch,
            log_batch,
            metric_export_interval,
            metric_export_timeout,
            metrics_temporality,
            metric_evict_idle,
            prometheus_host,
            prometheus_port,
            warnings,
            install_bridges: true,
            #[cfg(feature = "process")]
            process_metrics,
            build_info,
            #[cfg(feature = "live")]
            live,
            #[cfg(feature = "live")]
            live_config: crate::live::LiveConfig::default(),
            env,
            additions: Additions::default(),
        }
    }

    /// Publishes `build_info{version, commit, branch, language, service_name} 1` for this
    /// build: `config.with_build_info(otel_lite::build_info!())`.
    pub fn with_build_info(mut self, info: crate::metrics::BuildInfo) -> Self {
        self.build_info = Some(info);
        self
    }

    /// Adds a span exporter of your own next to those the environment chose. Its spans
    /// are batched as `OTEL_BSP_*` says.
    pub fn with_span_exporter(self, exporter: impl SpanExporter) -> Self {
        if let Ok(mut list) = self.additions.span_exporters.lock() {
            list.push(Box::new(exporter));
        }
        self
    }

    /// Adjusts the OTLP exporter settings of each signal after the environment is read:
    /// what `adjust` sets (endpoint, protocol, headers, compression, timeout, TLS files)
    /// wins over the `OTEL_EXPORTER_OTLP_*` variables.
    ///
    /// ```
    /// use otel_lite::otlp::Signal;
    /// let config = otel_lite::Config::from_env_with(|k| {
    ///     (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://from-env:4318".to_string())
    /// })
    /// .with_otlp(|signal, c| {
    ///     *c = c.clone().with_base_endpoint("http://from-code:4318", signal);
    ///     c.headers.push(("x-api-key".into(), "secret".into()));
    /// });
    /// assert_eq!(config.otlp_config(Signal::Logs).url, "http://from-code:4318/v1/logs");
    /// ```
    #[cfg(feature = "otlp")]
    pub fn with_otlp(
        mut self,
        adjust: impl Fn(crate::otlp::Signal, &mut crate::otlp::SignalConfig) + Send + Sync + 'static,
    ) -> Self {
        self.additions.otlp = Some(Arc::new(adjust));
        self
    }

    /// Installs the pipelines this configuration describes.
    pub fn install(self) -> Result<Telemetry, InitError> {
        for w in &self.warnings {
            eprintln!("otel-lite: {w}");
        }
        let mut telemetry = Telemetry::default();
        if self.disabled {
            return Ok(telemetry);
        }
        // Once per process: a second install would find the globals set (or, with traces
        // off, silently add a second set of pipelines).
        static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        // Relaxed: a flag guarding itself; the globals it protects synchronise on their own.
        if INSTALLED.swap(true, std::sync::atomic::Ordering::Relaxed) || global::tracer_provider().is_some() {
            return Err(InitError::AlreadyInitialized);
        }
        // The global registry describes this resource too (Prometheus `target_info`), unless
        // something registered an instrument before `init` and so created it already.
        let mut configured = otel_lite_core::Registry::builder().resource(self.resource.clone());
        if let Some(max_idle) = self.metric_evict_idle {
            configured = configured.evict_idle_series(max_idle);
        }
        let configured = configured.build();
        if global::set_registry(configured).is_err() && global::registry().resource() != &self.resource {
            eprintln!(
                "otel-lite: instruments were registered before init; the global registry keeps the resource it \
                 was created with ({}) instead of the configured one",
                global::registry().resource().service_name()
            );
        }
        let registry = global::registry().clone();
        // The live page: served by the Prometheus endpoint, so only with it.
        #[cfg(feature = "live")]
        let live = (self.live != LiveMode::Off && self.metrics.contains(&Exporter::Prometheus)).then(|| {
            let config = self.live_config.clone().allow_remote(self.live == LiveMode::Remote);
            crate::live::LiveView::new(registry.clone(), config)
        });
        // The first span and log exporters get a tee that shows their batches to the page
        // (on their worker threads); see `add_span_exporter`.
        #[cfg(feature = "live")]
        let (mut span_tee, mut log_tee) = (live.clone(), live.clone());
        #[cfg(not(feature = "live"))]
        #[allow(unused_mut, unused_variables)] // used by the exporters compiled in
        let (mut span_tee, mut log_tee) = (NoTee, NoTee);

        // Traces.
        let mut tracing = TracerProvider::builder()
            .sampler(self.sampler.clone())
            .span_limits(self.span_limits)
            .resource(self.resource.clone());
        for e in &self.traces {
            match e {
                #[cfg(feature = "otlp")]
                Exporter::Otlp => {
                    let exporter = crate::otlp::OtlpSpanExporter::new(self.otlp_config(crate::otlp::Signal::Traces))
                        .map_err(|source| InitError::Otlp { signal: crate::otlp::Signal::Traces, source })?;
                    exporter.register_self_metrics(&registry).map_err(InitError::SelfMetrics)?;
                    tracing = add_span_exporter(tracing, exporter, &self.span_batch, &mut span_tee);
                }
                #[cfg(feature = "stdout")]
                Exporter::Console => {
                    let exporter = crate::stdout::StdoutSpanExporter::new();
                    tracing = add_span_exporter(tracing, exporter, &self.span_batch, &mut span_tee);
                }
                other => eprintln!("otel-lite: trace exporter {other:?} is not compiled in (enable its cargo feature)"),
            }
        }
        let added = self.additions.span_exporters.lock().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default();
        #[allow(unused_mut)] // the live page's tee may turn traces on
        let mut traces_on = !self.traces.is_empty() || !added.is_empty();
        for exporter in added {
            tracing = add_span_exporter(tracing, exporter, &self.span_batch, &mut span_tee);
        }
        // The page alone: its spans go nowhere else.
        #[cfg(feature = "live")]
        if let Some(view) = span_tee.take() {
            tracing = tracing.with_batch_exporter(view.span_tee(crate::live::Discard), self.span_batch.clone());
            traces_on = true;
        }
        // With no trace exporter, traces stay off: no provider is installed, so spans cost
        // nothing (`#[instrument]` keeps its metrics; incoming contexts still propagate).
        if traces_on {
            let provider = tracing.build();
            registry.register_pipeline_health(&provider).map_err(InitError::SelfMetrics)?;
            global::set_tracer_provider(provider.clone()).map_err(|_| InitError::AlreadyInitialized)?;
            telemetry.tracer_provider = Some(provider);
        }
        if let Ok(p) = Propagators::from_env_value(&self.propagators) {
            // Only fails if a propagator was installed before; keep that one.
            let _ = global::set_propagator(p);
        }

        // Logs.
        #[allow(unused_mut)]
        let mut logging = LoggerProvider::builder().resource(self.resource.clone()).limits(self.log_limits);
        for e in &self.logs {
            match e {
                #[cfg(feature = "otlp")]
                Exporter::Otlp => {
                    let exporter = crate::otlp::OtlpLogExporter::new(self.otlp_config(crate::otlp::Signal::Logs))
                        .map_err(|source| InitError::Otlp { signal: crate::otlp::Signal::Logs, source })?;
                    exporter.register_self_metrics(&registry).map_err(InitError::SelfMetrics)?;
                    logging = add_log_exporter(logging, exporter, &self.log_batch, &mut log_tee);
                }
                #[cfg(feature = "stdout")]
                Exporter::Console => {
                    let exporter = crate::stdout::StdoutLogExporter::new();
                    logging = add_log_exporter(logging, exporter, &self.log_batch, &mut log_tee);
                }
                other => eprintln!("otel-lite: log exporter {other:?} is not compiled in (enable its cargo feature)"),
            }
        }
        #[allow(unused_mut)]
        let mut logs_on = !self.logs.is_empty();
        #[cfg(feature = "live")]
        if let Some(view) = log_tee.take() {
            logging = logging.with_batch_exporter(view.log_tee(crate::live::Discard), self.log_batch.clone());
            logs_on = true;
        }
        // Likewise, logs stay off without an exporter.
        if logs_on {
            let logger_provider = logging.build();
            registry.register_pipeline_health(&logger_provider).map_err(InitError::SelfMetrics)?;
            // Only fails if one was installed by hand before; keep that one.
            let _ = global::set_logger_provider(logger_provider.clone());
            telemetry.logger_provider = Some(logger_provider);
        }

        // Metrics.
        for e in &self.metrics {
            match e {
                #[cfg(feature = "prometheus")]
                Exporter::Prometheus => {
                    let server = crate::prometheus::PrometheusServer::builder(registry.clone())
                        .host(self.prometheus_host.clone())
                        .port(self.prometheus_port);
                    #[cfg(feature = "live")]
                    let server = match &live {
                        Some(view) => server.live(view.clone()),
                        None => server,
                    };
                    let server = server.start().map_err(InitError::Prometheus)?;
                    #[cfg(feature = "live")]
                    {
                        telemetry.live = live.is_some().then_some(self.live);
                    }
                    telemetry.prometheus = Some(server);
                }
                #[cfg(feature = "otlp")]
                Exporter::Otlp => {
                    let temporality = self.metrics_temporality;
                    let exporter = crate::otlp::OtlpMetricExporter::new(self.otlp_metrics_config(), temporality)
                        .map_err(|source| InitError::Otlp { signal: crate::otlp::Signal::Metrics, source })?;
                    exporter.register_self_metrics(&registry).map_err(InitError::SelfMetrics)?;
                    let reader =
                        crate::otlp::PeriodicReader::start(registry.clone(), exporter, self.metric_export_interval)
                            .map_err(InitError::MetricReader)?;
                    telemetry.readers.push(reader);
                }
                #[cfg(feature = "stdout")]
                Exporter::Console => {
                    let exporter = crate::stdout::StdoutMetricExporter::new();
                    let reader = otel_lite_core::metrics::PeriodicReader::start(
                        registry.clone(),
                        exporter,
                        self.metric_export_interval,
                    )
                    .map_err(InitError::MetricReader)?;
                    telemetry.readers.push(reader);
                }
                // Unreachable only when every exporter feature is on.
                #[allow(unreachable_patterns)]
                other => {
                    eprintln!("otel-lite: metric exporter {other:?} is not compiled in (enable its cargo feature)")
                }
            }
        }

        // Last, so that a failed install leaves no bridge behind; they route into the
        // global providers and registry set above.
        #[cfg(feature = "process")]
        if let Some(names) = self.process_metrics {
            let process = crate::integrations::process::ProcessMetrics::builder()
                .names(names)
                .register(&registry)
                .map_err(InitError::ProcessMetrics)?;
            telemetry.process = Some(process);
        }
        if let Some(info) = &self.build_info {
            info.register(&registry).map_err(InitError::BuildInfo)?;
        }
        if self.install_bridges {
            install_bridges(&registry);
        }
        Ok(telemetry)
    }

    /// The metrics signal's OTLP settings: one export may take no longer than
    /// `OTEL_METRIC_EXPORT_TIMEOUT` either.
    #[cfg(feature = "otlp")]
    fn otlp_metrics_config(&self) -> crate::otlp::SignalConfig {
        let mut config = self.otlp_config(crate::otlp::Signal::Metrics);
        config.timeout = config.timeout.min(self.metric_export_timeout);
        config
    }

    /// The OTLP exporter settings `install` uses for `signal`: the variables, then what
    /// [`Config::with_otlp`] adjusts.
    #[cfg(feature = "otlp")]
    pub fn otlp_config(&self, signal: crate::otlp::Signal) -> crate::otlp::SignalConfig {
        // Its warnings were collected into `warnings` by `from_env_with`.
        let mut config = crate::otlp::SignalConfig::from_env_with(signal, |k| lookup(&self.env, k)).0;
        if let Some(adjust) = &self.additions.otlp {
            adjust(signal, &mut config);
        }
        config
    }
}

/// Routes the `metrics`, `log` and `tracing` crates (those whose feature is on) into the
/// global registry and providers. One of them already taken by the application is kept,
/// with a warning: the crates allow one per process, and taking it over is not possible.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
/// The live page's tee for the next exporter, taken by the first one; without the `live`
/// feature there is none.
#[cfg(feature = "live")]
type Tee = Option<crate::live::LiveView>;
#[cfg(not(feature = "live"))]
type Tee = NoTee;

/// No live page (the `live` feature is off).
#[cfg(not(feature = "live"))]
struct NoTee;

/// Adds a batched span exporter; the first one added while the live page is on goes
/// through its tee, so the page sees what that exporter exports, on its worker thread.
/// One exporter is enough: every exporter gets every span.
fn add_span_exporter(
    builder: otel_lite_core::trace::TracerProviderBuilder,
    exporter: impl SpanExporter,
    batch: &BatchConfig,
    _tee: &mut Tee,
) -> otel_lite_core::trace::TracerProviderBuilder {
    #[cfg(feature = "live")]
    if let Some(view) = _tee.take() {
        return builder.with_batch_exporter(view.span_tee(exporter), batch.clone());
    }
    builder.with_batch_exporter(exporter, batch.clone())
}

/// [`add_span_exporter`] for log exporters.
#[cfg(any(feature = "otlp", feature = "stdout"))]
fn add_log_exporter(
    builder: otel_lite_core::logs::LoggerProviderBuilder,
    exporter: impl otel_lite_core::logs::LogExporter,
    batch: &BatchConfig,
    _tee: &mut Tee,
) -> otel_lite_core::logs::LoggerProviderBuilder {
    #[cfg(feature = "live")]
    if let Some(view) = _tee.take() {
        return builder.with_batch_exporter(view.log_tee(exporter), batch.clone());
    }
    builder.with_batch_exporter(exporter, batch.clone())
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
fn install_bridges(registry: &otel_lite_core::Registry) {
    #[cfg(feature = "metrics")]
    if crate::integrations::metrics::OtelLiteRecorder::builder(registry).install().is_err() {
        eprintln!(
            "otel-lite: a `metrics` recorder is already installed; keeping it (the `metrics` macros do not reach \
             otel-lite; set Config::install_bridges = false to skip this step)"
        );
    }
    // `log` records go to the log bridge directly: it stamps them with the current span
    // (a `tracing` span too, whose context the layer enters). Not through `tracing-log`'s
    // `LogTracer`, which would take the same single `log` slot for a longer way round.
    #[cfg(feature = "log")]
    if crate::integrations::log::OtelLiteLogger::global().install().is_err() {
        eprintln!(
            "otel-lite: a `log` logger is already installed; keeping it (`log` records do not reach otel-lite; set \
             Config::install_bridges = false to skip this step)"
        );
    }
    #[cfg(feature = "tracing")]
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        // INFO, like the `log` bridge: libraries' DEBUG and TRACE spans (per poll, per
        // frame) would otherwise each become an exported span.
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(crate::integrations::tracing::layer());
        // Tried rather than checked with `dispatcher::has_been_set`, which also counts a
        // scoped default (`with_default`) that has since ended.
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            eprintln!(
                "otel-lite: a global `tracing` subscriber is already set; keeping it (add \
                 otel_lite::integrations::tracing::layer() to it for its spans and events to reach otel-lite; set \
                 Config::install_bridges = false to skip this step)"
            );
        }
    }
}

/// The value of `name` among the kept `OTEL_EXPORTER_OTLP_*` variables.
#[cfg(feature = "otlp")]
fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

/// Why `init` failed. Each variant keeps the error it wraps ([`std::error::Error::source`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum InitError {
    /// A tracer provider is already installed (a second `init`).
    AlreadyInitialized,
    /// An OTLP exporter could not be built from its configuration (its endpoint, say).
    #[cfg(feature = "otlp")]
    Otlp {
        /// The signal whose exporter failed.
        signal: crate::otlp::Signal,
        /// Why.
        source: crate::otlp::OtlpError,
    },
    /// The Prometheus endpoint could not start (its address is taken, say).
    #[cfg(feature = "prometheus")]
    Prometheus(crate::prometheus::ServeError),
    /// The thread of a periodic metric reader could not start.
    MetricReader(std::io::Error),
    /// A self-metric of an exporter or pipeline clashes with an instrument registered
    /// before `init` under the same name.
    SelfMetrics(otel_lite_core::RegistrationError),
    /// A process metric clashes with an instrument registered before `init`.
    #[cfg(feature = "process")]
    ProcessMetrics(otel_lite_core::RegistrationError),
    /// `build_info` clashes with an instrument registered before `init`.
    BuildInfo(otel_lite_core::RegistrationError),
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitError::AlreadyInitialized => f.write_str("otel-lite is already initialised"),
            #[cfg(feature = "otlp")]
            InitError::Otlp { signal, .. } => write!(f, "cannot start the OTLP exporter of {signal:?}"),
            #[cfg(feature = "prometheus")]
            InitError::Prometheus(_) => f.write_str("cannot start the Prometheus endpoint"),
            InitError::MetricReader(_) => f.write_str("cannot start a periodic metric reader"),
            InitError::SelfMetrics(_) => f.write_str("cannot register otel-lite's self-metrics"),
            #[cfg(feature = "process")]
            InitError::ProcessMetrics(_) => f.write_str("cannot register the process metrics"),
            InitError::BuildInfo(_) => f.write_str("cannot register build_info"),
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InitError::AlreadyInitialized => None,
            #[cfg(feature = "otlp")]
            InitError::Otlp { source, .. } => Some(source),
            #[cfg(feature = "prometheus")]
            InitError::Prometheus(source) => Some(source),
            InitError::MetricReader(source) => Some(source),
            InitError::SelfMetrics(source) => Some(source),
            #[cfg(feature = "process")]
            InitError::ProcessMetrics(source) => Some(source),
            InitError::BuildInfo(source) => Some(source),
        }
    }
}

/// How long [`Telemetry::shutdown`] (or dropping the guard) waits for the pipelines to flush,
/// all signals together: they flush in parallel, and an exporter still sending at the
/// deadline finishes on its own thread without holding the application up.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The running pipelines. Dropping it (or [`Telemetry::shutdown`]) flushes and stops them
/// within [`SHUTDOWN_TIMEOUT`] in all.
#[derive(Default)]
#[must_use = "dropping the guard shuts telemetry down"]
pub struct Telemetry {
    tracer_provider: Option<TracerProvider>,
    logger_provider: Option<LoggerProvider>,
    #[cfg(feature = "prometheus")]
    prometheus: Option<crate::prometheus::PrometheusServer>,
    /// For whom the Prometheus endpoint serves the live page, if it does.
    #[cfg(feature = "live")]
    live: Option<LiveMode>,
    /// The OTLP and console metric readers.
    readers: Vec<otel_lite_core::metrics::PeriodicReader>,
    /// The process metrics' registration, kept for the life of the telemetry.
    #[cfg(feature = "process")]
    process: Option<crate::integrations::process::ProcessMetrics>,
}

impl Telemetry {
    /// The tracer provider, if traces are on (some trace exporter is configured).
    pub fn tracer_provider(&self) -> Option<&TracerProvider> {
        self.tracer_provider.as_ref()
    }

    /// The logger provider, if logs are on (some log exporter is configured).
    pub fn logger_provider(&self) -> Option<&LoggerProvider> {
        self.logger_provider.as_ref()
    }

    /// The Prometheus endpoint's address, if it runs.
    #[cfg(feature = "prometheus")]
    pub fn prometheus_addr(&self) -> Option<std::net::SocketAddr> {
        self.prometheus.as_ref().map(|s| s.local_addr())
    }

    /// The live page's address (`http://127.0.0.1:9464/live`), if it is served and can be
    /// opened: an endpoint bound to every interface is given by its loopback address; one
    /// bound to another machine-facing address gives `None` unless the page is open to
    /// remote peers (`OTEL_LITE_LIVE=remote`), since by default it answers loopback only.
    #[cfg(feature = "live")]
    pub fn live_url(&self) -> Option<String> {
        let mode = self.live?;
        let addr = self.prometheus_addr()?;
        let ip = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip if ip.is_loopback() || mode == LiveMode::Remote => ip,
            _ => return None,
        };
        Some(format!("http://{}/live", std::net::SocketAddr::new(ip, addr.port())))
    }

    /// Flushes every pipeline and stops its threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Stops every signal at once, each flushing within the one shutdown deadline
    /// ([`SHUTDOWN_TIMEOUT`]), so a slow or unreachable collector costs that long in all,
    /// not that long per signal.
    fn stop(&mut self) {
        let (traces, logs) = (self.tracer_provider.take(), self.logger_provider.take());
        let readers: Vec<_> = self.readers.drain(..).collect();
        std::thread::scope(|s| {
            if let Some(p) = &traces {
                s.spawn(move || p.shutdown(SHUTDOWN_TIMEOUT));
            }
            if let Some(p) = &logs {
                s.spawn(move || p.shutdown(SHUTDOWN_TIMEOUT));
            }
            for r in readers {
                s.spawn(move || r.shutdown(SHUTDOWN_TIMEOUT));
            }
            // The endpoint lets scrapes in progress finish for up to a second.
            #[cfg(feature = "prometheus")]
            if let Some(server) = self.prometheus.take() {
                s.spawn(move || server.shutdown());
            }
        });
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sets everything up from the `OTEL_*` environment variables. Call once, early in
/// `main`, and keep the guard until the end.
///
/// Every variable is read by [`Config::from_env_with`], a pure function that tests can
/// drive with a map; an invalid value produces one warning naming the variable and the
/// value, and the default is used.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `OTEL_SDK_DISABLED` | `false` | `true`: install nothing |
/// | `OTEL_LITE_LIVE` | `on` | the live page at `/live` on the Prometheus endpoint (feature `live`): `on` for loopback peers, `remote` for any peer, `off`; when on, spans and log records are recorded for the page even without an exporter |
/// | `OTEL_LITE_PROCESS_METRICS` | `semconv` | process metrics (feature `process`): `semconv` names, the classic `prometheus` names (`process_cpu_seconds_total`, ...), `both`, or `none` |
/// | `OTEL_SERVICE_NAME` | `unknown_service:<exe>` | `service.name` of the resource; wins over `OTEL_RESOURCE_ATTRIBUTES` |
/// | `OTEL_RESOURCE_ATTRIBUTES` | empty | `key=value,...`, percent-decoded; a malformed entry discards the whole value (one warning) |
/// | `OTEL_TRACES_EXPORTER` | `otlp` if an OTLP endpoint is set, else `none` | comma list of `otlp`, `console`, `none` |
/// | `OTEL_METRICS_EXPORTER` | `prometheus`, plus `otlp` if an OTLP endpoint is set | comma list of `otlp`, `prometheus`, `console`, `none` |
/// | `OTEL_LOGS_EXPORTER` | `otlp` if an OTLP endpoint is set, else `none` | comma list of `otlp`, `console`, `none` |
/// | `OTEL_PROPAGATORS` | `tracecontext,baggage` | `tracecontext`, `baggage`, `b3`, `b3multi`, `none` |
/// | `OTEL_TRACES_SAMPLER` | `parentbased_always_on` | `always_on`, `always_off`, `traceidratio`, `parentbased_*` (see [`Sampler`]) |
/// | `OTEL_TRACES_SAMPLER_ARG` | `1.0` | the ratio of the `*traceidratio` samplers |
/// | `OTEL_BSP_MAX_QUEUE_SIZE` | 2048 | spans queued for export |
/// | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | 512 | spans per export |
/// | `OTEL_BSP_SCHEDULE_DELAY` | 5000 ms | the longest a span waits for its batch |
/// | `OTEL_BSP_EXPORT_TIMEOUT` | 30000 ms | the longest one export may take |
/// | `OTEL_BLRP_MAX_QUEUE_SIZE` | 2048 | log records queued for export |
/// | `OTEL_BLRP_MAX_EXPORT_BATCH_SIZE` | 512 | log records per export |
/// | `OTEL_BLRP_SCHEDULE_DELAY` | 1000 ms | the longest a log record waits for its batch |
/// | `OTEL_BLRP_EXPORT_TIMEOUT` | 30000 ms | the longest one export may take |
/// | `OTEL_METRIC_EXPORT_INTERVAL` | 60000 ms | the OTLP and console periodic readers' interval |
/// | `OTEL_METRIC_EXPORT_TIMEOUT` | 30000 ms | caps the OTLP metric exporter's timeout |
/// | `OTEL_EXPORTER_OTLP_ENDPOINT` | `http://localhost:4318` (gRPC: `http://localhost:4317`) | base URL; `/v1/traces`, `/v1/metrics`, `/v1/logs` are appended over HTTP |
/// | `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT` | the base endpoint | full URL for one signal, used as is |
/// | `OTEL_EXPORTER_OTLP_PROTOCOL` (and per signal) | `http/protobuf` | `http/protobuf`, `http/json`, `grpc` (feature `otlp-grpc`) |
/// | `OTEL_EXPORTER_OTLP_HEADERS` (and per signal) | none | `key=value,...`, percent-decoded |
/// | `OTEL_EXPORTER_OTLP_COMPRESSION` (and per signal) | `none` | `gzip` or `none` |
/// | `OTEL_EXPORTER_OTLP_TIMEOUT` (and per signal) | 10000 ms | the longest one export may take, retries included |
/// | `OTEL_EXPORTER_OTLP_CERTIFICATE` (and per signal) | the system's roots | CA file (PEM) for `https://` endpoints (feature `otlp-tls`) |
/// | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `_CLIENT_KEY` (and per signal) | none | client certificate and key (PEM) for mutual TLS |
/// | `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | `cumulative` | `cumulative`, `delta`, `lowmemory`; with `delta` and OTLP the only metrics exporter, series idle for two intervals are evicted ([`Config::metric_evict_idle`]) |
/// | `OTEL_EXPORTER_PROMETHEUS_HOST` | `localhost` | host the `/metrics` endpoint binds |
/// | `OTEL_EXPORTER_PROMETHEUS_PORT` | 9464 | port the `/metrics` endpoint binds (`0`: a free one) |
/// | `OTEL_ATTRIBUTE_COUNT_LIMIT` | 128 | default for the attribute count limits below |
/// | `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT` | `OTEL_ATTRIBUTE_COUNT_LIMIT` | attributes per span |
/// | `OTEL_SPAN_EVENT_COUNT_LIMIT` | 128 | events per span |
/// | `OTEL_SPAN_LINK_COUNT_LIMIT` | 128 | links per span |
/// | `OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT` | `OTEL_ATTRIBUTE_COUNT_LIMIT` | attributes per span event |
/// | `OTEL_LINK_ATTRIBUTE_COUNT_LIMIT` | `OTEL_ATTRIBUTE_COUNT_LIMIT` | attributes per span link |
/// | `OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT` | `OTEL_ATTRIBUTE_COUNT_LIMIT` | attributes per log record |
/// | `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` | no limit | characters a string attribute value keeps (longer ones are cut) |
/// | `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT` | `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` | the same, for span, event and link attributes |
/// | `OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT` | `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` | the same, for log record attributes |
///
/// otel-lite differs from the specification's defaults in one way, on purpose: with no
/// OTLP endpoint configured, it does not send to `localhost:4318` (where usually nothing
/// listens) but serves metrics on the Prometheus endpoint and keeps traces and logs off.
///
/// ```no_run
/// let telemetry = otel_lite::init()?;
/// // ... the application ...
/// telemetry.shutdown();
/// # Ok::<(), otel_lite::InitError>(())
/// ```
///
/// # Bridges
///
/// With the features `tracing`, `metrics` and `log`, `init` also routes those crates into
/// what it installed, so an application instrumented only with them needs no other setup
/// (`examples/tracing_bridge.rs`):
///
/// | feature | what `init` installs |
/// |---|---|
/// | `metrics` | `integrations::metrics::OtelLiteRecorder` over the global registry, as the `metrics` global recorder |
/// | `log` | `integrations::log::OtelLiteLogger::global()` as the `log` logger, passing `INFO` and above |
/// | `tracing` | `tracing_subscriber::registry()` with an `INFO` level filter and `integrations::tracing::layer()`, as the global default subscriber |
///
/// Each crate allows one global recorder, logger or subscriber per process. One the
/// application installed before `init` is kept, with a warning on stderr (`otel-lite: ...`);
/// one it installs after `init` fails (and `tracing_subscriber`'s and `env_logger`'s
/// `init()` panic), so install yours first, or compose the bridges into your own
/// (`integrations::tracing::layer()` in your subscriber, say) and set
/// [`Config::install_bridges`] to `false`:
///
/// ```no_run
/// let mut config = otel_lite::Config::from_env();
/// config.install_bridges = false;
/// let telemetry = config.install()?;
/// # Ok::<(), otel_lite::InitError>(())
/// ```
///
/// With both `tracing` and `log`, `log` records go to the `log` bridge directly (no
/// `tracing-log`), still stamped with the `tracing` span they were logged in. With
/// `tracing` alone, `log` records are not captured: turn on `log` too. Spans reach an
/// exporter only when traces are on, and events and `log` records become log records only
/// when logs are on (an OTLP endpoint, or `OTEL_TRACES_EXPORTER` / `OTEL_LOGS_EXPORTER`).
/// `OTEL_SDK_DISABLED=true` installs no bridge either.
pub fn init() -> Result<Telemetry, InitError> {
    Config::from_env().install()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_env_with(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
    }

    fn warned(c: &Config, var: &str) -> bool {
        c.warnings.iter().any(|w| w.variable == var)
    }

    #[cfg(feature = "process")]
    #[test]
    fn process_metrics_are_on_with_semconv_names_unless_the_variable_says_otherwise() {
        use crate::integrations::process::ProcessMetricNames;
        assert_eq!(config(&[]).process_metrics, Some(ProcessMetricNames::Semconv));
        let named = |v: &str| config(&[("OTEL_LITE_PROCESS_METRICS", v)]).process_metrics;
        assert_eq!(named("prometheus"), Some(ProcessMetricNames::Prometheus));
        assert_eq!(named(" Both "), Some(ProcessMetricNames::Both));
        assert_eq!(named("none"), None);
        let c = config(&[("OTEL_LITE_PROCESS_METRICS", "classic")]);
        assert_eq!(c.process_metrics, Some(ProcessMetricNames::Semconv));
        assert!(warned(&c, "OTEL_LITE_PROCESS_METRICS"));
    }

    #[cfg(feature = "live")]
    #[test]
    fn the_live_page_is_on_for_loopback_unless_the_variable_says_otherwise() {
        assert_eq!(config(&[]).live, LiveMode::Loopback);
        let mode = |v: &str| config(&[("OTEL_LITE_LIVE", v)]).live;
        assert_eq!(mode("ON"), LiveMode::Loopback);
        assert_eq!(mode(" off "), LiveMode::Off);
        assert_eq!(mode("false"), LiveMode::Off);
        assert_eq!(mode("remote"), LiveMode::Remote);
        let c = config(&[("OTEL_LITE_LIVE", "everyone")]);
        assert_eq!(c.live, LiveMode::Loopback, "an unknown value does not open the page to the network");
        assert!(warned(&c, "OTEL_LITE_LIVE"));
    }

    #[test]
    fn defaults_without_a_collector() {
        let c = config(&[]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(!c.disabled);
        assert_eq!(
            (c.traces.as_slice(), c.metrics.as_slice(), c.logs.as_slice()),
            (&[][..], &[Exporter::Prometheus][..], &[][..])
        );
        assert_eq!(c.propagators, "tracecontext,baggage");
        assert_eq!(c.sampler, Sampler::default());
        assert_eq!(c.span_limits, SpanLimits::default());
        assert_eq!((c.prometheus_host.as_str(), c.prometheus_port), ("localhost", 9464));
        assert_eq!(c.metric_export_interval, Duration::from_secs(60));
        assert_eq!(c.metric_export_timeout, Duration::from_secs(30));
        assert_eq!(c.metrics_temporality, Temporality::Cumulative);
    }

    #[test]
    fn an_otlp_endpoint_turns_otlp_on() {
        for var in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] {
            let c = config(&[(var, "http://collector:4318")]);
            assert_eq!(c.traces, vec![Exporter::Otlp], "{var}");
            assert_eq!(c.metrics, vec![Exporter::Prometheus, Exporter::Otlp]);
            assert_eq!(c.logs, vec![Exporter::Otlp]);
        }
    }

    #[test]
    fn sdk_disabled() {
        assert!(config(&[("OTEL_SDK_DISABLED", "true")]).disabled);
        assert!(config(&[("OTEL_SDK_DISABLED", "TRUE")]).disabled);
        let c = config(&[("OTEL_SDK_DISABLED", "Yes")]);
        assert!(!c.disabled && warned(&c, "OTEL_SDK_DISABLED"));
        assert_eq!(c.warnings[0].value, "Yes", "the warning shows the value as it was set");
    }

    #[test]
    fn service_name_and_resource_attributes() {
        let c = config(&[("OTEL_SERVICE_NAME", "api"), ("OTEL_RESOURCE_ATTRIBUTES", "team=core,region=eu%2D1")]);
        assert_eq!(c.resource.service_name(), "api");
        assert_eq!(c.resource.attributes().get("team").unwrap().to_string(), "core");
        assert_eq!(c.resource.attributes().get("region").unwrap().to_string(), "eu-1");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = config(&[("OTEL_SERVICE_NAME", "api"), ("OTEL_RESOURCE_ATTRIBUTES", "team=core,broken")]);
        assert_eq!(c.resource.service_name(), "api");
        assert!(c.resource.attributes().get("team").is_none(), "a malformed value is discarded whole");
        assert_eq!(c.warnings.len(), 1, "one warning: {:?}", c.warnings);
        assert_eq!(
            (c.warnings[0].variable.as_str(), c.warnings[0].value.as_str()),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=core,broken")
        );
        assert!(c.warnings[0].reason.contains("\"broken\""), "{}", c.warnings[0].reason);
    }

    #[test]
    fn exporter_selection() {
        let c = config(&[
            ("OTEL_TRACES_EXPORTER", "console"),
            ("OTEL_METRICS_EXPORTER", "otlp,prometheus,otlp"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ]);
        assert_eq!(c.traces, vec![Exporter::Console]);
        assert_eq!(c.metrics, vec![Exporter::Otlp, Exporter::Prometheus]);
        assert!(c.logs.is_empty());
        let c = config(&[("OTEL_TRACES_EXPORTER", "zipkin,otlp")]);
        assert_eq!(c.traces, vec![Exporter::Otlp]);
        assert!(warned(&c, "OTEL_TRACES_EXPORTER"));
        let c = config(&[("OTEL_METRICS_EXPORTER", "prometheus,none")]);
        assert!(c.metrics.is_empty(), "none wins");
        // Enum values are case-insensitive.
        let c = config(&[
            ("OTEL_TRACES_EXPORTER", "Console"),
            ("OTEL_METRICS_EXPORTER", "OTLP,Prometheus"),
            ("OTEL_LOGS_EXPORTER", "None"),
        ]);
        assert_eq!((c.traces, c.metrics), (vec![Exporter::Console], vec![Exporter::Otlp, Exporter::Prometheus]));
        assert!(c.logs.is_empty() && c.warnings.is_empty(), "{:?}", c.warnings);
        let c = config(&[("OTEL_TRACES_EXPORTER", "zipkin,jaeger"), ("OTEL_METRICS_EXPORTER", "statsd")]);
        assert_eq!(c.traces, Vec::<Exporter>::new(), "unknown only: the default (no collector: none)");
        assert_eq!(c.metrics, vec![Exporter::Prometheus], "unknown only: the default");
        assert_eq!(c.warnings.len(), 2, "one warning per variable: {:?}", c.warnings);
        let c = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"), ("OTEL_TRACES_EXPORTER", "zipkin")]);
        assert_eq!(c.traces, vec![Exporter::Otlp], "unknown only: the default with a collector");
    }

    #[test]
    fn propagators_and_sampler() {
        assert_eq!(config(&[("OTEL_PROPAGATORS", "b3multi")]).propagators, "b3multi");
        // Enum values are case-insensitive.
        let c = config(&[("OTEL_PROPAGATORS", "TraceContext,B3"), ("OTEL_TRACES_SAMPLER", "ALWAYS_OFF")]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.sampler, Sampler::AlwaysOff);
        let c = config(&[("OTEL_PROPAGATORS", "xray")]);
        assert_eq!(c.propagators, "tracecontext,baggage");
        assert!(warned(&c, "OTEL_PROPAGATORS"));
        let c = config(&[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.1")]);
        assert_eq!(c.sampler, Sampler::TraceIdRatio(0.1));
        let c = config(&[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "2")]);
        assert_eq!(c.sampler, Sampler::ParentBased(Box::new(Sampler::TraceIdRatio(1.0))));
        assert!(warned(&c, "OTEL_TRACES_SAMPLER_ARG"));
        let c = config(&[("OTEL_TRACES_SAMPLER", "sometimes")]);
        assert_eq!(c.sampler, Sampler::default());
        assert!(warned(&c, "OTEL_TRACES_SAMPLER"));
    }

    #[test]
    fn limits() {
        let c = config(&[
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "5"),
            ("OTEL_SPAN_LINK_COUNT_LIMIT", "4"),
            ("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "3"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "many"),
        ]);
        assert_eq!(c.span_limits.max_attributes, 10, "falls back to the general limit");
        assert_eq!(c.span_limits.max_attributes_per_event, 10);
        assert_eq!(
            (c.span_limits.max_events, c.span_limits.max_links, c.span_limits.max_attributes_per_link),
            (5, 4, 3)
        );
        assert!(warned(&c, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"));
        assert_eq!(config(&[("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "7")]).span_limits.max_attributes_per_event, 7);
        assert_eq!(c.log_limits.max_attributes, 10, "log records fall back to the general limit too");
        assert_eq!((c.span_limits.max_attribute_value_length, c.log_limits.max_attribute_value_length), (None, None));
    }

    #[test]
    fn value_length_and_log_record_limits() {
        let c = config(&[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64"), ("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "9")]);
        assert_eq!(c.span_limits.max_attribute_value_length, Some(64));
        assert_eq!(c.log_limits, LogRecordLimits { max_attributes: 9, max_attribute_value_length: Some(64) });
        let c = config(&[
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64"),
            ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "16"),
            ("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "32"),
        ]);
        assert_eq!(c.span_limits.max_attribute_value_length, Some(16));
        assert_eq!(c.log_limits.max_attribute_value_length, Some(32));
        let c = config(&[("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "long")]);
        assert_eq!(c.span_limits.max_attribute_value_length, None);
        let w = c.warnings.iter().find(|w| w.variable == "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT").unwrap();
        assert!(w.reason.contains("no limit"), "{w}");
    }

    #[test]
    fn batch_processors() {
        let c = config(&[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "64"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "x"),
        ]);
        assert_eq!(c.span_batch.scheduled_delay, Duration::from_millis(100));
        assert_eq!(c.log_batch.max_export_batch_size, 64);
        assert_eq!(c.log_batch.scheduled_delay, Duration::from_secs(1));
        assert!(warned(&c, "OTEL_BLRP_EXPORT_TIMEOUT"));
    }

    #[test]
    fn metric_export_and_temporality() {
        let c = config(&[
            ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
            ("OTEL_METRIC_EXPORT_TIMEOUT", "0"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta"),
        ]);
        assert_eq!(c.metric_export_interval, Duration::from_secs(5));
        assert_eq!(c.metric_export_timeout, Duration::from_secs(30));
        assert!(warned(&c, "OTEL_METRIC_EXPORT_TIMEOUT"));
        assert_eq!(c.metrics_temporality, Temporality::Delta);
        assert_eq!(c.metric_evict_idle, None, "Prometheus (the default exporter) keeps every series");
        let c = config(&[
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
            ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
        ]);
        assert_eq!(c.metric_evict_idle, Some(Duration::from_secs(10)), "delta only: two intervals");
        let c = config(&[("OTEL_METRICS_EXPORTER", "otlp")]);
        assert_eq!(c.metric_evict_idle, None, "cumulative OTLP keeps every series");
        let c = config(&[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "LowMemory")]);
        assert_eq!(c.metrics_temporality, Temporality::LowMemory);
        let c = config(&[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Sometimes")]);
        assert_eq!(c.metrics_temporality, Temporality::Cumulative);
        let w = c.warnings.iter().find(|w| w.variable == "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE").unwrap();
        assert_eq!(w.value, "Sometimes", "the warning shows the value as it was set");
    }

    #[test]
    fn prometheus_endpoint() {
        let c = config(&[("OTEL_EXPORTER_PROMETHEUS_HOST", "0.0.0.0"), ("OTEL_EXPORTER_PROMETHEUS_PORT", "9100")]);
        assert_eq!((c.prometheus_host.as_str(), c.prometheus_port), ("0.0.0.0", 9100));
        let c = config(&[("OTEL_EXPORTER_PROMETHEUS_PORT", "99999")]);
        assert_eq!(c.prometheus_port, 9464);
        assert!(warned(&c, "OTEL_EXPORTER_PROMETHEUS_PORT"));
    }

    #[test]
    fn otlp_variables_are_kept_for_the_exporters() {
        let c = config(&[("OTEL_EXPORTER_OTLP_HEADERS", "a=b"), ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip")]);
        assert!(c.env.contains(&("OTEL_EXPORTER_OTLP_HEADERS".into(), "a=b".into())));
        assert!(c.env.contains(&("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION".into(), "gzip".into())));
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn the_metric_export_timeout_caps_the_otlp_metric_timeout() {
        let c = config(&[("OTEL_METRIC_EXPORT_TIMEOUT", "2000")]);
        assert_eq!(c.otlp_metrics_config().timeout, Duration::from_secs(2), "below the OTLP default of 10 s");
        assert_eq!(c.otlp_config(crate::otlp::Signal::Traces).timeout, Duration::from_secs(10), "metrics only");
        let c = config(&[("OTEL_METRIC_EXPORT_TIMEOUT", "60000"), ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "3000")]);
        assert_eq!(c.otlp_metrics_config().timeout, Duration::from_secs(3));
    }

    /// A bad variable every signal reads is one warning, not one per signal, and it names
    /// the variable that was set.
    #[cfg(feature = "otlp")]
    #[test]
    fn otlp_warnings_are_collected_once() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318"),
        ]);
        let found: Vec<_> = c.warnings.iter().map(|w| (w.variable.as_str(), w.value.as_str())).collect();
        assert_eq!(
            found,
            [("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"), ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318")]
        );
    }
}
