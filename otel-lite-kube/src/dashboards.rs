//! Grafana dashboards for the series otel-lite emits, and the Kubernetes objects that
//! install them (the kube-prometheus Grafana sidecar's ConfigMaps, or the Grafana
//! Operator's `GrafanaDashboard`s).
//!
//! [`dashboards`] generates five dashboards per service:
//!
//! | uid suffix | dashboard |
//! |---|---|
//! | `-fn` | RED per `#[instrument]`ed function: calls by result, error ratio, p50/p90/p99 with exemplars, errors by type, calls in flight (the gauge where enabled, the mean from the time spent everywhere) |
//! | `-http` | HTTP server routes (rate by route and status class, error ratio, latency, active requests, body sizes) and client calls |
//! | `-slo` | objectives: success ratio and latency compliance over the range, error budget remaining, 1h/6h burn rates, per function objective and per [`RouteObjective`] |
//! | `-proc` | process (CPU, memory, threads, file descriptors against their limit, uptime, restarts), `build_info`, heartbeats against their floors |
//! | `-self` | otel-lite's own health: exported/dropped/failed spans and log records, export overruns, overflowed and evicted series, OTLP failures |
//!
//! A request failed when the HTTP server layer gave it an `error_type`: on a 5xx answer
//! (the status code as text) and on an error of the service, which has no status code. The
//! error ratios select `error_type!=""`; the status-class panel shows such errors as their
//! own class, `error`.
//!
//! Every query selects `namespace=~"$namespace", job=~"$job", instance=~"$instance"`; the
//! three variables default to "All" = `.*`, which also matches series without the label
//! (outside Kubernetes there is no `namespace`). Rates use `$__rate_interval`; the budget
//! panels use `$__range` (the dashboard's time range); burn rates use the fixed 1h and 6h
//! windows of the multiwindow alerts (divided by [`Spec::time_scale`], like the rules).
//!
//! The SLO panels are computed from the raw series, not from recording rules, so they work
//! wherever the application's series are scraped. The objective's promised share lives in
//! the `objective_percentile` label (a closed set, [`ObjectivePercentile::ALL`]): the allowed
//! error ratio is built as one vector per objective, `or`-ing one term per percentile. The
//! latency threshold lives in `objective_latency_threshold`, equal to the `le` of the bucket
//! that counts the calls under it (a closed set too, [`ObjectiveLatency::ALL`]): the good
//! calls are the `or` of one term per threshold selecting `le` equal to it. Neither needs
//! `label_replace`, so no query contains a `$` other than the dashboard variables.

use std::collections::BTreeMap;

use otel_lite_core::metrics::{ObjectiveLatency, ObjectivePercentile};
use serde_json::{json, Value};

use crate::names;
use crate::spec::{RouteObjective, Spec};

/// The Grafana dashboard schema version the JSON follows.
pub const SCHEMA_VERSION: u64 = 39;

/// The matcher of failed HTTP server requests: 5xx answers and errors of the service.
const FAILED_REQUEST: &str = r#"error_type!="""#;

/// The `allValue` of the `namespace`, `job` and `instance` variables: matches any value,
/// including an absent label.
const ALL_ANY: &str = ".*";

/// One generated Grafana dashboard.
#[derive(Clone, Debug, PartialEq)]
pub struct Dashboard {
    /// The dashboard's uid: stable, derived from the service name (at most 40 characters,
    /// lower-case letters, digits and `-`).
    pub uid: String,
    /// The dashboard's title (names the service).
    pub title: String,
    /// The complete dashboard JSON (what Grafana's "Import dashboard" accepts).
    pub json: Value,
}

/// The five dashboards of `spec`'s service (see the [module docs](self)), in a fixed order:
/// functions, HTTP, SLOs, process, self-metrics.
pub fn dashboards(spec: &Spec) -> Vec<Dashboard> {
    vec![functions(spec), http(spec), slos(spec), process(spec), self_metrics(spec)]
}

/// Common labels of the generated Kubernetes objects.
fn object_labels(spec: &Spec) -> Value {
    json!({
        "app.kubernetes.io/name": spec.service,
        "app.kubernetes.io/part-of": "otel-lite",
        "app.kubernetes.io/managed-by": "otel-lite-kube",
    })
}

/// The dashboard JSON as text: pretty-printed, keys in a stable order.
fn json_text(dashboard: &Dashboard) -> String {
    serde_json::to_string_pretty(&dashboard.json).unwrap_or_else(|_| dashboard.json.to_string())
}

/// ConfigMaps (one per dashboard) for the kube-prometheus Grafana sidecar: label
/// `grafana_dashboard: "1"`, namespace `spec.namespace`, data `<uid>.json` = the JSON text
/// (pretty, stable). The sidecar of kube-prometheus-stack watches every namespace only
/// with `grafana.sidecar.dashboards.searchNamespace: ALL`; otherwise apply the ConfigMaps
/// in Grafana's namespace. The `grafana_folder` annotation places them in an `otel-lite`
/// folder only where the sidecar is told to read it: kube-prometheus-stack's defaults do
/// not, they need `grafana.sidecar.dashboards.folderAnnotation: grafana_folder` and
/// `grafana.sidecar.dashboards.provider.foldersFromFilesStructure: true`; without them
/// the dashboards land in the General folder.
pub fn configmaps(spec: &Spec, dashboards: &[Dashboard]) -> Vec<Value> {
    dashboards
        .iter()
        .map(|d| {
            let mut labels = object_labels(spec);
            labels["grafana_dashboard"] = json!("1");
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": format!("{}-dashboard", d.uid),
                    "namespace": spec.namespace,
                    "labels": labels,
                    "annotations": { "grafana_folder": "otel-lite" },
                },
                "data": { format!("{}.json", d.uid): json_text(d) },
            })
        })
        .collect()
}

/// Grafana Operator resources: apiVersion `grafana.integreatly.org/v1beta1`, kind
/// `GrafanaDashboard`, `spec.json` (the JSON text), `spec.instanceSelector.matchLabels`
/// `{ dashboards: "grafana" }`, in `spec.namespace` (with `allowCrossNamespaceImport`, as
/// Grafana usually runs in another namespace), in an `otel-lite` folder.
pub fn grafana_dashboards(spec: &Spec, dashboards: &[Dashboard]) -> Vec<Value> {
    dashboards
        .iter()
        .map(|d| {
            json!({
                "apiVersion": "grafana.integreatly.org/v1beta1",
                "kind": "GrafanaDashboard",
                "metadata": {
                    "name": d.uid,
                    "namespace": spec.namespace,
                    "labels": object_labels(spec),
                },
                "spec": {
                    "instanceSelector": { "matchLabels": { "dashboards": "grafana" } },
                    "allowCrossNamespaceImport": true,
                    "folder": "otel-lite",
                    "json": json_text(d),
                },
            })
        })
        .collect()
}

/// Every panel target's PromQL of a dashboard (panels in order, targets in order), with
/// the dashboard variables substituted, for tests that run every query against a live
/// Prometheus.
///
/// `vars` maps a variable's name (without `$`) to its value, e.g. `job` → `quickstart`.
/// A variable not given takes its "All" value (`.*` for `namespace`, `job`, `instance`
/// and `route`; `.+` for `function`, `objective` and `heartbeat`); `__rate_interval` defaults to `1m`,
/// `__range` to `1h` and `__interval` to `30s`. `$datasource` is not part of any query.
/// Both `$name` and `${name}` (also `${name:format}`) are replaced; a `$` naming nothing
/// known is left as it is.
pub fn panel_queries(dashboard: &Dashboard, vars: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut values: BTreeMap<String, String> = BTreeMap::from([
        ("__rate_interval".to_string(), "1m".to_string()),
        ("__range".to_string(), "1h".to_string()),
        ("__interval".to_string(), "30s".to_string()),
    ]);
    let variables = dashboard.json.pointer("/templating/list").and_then(Value::as_array);
    for v in variables.into_iter().flatten() {
        if let (Some(name), Some(all)) = (v["name"].as_str(), v["allValue"].as_str()) {
            values.insert(name.to_string(), all.to_string());
        }
    }
    values.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));

    let mut out = Vec::new();
    let panels = dashboard.json["panels"].as_array();
    for panel in panels.into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title.to_string(), substitute(expr, &values)));
            }
        }
    }
    out
}

/// Replaces `$name`, `${name}` and `${name:format}` by `values[name]`.
fn substitute(expr: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => {
                    let inner = &braced[..end];
                    (inner.split(':').next().unwrap_or(inner), end + 2)
                }
                None => ("", 0),
            },
            None => {
                let n = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..n], n)
            }
        };
        match values.get(name) {
            Some(value) if !name.is_empty() => {
                out.push_str(value);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------
// Building blocks: selectors, targets, panels, layout, variables.

/// The datasource reference of every panel and target.
fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

/// `{namespace=~"$namespace", job=~"$job", instance=~"$instance"[, extra]}`.
fn sel(extra: &str) -> String {
    let mut s = String::from(r#"{namespace=~"$namespace", job=~"$job", instance=~"$instance""#);
    if !extra.is_empty() {
        s.push_str(", ");
        s.push_str(extra);
    }
    s.push('}');
    s
}

/// A PromQL string literal's content.
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"")
}

/// One query of a panel.
#[derive(Clone)]
struct Target {
    expr: String,
    legend: String,
    exemplar: bool,
    instant: bool,
    table: bool,
}

/// A range query with a legend.
fn q(expr: impl Into<String>, legend: &str) -> Target {
    Target { expr: expr.into(), legend: legend.to_string(), exemplar: false, instant: false, table: false }
}

impl Target {
    /// Shows the histogram's exemplars (trace ids) on the graph.
    fn exemplar(mut self) -> Target {
        self.exemplar = true;
        self
    }

    /// An instant query (stat panels over `$__range`).
    fn instant(mut self) -> Target {
        self.instant = true;
        self
    }

    /// An instant query formatted as a table (one row per series, labels as columns).
    fn table(mut self) -> Target {
        self.instant = true;
        self.table = true;
        self
    }

    fn to_json(&self, ref_id: String) -> Value {
        json!({
            "refId": ref_id,
            "datasource": datasource(),
            "editorMode": "code",
            "expr": self.expr,
            "legendFormat": if self.legend.is_empty() { "__auto" } else { self.legend.as_str() },
            "range": !self.instant,
            "instant": self.instant,
            "exemplar": self.exemplar,
            "format": if self.table { "table" } else { "time_series" },
        })
    }
}

/// Panel types used.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    TimeSeries,
    Stat,
    Table,
}

/// One panel before layout.
struct Panel {
    kind: Kind,
    title: String,
    description: String,
    unit: &'static str,
    targets: Vec<Target>,
    w: u32,
    h: u32,
    min: Option<f64>,
    max: Option<f64>,
    decimals: Option<u32>,
    /// The base colour and the steps above it.
    steps: (&'static str, Vec<(f64, &'static str)>),
    /// Draws the threshold steps as dashed lines on a time series.
    threshold_lines: bool,
}

impl Panel {
    fn new(kind: Kind, title: impl Into<String>, unit: &'static str, w: u32, h: u32) -> Panel {
        Panel {
            kind,
            title: title.into(),
            description: String::new(),
            unit,
            targets: Vec::new(),
            w,
            h,
            min: None,
            max: None,
            decimals: None,
            steps: ("green", Vec::new()),
            threshold_lines: false,
        }
    }

    fn timeseries(title: impl Into<String>, unit: &'static str, w: u32) -> Panel {
        Panel::new(Kind::TimeSeries, title, unit, w, 8)
    }

    fn stat(title: impl Into<String>, unit: &'static str, w: u32) -> Panel {
        Panel::new(Kind::Stat, title, unit, w, 4)
    }

    fn table(title: impl Into<String>, unit: &'static str, w: u32) -> Panel {
        Panel::new(Kind::Table, title, unit, w, 5)
    }

    fn desc(mut self, description: &str) -> Panel {
        self.description = description.to_string();
        self
    }

    fn target(mut self, target: Target) -> Panel {
        self.targets.push(target);
        self
    }

    fn height(mut self, h: u32) -> Panel {
        self.h = h;
        self
    }

    fn min(mut self, min: f64) -> Panel {
        self.min = Some(min);
        self
    }

    fn max(mut self, max: f64) -> Panel {
        self.max = Some(max);
        self
    }

    fn decimals(mut self, decimals: u32) -> Panel {
        self.decimals = Some(decimals);
        self
    }

    fn steps(mut self, base: &'static str, steps: &[(f64, &'static str)]) -> Panel {
        self.steps = (base, steps.to_vec());
        self
    }

    fn threshold_lines(mut self) -> Panel {
        self.threshold_lines = true;
        self
    }

    fn to_json(&self, id: u32, x: u32, y: u32) -> Value {
        let mut steps = vec![json!({ "color": self.steps.0, "value": null })];
        steps.extend(self.steps.1.iter().map(|(value, color)| json!({ "color": color, "value": value })));
        let mut defaults = json!({
            "unit": self.unit,
            "thresholds": { "mode": "absolute", "steps": steps },
            "color": { "mode": if self.kind == Kind::TimeSeries { "palette-classic" } else { "thresholds" } },
        });
        if let Some(min) = self.min {
            defaults["min"] = json!(min);
        }
        if let Some(max) = self.max {
            defaults["max"] = json!(max);
        }
        if let Some(decimals) = self.decimals {
            defaults["decimals"] = json!(decimals);
        }
        let (kind, options) = match self.kind {
            Kind::TimeSeries => {
                defaults["custom"] = json!({
                    "drawStyle": "line",
                    "lineInterpolation": "linear",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "gradientMode": "none",
                    "showPoints": "never",
                    "spanNulls": false,
                    "axisPlacement": "auto",
                    "stacking": { "mode": "none", "group": "A" },
                    "thresholdsStyle": { "mode": if self.threshold_lines { "dashed" } else { "off" } },
                });
                (
                    "timeseries",
                    json!({
                        "legend": { "displayMode": "table", "placement": "bottom", "showLegend": true, "calcs": ["mean", "max", "lastNotNull"] },
                        "tooltip": { "mode": "multi", "sort": "desc" },
                    }),
                )
            }
            Kind::Stat => (
                "stat",
                json!({
                    "reduceOptions": { "values": false, "calcs": ["lastNotNull"], "fields": "" },
                    "orientation": "auto",
                    "textMode": "value_and_name",
                    "colorMode": "value",
                    "graphMode": "none",
                    "justifyMode": "auto",
                    "wideLayout": true,
                    "showPercentChange": false,
                }),
            ),
            Kind::Table => (
                "table",
                json!({
                    "showHeader": true,
                    "cellHeight": "sm",
                    "footer": { "show": false, "reducer": ["sum"], "countRows": false, "fields": "" },
                }),
            ),
        };
        let targets: Vec<Value> = self.targets.iter().enumerate().map(|(i, t)| t.to_json(ref_id(i))).collect();
        let mut panel = json!({
            "id": id,
            "type": kind,
            "title": self.title,
            "description": self.description,
            "datasource": datasource(),
            "gridPos": { "x": x, "y": y, "w": self.w, "h": self.h },
            "fieldConfig": { "defaults": defaults, "overrides": [] },
            "options": options,
            "targets": targets,
        });
        if self.kind == Kind::Table {
            panel["transformations"] = json!([{
                "id": "organize",
                "options": { "excludeByName": { "Time": true, "Value": true, "__name__": true } },
            }]);
        }
        panel
    }
}

/// `A`, `B`, … `Z`, then `A26`, `A27`, ….
fn ref_id(i: usize) -> String {
    match u8::try_from(i) {
        Ok(n) if n < 26 => char::from(b'A' + n).to_string(),
        _ => format!("A{i}"),
    }
}

/// Lays panels out left to right in rows of 24 columns; a panel that does not fit starts
/// the next row below the tallest panel of the current one, so panels never overlap.
struct Board {
    panels: Vec<Value>,
    next_id: u32,
    x: u32,
    y: u32,
    row_h: u32,
}

impl Board {
    fn new() -> Board {
        Board { panels: Vec::new(), next_id: 1, x: 0, y: 0, row_h: 0 }
    }

    fn newline(&mut self) {
        self.y += self.row_h;
        self.x = 0;
        self.row_h = 0;
    }

    fn add(&mut self, mut panel: Panel) {
        panel.w = panel.w.clamp(1, 24);
        if self.x + panel.w > 24 {
            self.newline();
        }
        self.panels.push(panel.to_json(self.next_id, self.x, self.y));
        self.next_id += 1;
        self.x += panel.w;
        self.row_h = self.row_h.max(panel.h);
    }

    /// A (non-collapsed) row header across the full width.
    fn row(&mut self, title: &str) {
        self.newline();
        self.panels.push(json!({
            "id": self.next_id,
            "type": "row",
            "title": title,
            "collapsed": false,
            "gridPos": { "x": 0, "y": self.y, "w": 24, "h": 1 },
            "panels": [],
        }));
        self.next_id += 1;
        self.y += 1;
    }
}

/// The `datasource` variable: any Prometheus datasource, the default one first.
fn datasource_var() -> Value {
    json!({
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": "prometheus",
        "regex": "",
        "refresh": 1,
        "hide": 0,
        "includeAll": false,
        "multi": false,
        "current": {},
        "options": [],
    })
}

/// A multi-value `label_values` variable with "All" = `all_value`, selected by default
/// unless `default` names a value (which Grafana keeps if the query returns it).
fn query_var(name: &str, label: &str, query: String, all_value: &str, default: Option<&str>) -> Value {
    let current = match default {
        Some(v) => json!({ "selected": true, "text": [v], "value": [v] }),
        None => json!({ "selected": true, "text": ["All"], "value": ["$__all"] }),
    };
    json!({
        "type": "query",
        "name": name,
        "label": label,
        "datasource": datasource(),
        "query": query,
        "definition": query,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "hide": 0,
        "includeAll": true,
        "multi": true,
        "allValue": all_value,
        "current": current,
        "options": [],
    })
}

/// `datasource`, then `namespace`, `job` and `instance` from `up` (Prometheus writes it for
/// every scrape target, whatever the exporter's options; `target_info` can be turned off),
/// chained: jobs of the selected namespaces, instances of the selected jobs. `namespace`
/// and `job` default to the spec's (Grafana falls back to the first option, "All", where
/// they do not exist).
fn common_vars(spec: &Spec) -> Vec<Value> {
    vec![
        datasource_var(),
        query_var("namespace", "Namespace", "label_values(up, namespace)".into(), ALL_ANY, Some(&spec.namespace)),
        query_var(
            "job",
            "Job",
            r#"label_values(up{namespace=~"$namespace"}, job)"#.into(),
            ALL_ANY,
            Some(&spec.service),
        ),
        query_var(
            "instance",
            "Instance",
            r#"label_values(up{namespace=~"$namespace", job=~"$job"}, instance)"#.into(),
            ALL_ANY,
            None,
        ),
    ]
}

/// Lower-case letters, digits and single dashes; at most 28 characters (longer names keep
/// 19 and a hash of the whole name, so uids stay distinct).
fn slug(service: &str) -> String {
    let mut s = String::new();
    for c in service.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        return format!("svc-{:08x}", fnv1a(service));
    }
    if s.len() <= 28 {
        return s;
    }
    format!("{}-{:08x}", s[..19].trim_end_matches('-'), fnv1a(service))
}

/// 32-bit FNV-1a.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Assembles one dashboard.
fn dashboard(
    spec: &Spec,
    suffix: &str,
    title: &str,
    description: &str,
    extra_vars: Vec<Value>,
    board: Board,
) -> Dashboard {
    let uid = format!("otel-{}-{suffix}", slug(&spec.service));
    let title = format!("{} / {title}", spec.service);
    let mut variables = common_vars(spec);
    variables.extend(extra_vars);
    let json = json!({
        "id": null,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["otel-lite", spec.service],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": true,
        "graphTooltip": 1,
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": false,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "timepicker": {},
        "annotations": { "list": [{
            "builtIn": 1,
            "datasource": { "type": "grafana", "uid": "-- Grafana --" },
            "enable": true,
            "hide": true,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }] },
        "links": [{
            "type": "dashboards",
            "title": "otel-lite",
            "tags": ["otel-lite", spec.service],
            "asDropdown": true,
            "includeVars": true,
            "keepTime": true,
        }],
        "templating": { "list": variables },
        "panels": board.panels,
    });
    Dashboard { uid, title, json }
}

/// The error ratio's colours: green, orange from 1%, red from 5%.
const ERROR_STEPS: [(f64, &str); 2] = [(0.01, "orange"), (0.05, "red")];
/// The remaining budget's colours: red below 0, orange below 25%, green above.
const BUDGET_STEPS: [(f64, &str); 2] = [(0.0, "orange"), (0.25, "green")];
/// Burn rates of the multiwindow alerts: 6 (6h window) and 14.4 (1h window).
const BURN_STEPS: [(f64, &str); 2] = [(6.0, "orange"), (14.4, "red")];

// ---------------------------------------------------------------------------------------
// 1. Functions (RED).

fn functions(spec: &Spec) -> Dashboard {
    let f = r#"function=~"$function""#;
    let calls = |extra: &str, by: &str| {
        let extra = if extra.is_empty() { f.to_string() } else { format!("{f}, {extra}") };
        format!("sum{by} (rate(function_calls_total{}[$__rate_interval]))", sel(&extra))
    };
    let error_ratio =
        |by: &str, zero: &str| format!("(({}) or ({zero})) / {}", calls(r#"result="error""#, by), calls("", by));
    let bucket = |by: &str| {
        format!("sum by (le{by}) (rate(function_calls_duration_seconds_bucket{}[$__rate_interval]))", sel(f))
    };

    let mut b = Board::new();
    b.add(
        Panel::stat("Calls", "ops", 6)
            .desc("Calls per second of the selected functions.")
            .target(q(calls("", ""), "calls/s")),
    );
    b.add(
        Panel::stat("Error ratio", "percentunit", 6)
            .desc("Share of the selected functions' calls that returned an error.")
            .decimals(2)
            .steps("green", &ERROR_STEPS)
            .target(q(error_ratio("", "vector(0)"), "errors")),
    );
    b.add(
        Panel::stat("Latency p99", "s", 6)
            .desc("99th percentile of the selected functions' durations, all together.")
            .target(q(format!("histogram_quantile(0.99, {})", bucket("")), "p99")),
    );
    b.add(
        Panel::stat("Functions reporting", "short", 6)
            .desc("Instrumented functions with calls in the selected targets.")
            .target(q(format!("count(count by (function) (function_calls_total{}))", sel(f)), "functions")),
    );
    b.add(
        Panel::timeseries("Calls per second by result", "ops", 12)
            .desc("function_calls_total by function and result (ok / error).")
            .min(0.0)
            .target(q(calls("", " by (function, result)"), "{{function}} {{result}}")),
    );
    b.add(
        Panel::timeseries("Error ratio by function", "percentunit", 12)
            .desc("Errors / calls per function; 0 for functions without errors.")
            .min(0.0)
            .target(q(error_ratio(" by (function)", &format!("0 * {}", calls("", " by (function)"))), "{{function}}")),
    );
    let quantile =
        |p: &str, legend: &str| q(format!("histogram_quantile({p}, {})", bucket(", function")), legend).exemplar();
    b.add(
        Panel::timeseries("Latency p50 / p90 / p99", "s", 12)
            .desc("Quantiles of function_calls_duration_seconds per function; the dots are exemplars (click for the trace).")
            .min(0.0)
            .target(quantile("0.5", "p50 {{function}}"))
            .target(quantile("0.9", "p90 {{function}}"))
            .target(quantile("0.99", "p99 {{function}}")),
    );
    b.add(
        Panel::timeseries("Mean duration", "s", 12).desc("Total time spent / calls, per function.").min(0.0).target(q(
            format!(
                "sum by (function) (rate(function_calls_duration_seconds_sum{s}[$__rate_interval])) / sum by (function) (rate(function_calls_duration_seconds_count{s}[$__rate_interval]))",
                s = sel(f)
            ),
            "{{function}}",
        )),
    );
    b.add(
        Panel::timeseries("Errors by type", "ops", 12)
            .desc("Failed calls per second by function and error_type.")
            .min(0.0)
            .target(q(calls(r#"result="error""#, " by (function, error_type)"), "{{function}}: {{error_type}}")),
    );
    b.add(
        Panel::timeseries("In flight", "short", 12)
            .desc(
                "now: function_calls_concurrent, for functions instrumented with #[instrument(in_flight)]. \
                 mean: the mean number of calls running over the rate interval, for every function \
                 (time spent per second = calls per second x mean duration, Little's law).",
            )
            .min(0.0)
            .target(q(
                format!(
                    r#"label_replace(sum by (function) (function_calls_concurrent{s}), "in_flight", "now", "", "") or label_replace(sum by (function) (rate(function_calls_duration_seconds_sum{s}[$__rate_interval])), "in_flight", "mean", "", "")"#,
                    s = sel(f)
                ),
                "{{function}} ({{in_flight}})",
            )),
    );
    let function_var = query_var(
        "function",
        "Function",
        format!("label_values(function_calls_total{}, function)", sel("")),
        ".+",
        None,
    );
    dashboard(
        spec,
        "fn",
        "Functions (RED)",
        "Rate, errors and duration of the #[instrument]ed functions (function_calls_*).",
        vec![function_var],
        b,
    )
}

// ---------------------------------------------------------------------------------------
// 2. HTTP.

fn http(spec: &Spec) -> Dashboard {
    let r = r#"http_route=~"$route""#;
    let with = |extra: &str| if extra.is_empty() { r.to_string() } else { format!("{r}, {extra}") };
    let requests = |extra: &str, by: &str| {
        format!("sum{by} (rate(http_server_request_duration_seconds_count{}[$__rate_interval]))", sel(&with(extra)))
    };
    let server_bucket = |by: &str| {
        format!("sum by (le{by}) (rate(http_server_request_duration_seconds_bucket{}[$__rate_interval]))", sel(r))
    };
    let unmatched = |expr: String| format!(r#"label_replace({expr}, "http_route", "(unmatched)", "http_route", "")"#);
    // 5xx answers and errors of the service (no status code): see the module docs.
    let failed = FAILED_REQUEST;

    let mut b = Board::new();
    b.add(
        Panel::stat("Requests", "reqps", 6)
            .desc("Requests per second to the selected routes.")
            .target(q(requests("", ""), "req/s")),
    );
    b.add(
        Panel::stat("Error ratio", "percentunit", 6)
            .desc("Share of requests that failed: answered with a 5xx, or an error of the service (error_type set).")
            .decimals(2)
            .steps("green", &ERROR_STEPS)
            .target(q(format!("(({}) or vector(0)) / {}", requests(failed, ""), requests("", "")), "errors")),
    );
    b.add(
        Panel::stat("Latency p99", "s", 6)
            .desc("99th percentile of http.server.request.duration over the selected routes.")
            .target(q(format!("histogram_quantile(0.99, {})", server_bucket("")), "p99")),
    );
    b.add(
        Panel::stat("Active requests", "short", 6)
            .desc("Requests being served now (http.server.active_requests has no route).")
            .target(q(format!("sum(http_server_active_requests{})", sel("")), "active")),
    );
    b.add(
        Panel::timeseries("Requests by route", "reqps", 12)
            .desc("Requests per second by route template; requests no route matched show as (unmatched).")
            .min(0.0)
            .target(q(unmatched(requests("", " by (http_route)")), "{{http_route}}")),
    );
    let mut classes: Vec<String> = (1..=5)
        .map(|c| {
            format!(
                r#"label_replace({}, "status_class", "{c}xx", "", "")"#,
                requests(&format!(r#"http_response_status_code=~"{c}..""#), "")
            )
        })
        .collect();
    classes.push(format!(
        r#"label_replace({}, "status_class", "error", "", "")"#,
        requests(&format!(r#"{failed}, http_response_status_code="""#), "")
    ));
    b.add(
        Panel::timeseries("Requests by status class", "reqps", 12)
            .desc("Requests per second by status class (1xx … 5xx), and error: the service failed without an answer.")
            .min(0.0)
            .target(q(classes.join(" or "), "{{status_class}}")),
    );
    let by_route = " by (http_route)";
    b.add(
        Panel::timeseries("Error ratio by route", "percentunit", 12)
            .desc("Share of failed requests (5xx or an error of the service) per route; 0 for routes without any.")
            .min(0.0)
            .steps("green", &ERROR_STEPS)
            .threshold_lines()
            .target(q(
                unmatched(format!(
                    "(({}) or (0 * {})) / {}",
                    requests(failed, by_route),
                    requests("", by_route),
                    requests("", by_route)
                )),
                "{{http_route}}",
            )),
    );
    b.add(
        Panel::timeseries("Latency p99 by route", "s", 12)
            .desc("99th percentile per route; the dots are exemplars (click for the trace).")
            .min(0.0)
            .target(
                q(unmatched(format!("histogram_quantile(0.99, {})", server_bucket(", http_route"))), "{{http_route}}")
                    .exemplar(),
            ),
    );
    let quantile =
        |p: &str, legend: &str| q(format!("histogram_quantile({p}, {})", server_bucket("")), legend).exemplar();
    b.add(
        Panel::timeseries("Latency p50 / p90 / p99", "s", 12)
            .desc("Quantiles over all selected routes, with exemplars.")
            .min(0.0)
            .target(quantile("0.5", "p50"))
            .target(quantile("0.9", "p90"))
            .target(quantile("0.99", "p99")),
    );
    b.add(
        Panel::timeseries("Active requests by method", "short", 12)
            .desc("http.server.active_requests by method.")
            .min(0.0)
            .target(q(
                format!("sum by (http_request_method) (http_server_active_requests{})", sel("")),
                "{{http_request_method}}",
            )),
    );
    let body = |metric: &str| {
        let s = sel(r);
        Panel::timeseries(
            if metric == "request" { "Request body size" } else { "Response body size" },
            "bytes",
            12,
        )
        .desc("Mean and 90th percentile body size per route.")
        .min(0.0)
        .target(q(
            unmatched(format!(
                "sum by (http_route) (rate(http_server_{metric}_body_size_bytes_sum{s}[$__rate_interval])) / sum by (http_route) (rate(http_server_{metric}_body_size_bytes_count{s}[$__rate_interval]))"
            )),
            "mean {{http_route}}",
        ))
        .target(q(
            unmatched(format!(
                "histogram_quantile(0.9, sum by (le, http_route) (rate(http_server_{metric}_body_size_bytes_bucket{s}[$__rate_interval])))"
            )),
            "p90 {{http_route}}",
        ))
    };
    b.add(body("request"));
    b.add(body("response"));
    b.add(
        Panel::timeseries("Client request duration p90", "s", 12)
            .desc("Outgoing requests (http.client.request.duration): 90th percentile per server.")
            .min(0.0)
            .target(
                q(
                    format!(
                        "histogram_quantile(0.9, sum by (le, server_address, server_port) (rate(http_client_request_duration_seconds_bucket{}[$__rate_interval])))",
                        sel("")
                    ),
                    "{{server_address}}:{{server_port}}",
                )
                .exemplar(),
            ),
    );
    b.add(
        Panel::timeseries("Client requests by status", "reqps", 12)
            .desc("Outgoing requests per second by server and status code.")
            .min(0.0)
            .target(q(
                format!(
                    "sum by (server_address, http_response_status_code) (rate(http_client_request_duration_seconds_count{}[$__rate_interval]))",
                    sel("")
                ),
                "{{server_address}} {{http_response_status_code}}",
            )),
    );
    let route_var = query_var(
        "route",
        "Route",
        format!("label_values(http_server_request_duration_seconds_count{}, http_route)", sel("")),
        ALL_ANY,
        None,
    );
    dashboard(
        spec,
        "http",
        "HTTP",
        "HTTP server routes and client calls (OpenTelemetry HTTP semantic conventions).",
        vec![route_var],
        b,
    )
}

// ---------------------------------------------------------------------------------------
// 3. SLOs.

/// The allowed error ratio `1 - ratio` as PromQL writes it (`0.001`).
fn allowed(p: ObjectivePercentile) -> String {
    let budget = ((1.0 - p.ratio()) * 1e6).round() / 1e6;
    format!("{budget}")
}

/// A window of `seconds` divided by the spec's time scale, as PromQL writes it.
fn scaled_window(seconds: u64, time_scale: u32) -> String {
    let s = (seconds / u64::from(time_scale.max(1))).max(1);
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The allowed error ratio of each objective of `metric`'s series (labelled `by`, which
/// includes `objective_percentile`): `0 * group(...) + allowed`, one term per percentile.
fn allowed_vector(metric: &str, extra: &str, by: &str) -> String {
    let terms: Vec<String> = ObjectivePercentile::ALL
        .iter()
        .map(|&p| {
            let s = sel(&format!(r#"{extra}, objective_percentile="{}""#, p.label()));
            format!("(0 * group by ({by}) ({metric}{s}) + {})", allowed(p))
        })
        .collect();
    format!("({})", terms.join(" or "))
}

const SUCCESS_BY: &str = "objective_name, objective_percentile";
const LATENCY_BY: &str = "objective_name, objective_percentile, objective_latency_threshold";
const OBJECTIVE: &str = r#"objective_name=~"$objective""#;

/// Functions' error ratio per success objective over `window`.
fn fn_error_ratio(window: &str) -> String {
    let calls = |extra: &str| {
        format!(
            "sum by ({SUCCESS_BY}) (rate(function_calls_total{}[{window}]))",
            sel(&format!(r#"{OBJECTIVE}, objective_percentile!=""{extra}"#))
        )
    };
    let all = calls("");
    format!("((({}) or (0 * {all})) / {all})", calls(r#", result="error""#))
}

/// Functions' share of calls under the latency threshold per latency objective.
fn fn_latency_compliance(window: &str) -> String {
    let base = format!(r#"{OBJECTIVE}, objective_latency_threshold!="""#);
    let good: Vec<String> = ObjectiveLatency::ALL
        .iter()
        .map(|t| {
            let l = t.label();
            format!(
                "sum by ({LATENCY_BY}) (rate(function_calls_duration_seconds_bucket{}[{window}]))",
                sel(&format!(r#"{base}, objective_latency_threshold="{l}", le="{l}""#))
            )
        })
        .collect();
    format!(
        "(({}) / sum by ({LATENCY_BY}) (rate(function_calls_duration_seconds_count{}[{window}])))",
        good.join(" or "),
        sel(&base)
    )
}

fn slos(spec: &Spec) -> Dashboard {
    let (w1h, w6h) = (scaled_window(3600, spec.time_scale), scaled_window(6 * 3600, spec.time_scale));
    let success_allowed =
        allowed_vector("function_calls_total", &format!(r#"{OBJECTIVE}, objective_percentile!="""#), SUCCESS_BY);
    let latency_allowed = allowed_vector(
        "function_calls_duration_seconds_count",
        &format!(r#"{OBJECTIVE}, objective_latency_threshold!="""#),
        LATENCY_BY,
    );
    let success_legend = "{{objective_name}} ({{objective_percentile}}%)";
    let latency_legend = "{{objective_name}} ({{objective_percentile}}% < {{objective_latency_threshold}}s)";

    let mut b = Board::new();
    b.row("Function objectives (#[instrument(objective = ...)])");
    b.add(
        Panel::stat("Success ratio over the range", "percentunit", 6)
            .height(6)
            .desc("Share of successful calls per success objective over the dashboard's time range.")
            .decimals(3)
            .target(q(format!("1 - {}", fn_error_ratio("$__range")), success_legend).instant()),
    );
    b.add(
        Panel::stat("Success error budget remaining", "percentunit", 6)
            .height(6)
            .desc("1 - (error ratio over the range) / (1 - objective): below 0 the objective is missed over the range.")
            .decimals(1)
            .steps("red", &BUDGET_STEPS)
            .target(q(format!("1 - {} / {success_allowed}", fn_error_ratio("$__range")), success_legend).instant()),
    );
    b.add(
        Panel::timeseries(format!("Success burn rate ({w1h}, {w6h})"), "short", 12)
            .height(6)
            .desc("Error ratio / allowed error ratio: 1 spends the budget exactly over the SLO period; the alerts fire at 14.4 (1h) and 6 (6h).")
            .min(0.0)
            .steps("green", &BURN_STEPS)
            .threshold_lines()
            .target(q(format!("{} / {success_allowed}", fn_error_ratio(&w1h)), &format!("{{{{objective_name}}}} {w1h}")))
            .target(q(format!("{} / {success_allowed}", fn_error_ratio(&w6h)), &format!("{{{{objective_name}}}} {w6h}"))),
    );
    b.add(
        Panel::stat("Latency compliance over the range", "percentunit", 6)
            .height(6)
            .desc("Share of calls faster than the threshold per latency objective over the dashboard's time range.")
            .decimals(3)
            .target(q(fn_latency_compliance("$__range"), latency_legend).instant()),
    );
    b.add(
        Panel::stat("Latency error budget remaining", "percentunit", 6)
            .height(6)
            .desc("1 - (share of slow calls over the range) / (1 - objective).")
            .decimals(1)
            .steps("red", &BUDGET_STEPS)
            .target(
                q(format!("1 - (1 - {}) / {latency_allowed}", fn_latency_compliance("$__range")), latency_legend)
                    .instant(),
            ),
    );
    b.add(
        Panel::timeseries(format!("Latency burn rate ({w1h}, {w6h})"), "short", 12)
            .height(6)
            .desc("Share of slow calls / allowed share.")
            .min(0.0)
            .steps("green", &BURN_STEPS)
            .threshold_lines()
            .target(q(
                format!("(1 - {}) / {latency_allowed}", fn_latency_compliance(&w1h)),
                &format!("{{{{objective_name}}}} {w1h}"),
            ))
            .target(q(
                format!("(1 - {}) / {latency_allowed}", fn_latency_compliance(&w6h)),
                &format!("{{{{objective_name}}}} {w6h}"),
            )),
    );
    b.add(
        Panel::timeseries("Success ratio and latency compliance", "percentunit", 24)
            .desc("Both shares over time, to compare with the objectives in the legends.")
            .max(1.0)
            .target(q(format!("1 - {}", fn_error_ratio("$__rate_interval")), &format!("success {success_legend}")))
            .target(q(fn_latency_compliance("$__rate_interval"), &format!("latency {latency_legend}"))),
    );

    if !spec.http_objectives.is_empty() {
        b.row("HTTP route objectives");
        for o in &spec.http_objectives {
            route_objective(&mut b, o, &w1h, &w6h);
        }
    }

    let objective_var = query_var(
        "objective",
        "Objective",
        format!(
            "label_values({}, objective_name)",
            sel(r#"__name__=~"function_calls_total|function_calls_duration_seconds_count""#)
        ),
        ".+",
        None,
    );
    dashboard(
        spec,
        "slo",
        "SLOs and error budgets",
        "Objectives of functions (from their objective_* labels) and of HTTP routes (from the generator's spec), computed from the raw series.",
        vec![objective_var],
        b,
    )
}

/// The panels of one HTTP route objective: availability and latency over the range, their
/// budgets, and the burn rates.
fn route_objective(b: &mut Board, o: &RouteObjective, w1h: &str, w6h: &str) {
    let route = format!(r#"http_route="{}""#, escape(&o.route));
    let count = |extra: &str, window: &str| {
        let s = if extra.is_empty() { sel(&route) } else { sel(&format!("{route}, {extra}")) };
        format!("sum(rate(http_server_request_duration_seconds_count{s}[{window}]))")
    };
    let error_ratio =
        |window: &str| format!("((({}) or vector(0)) / {})", count(FAILED_REQUEST, window), count("", window));
    let name = format!("{} ({})", o.name, o.route);
    let mut burn = Panel::timeseries(format!("{name}: burn rate ({w1h}, {w6h})"), "short", 24)
        .height(6)
        .desc("Bad-event ratio / allowed ratio per objective and window.")
        .min(0.0)
        .steps("green", &BURN_STEPS)
        .threshold_lines();
    if let Some(p) = o.success_rate {
        let a = allowed(p);
        b.add(
            Panel::stat(format!("{name}: availability over the range"), "percentunit", 6)
                .desc(&format!(
                    "Share of requests that did not fail (no 5xx, no error of the service); the objective is {}%.",
                    p.label()
                ))
                .decimals(3)
                .target(q(format!("1 - {}", error_ratio("$__range")), "availability").instant()),
        );
        b.add(
            Panel::stat(format!("{name}: availability budget remaining"), "percentunit", 6)
                .desc("1 - (error ratio over the range) / (1 - objective).")
                .decimals(1)
                .steps("red", &BUDGET_STEPS)
                .target(q(format!("1 - {} / {a}", error_ratio("$__range")), "budget").instant()),
        );
        burn = burn
            .target(q(format!("{} / {a}", error_ratio(w1h)), &format!("availability {w1h}")))
            .target(q(format!("{} / {a}", error_ratio(w6h)), &format!("availability {w6h}")));
    }
    if let Some((t, p)) = o.latency {
        let a = allowed(p);
        let compliance = |window: &str| {
            let s = sel(&format!(r#"{route}, le="{}""#, t.label()));
            format!("(sum(rate(http_server_request_duration_seconds_bucket{s}[{window}])) / {})", count("", window))
        };
        b.add(
            Panel::stat(format!("{name}: share under {} s", t.label()), "percentunit", 6)
                .desc(&format!("Share of requests faster than {} s; the objective is {}%.", t.label(), p.label()))
                .decimals(3)
                .target(q(compliance("$__range"), "fast enough").instant()),
        );
        b.add(
            Panel::stat(format!("{name}: latency budget remaining"), "percentunit", 6)
                .desc("1 - (share of slow requests over the range) / (1 - objective).")
                .decimals(1)
                .steps("red", &BUDGET_STEPS)
                .target(q(format!("1 - (1 - {}) / {a}", compliance("$__range")), "budget").instant()),
        );
        burn = burn
            .target(q(format!("(1 - {}) / {a}", compliance(w1h)), &format!("latency {w1h}")))
            .target(q(format!("(1 - {}) / {a}", compliance(w6h)), &format!("latency {w6h}")));
    }
    if !burn.targets.is_empty() {
        b.add(burn);
    }
}

// ---------------------------------------------------------------------------------------
// 4. Process, build and heartbeats.

fn process(spec: &Spec) -> Dashboard {
    let s = sel("");
    let per_target = "namespace, job, instance";
    let mut b = Board::new();
    b.add(
        Panel::stat("Targets up", "short", 6)
            .desc("Scrape targets answering (up).")
            .target(q(format!("sum(up{s})"), "up")),
    );
    b.add(
        Panel::stat("Uptime", "s", 6)
            .desc("Seconds since the youngest selected process started.")
            .target(q(format!("min(process_uptime_seconds{s})"), "uptime")),
    );
    b.add(
        Panel::stat("Restarts over the range", "short", 6)
            .desc("Changes of process_start_time_seconds within the dashboard's time range.")
            .steps("green", &[(1.0, "orange")])
            .target(q(format!("sum(changes(process_start_time_seconds{s}[$__range]))"), "restarts").instant()),
    );
    b.add(
        Panel::stat("File descriptors used", "percentunit", 6)
            .desc("Highest share of the file-descriptor limit in use among the selected processes.")
            .steps("green", &[(0.7, "orange"), (0.9, "red")])
            .target(q(
                format!(
                    "max(max by ({per_target}) (process_unix_file_descriptor_count{s}) / max by ({per_target}) (process_unix_file_descriptor_limit{s}))"
                ),
                "of limit",
            )),
    );
    b.add(
        Panel::table("Build", "short", 24).desc("build_info of each selected process.").target(
            q(format!("max by ({per_target}, service_name, version, commit, branch, language) (build_info{s})"), "")
                .table(),
        ),
    );
    b.add(
        Panel::timeseries("CPU", "percentunit", 12)
            .desc("CPU time per second by mode: 100% is one core busy.")
            .min(0.0)
            .target(q(
                format!("sum by (instance, cpu_mode) (rate(process_cpu_time_seconds_total{s}[$__rate_interval]))"),
                "{{instance}} {{cpu_mode}}",
            )),
    );
    b.add(
        Panel::timeseries("Memory", "bytes", 12)
            .desc("Resident and virtual memory.")
            .min(0.0)
            .target(q(format!("sum by (instance) (process_memory_usage_bytes{s})"), "{{instance}} resident"))
            .target(q(format!("sum by (instance) (process_memory_virtual_bytes{s})"), "{{instance}} virtual")),
    );
    b.add(
        Panel::timeseries("Threads", "short", 8)
            .min(0.0)
            .desc("OS threads of the process.")
            .target(q(format!("sum by (instance) (process_thread_count{s})"), "{{instance}}")),
    );
    b.add(
        Panel::timeseries("File descriptors vs limit", "short", 8)
            .desc("Open file descriptors and the soft limit.")
            .min(0.0)
            .target(q(format!("sum by (instance) (process_unix_file_descriptor_count{s})"), "{{instance}} open"))
            .target(q(format!("max by (instance) (process_unix_file_descriptor_limit{s})"), "{{instance}} limit")),
    );
    b.add(
        Panel::timeseries("Uptime", "s", 8)
            .desc("Seconds since each process started (drops at restarts).")
            .min(0.0)
            .target(q(format!("max by (instance) (process_uptime_seconds{s})"), "{{instance}}")),
    );
    let hb = r#"heartbeat=~"$heartbeat""#;
    b.row("Heartbeats");
    b.add(
        Panel::timeseries("Heartbeat rate vs floor", "ops", 12)
            .desc("Beats per second (1-minute and 5-minute moving averages) against each heartbeat's declared floor.")
            .min(0.0)
            .target(q(
                format!("max by (instance, heartbeat) (heartbeat_rate{})", sel(&format!(r#"{hb}, window="1m""#))),
                "{{heartbeat}} 1m {{instance}}",
            ))
            .target(q(
                format!("max by (instance, heartbeat) (heartbeat_rate{})", sel(&format!(r#"{hb}, window="5m""#))),
                "{{heartbeat}} 5m {{instance}}",
            ))
            .target(q(format!("max by (heartbeat) (heartbeat_min_rate{})", sel(hb)), "{{heartbeat}} floor")),
    );
    b.add(
        Panel::timeseries("Heartbeats per second", "ops", 8)
            .desc("rate(heartbeat_total): beats per second over the rate interval.")
            .min(0.0)
            .target(q(
                format!("sum by (heartbeat) (rate(heartbeat_total{}[$__rate_interval]))", sel(hb)),
                "{{heartbeat}}",
            )),
    );
    let by = "namespace, job, instance, heartbeat";
    b.add(
        Panel::stat("Heartbeats below their floor", "short", 4)
            .height(8)
            .desc("Heartbeats whose 1-minute rate is under their declared minimum rate, in any selected process.")
            .steps("green", &[(1.0, "red")])
            .target(q(
                format!(
                    "count(max by ({by}) (heartbeat_rate{}) < on ({by}) max by ({by}) (heartbeat_min_rate{})) or vector(0)",
                    sel(&format!(r#"{hb}, window="1m""#)),
                    sel(hb)
                ),
                "below floor",
            )),
    );
    let heartbeat_var =
        query_var("heartbeat", "Heartbeat", format!("label_values(heartbeat_total{}, heartbeat)", sel("")), ".+", None);
    dashboard(spec, "proc", "Process", "Process resources, build and heartbeats.", vec![heartbeat_var], b)
}

// ---------------------------------------------------------------------------------------
// 5. otel-lite self-metrics.

fn self_metrics(spec: &Spec) -> Dashboard {
    let s = sel("");
    // Counters that only appear once something happened (or once a pipeline exists): their
    // absence means zero, hence `or vector(0)`.
    let rate = |metric: &str| format!("sum(rate({metric}{s}[$__rate_interval])) or vector(0)");
    let in_range = |metric: &str| format!("sum(increase({metric}{s}[$__range])) or vector(0)");
    // One counter per signal (`..._traces_total`, ...), each with a `signal` label.
    let otlp = |base: &str| sel(&format!(r#"__name__=~"{}""#, names::otlp_name_regex(base)));

    let mut b = Board::new();
    let problems = [
        ("Spans dropped", "otel_lite_spans_dropped_total"),
        ("Spans failed", "otel_lite_spans_failed_total"),
        ("Log records dropped", "otel_lite_logs_dropped_total"),
        ("Log records failed", "otel_lite_logs_failed_total"),
        ("Overflow records", "otel_lite_metric_overflow_records_total"),
        ("Evicted series", "otel_lite_metric_evicted_series_total"),
        ("Export overruns", "otel_lite_spans_export_overruns_total"),
    ];
    for (title, metric) in problems {
        b.add(
            Panel::stat(format!("{title} (range)"), "short", 6)
                .desc(&format!("increase({metric}) over the dashboard's time range."))
                .steps("green", &[(1.0, "red")])
                .target(q(in_range(metric), "count").instant()),
        );
    }
    b.add(
        Panel::stat("OTLP failed exports (range)", "short", 6)
            .desc("OTLP exports that failed after retries, all signals.")
            .steps("green", &[(1.0, "red")])
            .target(
                q(format!("sum(increase({}[$__range])) or vector(0)", otlp(names::OTLP_FAILED_EXPORTS)), "count")
                    .instant(),
            ),
    );
    for signal in ["spans", "logs"] {
        let title = if signal == "spans" { "Spans" } else { "Log records" };
        b.add(
            Panel::timeseries(format!("{title} per second"), "ops", 12)
                .desc("Handed to exporters, dropped (queue full or shut down), failed in export.")
                .min(0.0)
                .target(q(rate(&format!("otel_lite_{signal}_exported_total")), "exported"))
                .target(q(rate(&format!("otel_lite_{signal}_dropped_total")), "dropped"))
                .target(q(rate(&format!("otel_lite_{signal}_failed_total")), "failed")),
        );
    }
    b.add(
        Panel::timeseries("Export overruns", "ops", 8)
            .desc("Exports that took longer than the export timeout.")
            .min(0.0)
            .target(q(rate("otel_lite_spans_export_overruns_total"), "spans"))
            .target(q(rate("otel_lite_logs_export_overruns_total"), "logs")),
    );
    b.add(
        Panel::timeseries("Metric series overflow and eviction", "ops", 8)
            .desc("Records sent to the overflow series (cardinality limit reached) and idle series evicted.")
            .min(0.0)
            .target(q(rate("otel_lite_metric_overflow_records_total"), "overflow records"))
            .target(q(rate("otel_lite_metric_evicted_series_total"), "evicted series")),
    );
    b.add(
        Panel::timeseries("OTLP failures", "ops", 8)
            .desc("OTLP exports failed after retries and the items in them, by signal (none without OTLP).")
            .min(0.0)
            .target(q(
                format!("sum by (signal) (rate({}[$__rate_interval])) or vector(0)", otlp(names::OTLP_FAILED_EXPORTS)),
                "{{signal}} exports",
            ))
            .target(q(
                format!("sum by (signal) (rate({}[$__rate_interval])) or vector(0)", otlp(names::OTLP_FAILED_ITEMS)),
                "{{signal}} items",
            )),
    );
    dashboard(
        spec,
        "self",
        "otel-lite self-metrics",
        "The SDK's own health: export pipelines, metric cardinality, OTLP.",
        Vec::new(),
        b,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitute_replaces_plain_braced_and_formatted_variables() {
        let values = BTreeMap::from([("job".to_string(), "a".to_string()), ("x_y".to_string(), "b".to_string())]);
        assert_eq!(substitute("$job ${job} ${job:regex} $x_y$job", &values), "a a a ba");
        assert_eq!(substitute("$unknown ${", &values), "$unknown ${");
    }

    #[test]
    fn slugs_are_short_and_distinct() {
        assert_eq!(slug("Quickstart_API v2"), "quickstart-api-v2");
        let a = slug("a-very-long-service-name-that-goes-on-and-on-1");
        let b = slug("a-very-long-service-name-that-goes-on-and-on-2");
        assert!(a.len() <= 28 && b.len() <= 28 && a != b, "{a} {b}");
        assert!(!slug("!!!").is_empty());
    }

    #[test]
    fn windows_scale_like_the_rules() {
        assert_eq!(scaled_window(3600, 1), "1h");
        assert_eq!(scaled_window(6 * 3600, 60), "6m");
        assert_eq!(scaled_window(3600, 3600), "1s");
        assert_eq!(scaled_window(3600, 0), "1h");
        assert_eq!(allowed(ObjectivePercentile::P99_9), "0.001");
        assert_eq!(allowed(ObjectivePercentile::P90), "0.1");
    }
}
