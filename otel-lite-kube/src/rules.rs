//! Recording and alerting rules: RED per function and per route, SLO error ratios over the
//! multi-window burn-rate windows, the burn-rate alerts, heartbeat liveness and
//! otel-lite's own health.
//!
//! Every query selects the service's series ([`Spec::matchers`]) so two services' rule
//! files never record the same series. Objectives are generic: one rule per percentile
//! and per latency threshold (PromQL cannot read a threshold from a label), so any
//! `#[instrument(objective = ...)]` is evaluated without the rules knowing the code.

use otel_lite_core::metrics::{ObjectiveLatency, ObjectivePercentile};
use serde_json::{json, Map, Value};

use crate::names::*;
use crate::spec::Spec;

/// A window of the SLO error-ratio recording rules: its unscaled name (in rule names) and
/// length in seconds (divided by [`Spec::time_scale`] in queries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// `5m`, `1h`, ...: the suffix of the recording rule's name.
    pub name: &'static str,
    /// The unscaled length.
    pub seconds: u64,
}

const fn w(name: &'static str, seconds: u64) -> Window {
    Window { name, seconds }
}

/// The windows the burn-rate alerts read (SRE workbook, multi-window multi-burn-rate).
pub const SLO_WINDOWS: [Window; 7] =
    [w("5m", 300), w("30m", 1800), w("1h", 3600), w("2h", 7200), w("6h", 21_600), w("1d", 86_400), w("3d", 259_200)];

/// `severity` of the alerts that page: kube-prometheus's Alertmanager configuration routes
/// and inhibits on `critical`, `warning` and `info`.
pub const SEVERITY_CRITICAL: &str = "critical";
/// `severity` of the alerts that open a ticket or warn.
pub const SEVERITY_WARNING: &str = "warning";
/// Label of the burn-rate alerts keeping the SRE workbook's notion: [`SLO_ALERT_PAGE`] or
/// [`SLO_ALERT_TICKET`].
pub const SLO_ALERT: &str = "slo_alert";
/// [`SLO_ALERT`] of a fast burn (`severity: critical`).
pub const SLO_ALERT_PAGE: &str = "page";
/// [`SLO_ALERT`] of a slow burn (`severity: warning`).
pub const SLO_ALERT_TICKET: &str = "ticket";

/// One multi-window burn-rate alert: it fires when the error ratio over both windows is
/// above `factor` times the error budget (`1 - ratio` of the objective's percentile).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BurnRateAlert {
    /// The alert's name.
    pub alert: &'static str,
    /// [`SEVERITY_CRITICAL`] (pages) or [`SEVERITY_WARNING`] (tickets).
    pub severity: &'static str,
    /// [`SLO_ALERT_PAGE`] or [`SLO_ALERT_TICKET`], the [`SLO_ALERT`] label.
    pub slo_alert: &'static str,
    /// The long window: how much budget was spent.
    pub long: Window,
    /// The short window: whether it is still being spent (the alert resets quickly).
    pub short: Window,
    /// The burn rate: how many times faster than "exactly spent in 30 days".
    pub factor: &'static str,
    /// The `for` duration, unscaled seconds.
    pub for_seconds: u64,
}

/// The four alerts: 2% of a 30-day budget in 1h and 5% in 6h page; 10% in 1d and 10% in
/// 3d open a ticket. Each is generated for every percentile where it can fire
/// ([`can_fire`]): for 90% the 14.4x alert would need more than 100% failed events, so it
/// is left out (a budget that large is not meant to page within the hour).
pub const BURN_RATE_ALERTS: [BurnRateAlert; 4] = [
    BurnRateAlert {
        alert: "ErrorBudgetBurnPage1h",
        severity: SEVERITY_CRITICAL,
        slo_alert: SLO_ALERT_PAGE,
        long: SLO_WINDOWS[2],
        short: SLO_WINDOWS[0],
        factor: "14.4",
        for_seconds: 120,
    },
    BurnRateAlert {
        alert: "ErrorBudgetBurnPage6h",
        severity: SEVERITY_CRITICAL,
        slo_alert: SLO_ALERT_PAGE,
        long: SLO_WINDOWS[4],
        short: SLO_WINDOWS[1],
        factor: "6",
        for_seconds: 900,
    },
    BurnRateAlert {
        alert: "ErrorBudgetBurnTicket1d",
        severity: SEVERITY_WARNING,
        slo_alert: SLO_ALERT_TICKET,
        long: SLO_WINDOWS[5],
        short: SLO_WINDOWS[3],
        factor: "3",
        for_seconds: 3600,
    },
    BurnRateAlert {
        alert: "ErrorBudgetBurnTicket3d",
        severity: SEVERITY_WARNING,
        slo_alert: SLO_ALERT_TICKET,
        long: SLO_WINDOWS[6],
        short: SLO_WINDOWS[4],
        factor: "1",
        for_seconds: 3 * 3600,
    },
];

/// `objective_kind` of a function success-rate objective.
pub const KIND_FUNCTION_SUCCESS: &str = "function_success";
/// `objective_kind` of a function latency objective.
pub const KIND_FUNCTION_LATENCY: &str = "function_latency";
/// `objective_kind` of a route's success-rate objective (a request with an `error_type`, a
/// 5xx answer or an error of the service, is a failure).
pub const KIND_HTTP_SUCCESS: &str = "http_success";
/// `objective_kind` of a route's latency objective.
pub const KIND_HTTP_LATENCY: &str = "http_latency";

/// The heartbeat that fell below its declared floor.
pub const ALERT_HEARTBEAT_TOO_SLOW: &str = "HeartbeatBelowMinRate";
/// The heartbeat the job had within the hour and has no longer. It also fires (for up to
/// the hour, scaled) when the job is deliberately scaled to zero or removed: silence it then.
pub const ALERT_HEARTBEAT_MISSING: &str = "HeartbeatMissing";
/// The window of the heartbeat rate compared with the floor (unscaled seconds).
pub const HEARTBEAT_RATE_WINDOW: u64 = 900;

/// The counter a self-metric alert reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelfCounter {
    /// One series name (`otel_lite_spans_dropped_total`).
    Plain(&'static str),
    /// One counter per OTLP signal, `<base>_<signal>_total` with a [`SIGNAL`] label (the
    /// exporter registers one instrument per signal, [`otlp_counter`]); the field is the
    /// base (`otel_lite_otlp_failed_exports`).
    PerSignal(&'static str),
}

impl SelfCounter {
    /// The selector of the counter's series with `matchers` (the service's):
    /// `name{matchers}`, or `{__name__=~"<base>_(traces|metrics|logs)_total", matchers}`.
    pub fn selector(self, matchers: &str) -> String {
        match self {
            SelfCounter::Plain(name) => format!("{name}{{{matchers}}}"),
            SelfCounter::PerSignal(base) => format!("{{__name__=~\"{}\", {matchers}}}", otlp_name_regex(base)),
        }
    }

    /// The labels the alert keeps: the target's, and the signal of a per-signal counter.
    pub fn by(self) -> String {
        match self {
            SelfCounter::Plain(_) => format!("{NAMESPACE}, {JOB}, instance"),
            SelfCounter::PerSignal(_) => format!("{NAMESPACE}, {JOB}, instance, {SIGNAL}"),
        }
    }

    /// Every series name the counter has: (name, the `signal` label's value).
    pub fn series(self) -> Vec<(String, Option<&'static str>)> {
        match self {
            SelfCounter::Plain(name) => vec![(name.to_string(), None)],
            SelfCounter::PerSignal(base) => OTLP_SIGNALS.iter().map(|s| (otlp_counter(base, s), Some(*s))).collect(),
        }
    }

    /// The name the alert's description shows (a template for a per-signal counter).
    fn described(self) -> String {
        match self {
            SelfCounter::Plain(name) => name.to_string(),
            SelfCounter::PerSignal(base) => format!("{base}_{{{{ $labels.{SIGNAL} }}}}_total"),
        }
    }
}

/// One alert per otel-lite self-metric counter: (alert, counter, what an increase means).
pub const SELF_METRIC_ALERTS: [(&str, SelfCounter, &str); 10] = [
    ("OtelLiteSpansDropped", SelfCounter::Plain(SPANS_DROPPED), "spans were dropped because the export queue was full"),
    (
        "OtelLiteLogsDropped",
        SelfCounter::Plain(LOGS_DROPPED),
        "log records were dropped because the export queue was full",
    ),
    ("OtelLiteSpanExportFailed", SelfCounter::Plain(SPANS_FAILED), "spans could not be exported"),
    ("OtelLiteLogExportFailed", SelfCounter::Plain(LOGS_FAILED), "log records could not be exported"),
    ("OtelLiteSpanExportOverrun", SelfCounter::Plain(SPANS_EXPORT_OVERRUNS), "span exports outlasted their interval"),
    ("OtelLiteOtlpExportFailed", SelfCounter::PerSignal(OTLP_FAILED_EXPORTS), "OTLP exports failed after retries"),
    (
        "OtelLiteOtlpItemsRejected",
        SelfCounter::PerSignal(OTLP_REJECTED_ITEMS),
        "items were rejected by the OTLP receiver",
    ),
    (
        "OtelLiteMetricOverflow",
        SelfCounter::Plain(METRIC_OVERFLOW_RECORDS),
        "measurements went to the overflow series (cardinality limit)",
    ),
    (
        "OtelLiteMetricSeriesEvicted",
        SelfCounter::Plain(METRIC_EVICTED_SERIES),
        "series were evicted to stay within the cardinality limit",
    ),
    (
        "OtelLiteInvalidMeasurements",
        SelfCounter::Plain(METRIC_INVALID_MEASUREMENTS),
        "measurements were refused as invalid",
    ),
];
/// The window of the self-metric alerts' `increase` (unscaled seconds).
pub const SELF_METRIC_WINDOW: u64 = 900;

/// The quantiles the RED recording rules record (`p50`, `p90`, `p99`).
pub const RED_QUANTILES: [(&str, &str); 3] = [("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99")];

/// The unscaled window of the RED recording rules (seconds; `rate5m` in their names).
const RED_WINDOW: u64 = 300;

/// The evaluation interval of the group of the 1d and 3d SLO error ratios: they change
/// slowly and each reads days of samples, so they need not run at every global evaluation.
pub const LONG_SLO_RATIOS_INTERVAL: &str = "1m";

/// Whether a window's SLO error ratio is in the `slo-error-ratios-long` group (1d and 3d).
fn long_window(window: Window) -> bool {
    window.seconds >= 86_400
}

/// The rule groups, as the `groups` list of a rules file or of a PrometheusRule's spec.
/// Group names are prefixed with the service so they are unique across services.
///
/// The 1d and 3d SLO error ratios have their own group, evaluated every
/// [`LONG_SLO_RATIOS_INTERVAL`]; with a [`Spec::time_scale`] above 1 the group has no
/// `interval` (a group interval is Prometheus's own and is not scaled: the group runs at
/// the global evaluation interval, like the others, which a scaled deployment or test sets
/// short).
pub fn rule_groups(spec: &Spec) -> Vec<Value> {
    let group = |suffix: &str, rules: Vec<Value>| json!({"name": format!("{}.{suffix}", spec.service), "rules": rules});
    let mut long_ratios = group("slo-error-ratios-long", slo_ratios(spec, true));
    if spec.time_scale <= 1 {
        long_ratios["interval"] = LONG_SLO_RATIOS_INTERVAL.into();
    }
    vec![
        group("function-red", function_red(spec)),
        group("http-red", http_red(spec)),
        group("slo-error-ratios", slo_ratios(spec, false)),
        long_ratios,
        group("slo-burn-rate", burn_rate_alerts(spec)),
        group("heartbeats", heartbeat_alerts(spec)),
        group("otel-lite", self_metric_alerts(spec)),
    ]
}

/// A plain Prometheus rules file (`groups:`).
pub fn rules_file(spec: &Spec) -> Value {
    json!({ "groups": rule_groups(spec) })
}

/// The `monitoring.coreos.com/v1` PrometheusRule, labelled for the release's Prometheus.
pub fn prometheus_rule(spec: &Spec) -> Value {
    json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": crate::monitors::metadata(spec, &format!("{}-otel-lite", spec.service)),
        "spec": { "groups": rule_groups(spec) },
    })
}

fn record(name: &str, expr: String, labels: &[(&str, &str)]) -> Value {
    let mut rule = Map::new();
    rule.insert("record".into(), name.into());
    rule.insert("expr".into(), expr.into());
    if !labels.is_empty() {
        rule.insert("labels".into(), label_map(labels));
    }
    Value::Object(rule)
}

fn alert(
    spec: &Spec,
    name: &str,
    expr: String,
    for_seconds: u64,
    labels: &[(&str, &str)],
    summary: String,
    description: String,
) -> Value {
    json!({
        "alert": name,
        "expr": expr,
        "for": spec.window(for_seconds),
        "labels": label_map(labels),
        "annotations": { "summary": summary, "description": description },
    })
}

fn label_map(labels: &[(&str, &str)]) -> Value {
    Value::Object(labels.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect())
}

fn function_red(spec: &Spec) -> Vec<Value> {
    let sel = spec.matchers();
    let w = spec.window(RED_WINDOW);
    let by = format!("{NAMESPACE}, {JOB}, {MODULE}, {FUNCTION}");
    let mut rules = vec![
        record(
            FUNCTION_CALLS_RATE,
            format!("sum by ({by}, {RESULT}) (rate({FUNCTION_CALLS_TOTAL}{{{sel}}}[{w}]))"),
            &[],
        ),
        record(
            FUNCTION_ERRORS_RATIO,
            error_ratio(&by, FUNCTION_CALLS_TOTAL, &sel, &format!("{RESULT}=\"{RESULT_ERROR}\""), &w),
            &[],
        ),
    ];
    for (name, q) in RED_QUANTILES {
        rules.push(record(
            &format!("{FUNCTION_DURATION_QUANTILE_PREFIX}{name}_rate5m"),
            format!("histogram_quantile({q}, sum by ({by}, {LE}) (rate({FUNCTION_DURATION_BUCKET}{{{sel}}}[{w}])))"),
            &[],
        ));
    }
    rules
}

fn http_red(spec: &Spec) -> Vec<Value> {
    let sel = spec.matchers();
    let w = spec.window(RED_WINDOW);
    let by = format!("{NAMESPACE}, {JOB}, {HTTP_ROUTE}");
    let mut rules = vec![
        record(
            HTTP_REQUESTS_RATE,
            format!("sum by ({by}, {HTTP_REQUEST_METHOD}) (rate({HTTP_SERVER_DURATION_COUNT}{{{sel}}}[{w}]))"),
            &[],
        ),
        record(HTTP_ERRORS_RATIO, error_ratio(&by, HTTP_SERVER_DURATION_COUNT, &sel, &failed_request(), &w), &[]),
    ];
    for (name, q) in RED_QUANTILES {
        rules.push(record(
            &format!("{HTTP_DURATION_QUANTILE_PREFIX}{name}_rate5m"),
            format!("histogram_quantile({q}, sum by ({by}, {LE}) (rate({HTTP_SERVER_DURATION_BUCKET}{{{sel}}}[{w}])))"),
            &[],
        ));
    }
    rules
}

/// The requests that failed: the server layer sets `error_type` on a 5xx answer (the status
/// code) and on an error of the service (which has no status code), and only then.
fn failed_request() -> String {
    format!("{ERROR_TYPE}!=\"\"")
}

/// Failed / all, by `by`; 0 (not absent) when nothing failed, so the ratio is plotted and
/// compared with thresholds even in the good case.
fn error_ratio(by: &str, series: &str, sel: &str, failed: &str, window: &str) -> String {
    let all = format!("sum by ({by}) (rate({series}{{{sel}}}[{window}]))");
    format!("(\n  sum by ({by}) (rate({series}{{{sel}, {failed}}}[{window}]))\n  or\n  0 * {all}\n)\n/\n{all}")
}

/// 1 - (under the threshold / all), by `by`.
fn latency_error_ratio(by: &str, bucket: &str, count: &str, sel: &str, threshold: &str, window: &str) -> String {
    format!(
        "1 - (\n  sum by ({by}) (rate({bucket}{{{sel}, {LE}=\"{threshold}\"}}[{window}]))\n  /\n  sum by ({by}) (rate({count}{{{sel}}}[{window}]))\n)"
    )
}

/// The record name of the SLO error ratio over `window`.
pub fn slo_ratio_record(window: Window) -> String {
    format!("{SLO_ERRORS_RATIO_PREFIX}{}", window.name)
}

/// The SLO error ratios of the windows up to 6h (`long` false) or of 1d and 3d (`long`).
fn slo_ratios(spec: &Spec, long: bool) -> Vec<Value> {
    let base = spec.matchers();
    let by = format!("{NAMESPACE}, {JOB}, {OBJECTIVE_NAME}, {OBJECTIVE_PERCENTILE}");
    let mut rules = Vec::new();
    for window in SLO_WINDOWS.into_iter().filter(|w| long_window(*w) == long) {
        let record_name = slo_ratio_record(window);
        let w = spec.window(window.seconds);
        // Function success: calls labelled with a success objective.
        let sel = format!("{base}, {OBJECTIVE_PERCENTILE}!=\"\"");
        rules.push(record(
            &record_name,
            error_ratio(&by, FUNCTION_CALLS_TOTAL, &sel, &format!("{RESULT}=\"{RESULT_ERROR}\""), &w),
            &[(OBJECTIVE_KIND, KIND_FUNCTION_SUCCESS)],
        ));
        // Function latency: one rule per threshold, the bucket whose `le` is the threshold.
        for threshold in ObjectiveLatency::ALL {
            let t = threshold.label();
            let sel = format!("{base}, {OBJECTIVE_LATENCY_THRESHOLD}=\"{t}\"");
            rules.push(record(
                &record_name,
                latency_error_ratio(&by, FUNCTION_DURATION_BUCKET, FUNCTION_DURATION_COUNT, &sel, t, &w),
                &[(OBJECTIVE_KIND, KIND_FUNCTION_LATENCY), (OBJECTIVE_LATENCY_THRESHOLD, t)],
            ));
        }
        // Route objectives: the route's requests, labelled with the objective.
        let by = format!("{NAMESPACE}, {JOB}");
        for objective in &spec.http_objectives {
            let sel = format!("{base}, {HTTP_ROUTE}=\"{}\"", objective.route);
            if let Some(p) = objective.success_rate {
                rules.push(record(
                    &record_name,
                    error_ratio(&by, HTTP_SERVER_DURATION_COUNT, &sel, &failed_request(), &w),
                    &[
                        (OBJECTIVE_KIND, KIND_HTTP_SUCCESS),
                        (OBJECTIVE_NAME, &objective.name),
                        (OBJECTIVE_PERCENTILE, p.label()),
                    ],
                ));
            }
            if let Some((threshold, p)) = objective.latency {
                let t = threshold.label();
                rules.push(record(
                    &record_name,
                    latency_error_ratio(&by, HTTP_SERVER_DURATION_BUCKET, HTTP_SERVER_DURATION_COUNT, &sel, t, &w),
                    &[
                        (OBJECTIVE_KIND, KIND_HTTP_LATENCY),
                        (OBJECTIVE_NAME, &objective.name),
                        (OBJECTIVE_PERCENTILE, p.label()),
                        (OBJECTIVE_LATENCY_THRESHOLD, t),
                    ],
                ));
            }
        }
    }
    rules
}

/// The error budget of a percentile as PromQL number text (`0.001` for 99.9).
pub fn error_budget(p: ObjectivePercentile) -> String {
    trim_number((1.0 - p.ratio()) * 1e6, 1e6)
}

/// `value / scale` rounded to 1/scale, without trailing zeros.
fn trim_number(value: f64, scale: f64) -> String {
    let rounded = value.round() / scale;
    let text = format!("{rounded:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Whether `alert` can fire for an objective of `p`: its threshold, factor x budget, is
/// below 1 (a ratio of failed events is at most 1). Compared in millionths, exactly.
pub fn can_fire(alert: &BurnRateAlert, p: ObjectivePercentile) -> bool {
    let factor: f64 = alert.factor.parse().unwrap_or(1.0);
    let budget_millionths = ((1.0 - p.ratio()) * 1e6).round();
    (factor * budget_millionths).round() < 1e6
}

fn burn_rate_alerts(spec: &Spec) -> Vec<Value> {
    let base = spec.matchers();
    let mut rules = Vec::new();
    for a in BURN_RATE_ALERTS {
        let factor: f64 = a.factor.parse().unwrap_or(1.0);
        let days = trim_number(30.0 / factor * 10.0, 10.0);
        for p in ObjectivePercentile::ALL.into_iter().filter(|p| can_fire(&a, *p)) {
            let budget = error_budget(p);
            let sel = format!("{base}, {OBJECTIVE_PERCENTILE}=\"{}\"", p.label());
            let threshold = format!("({} * {budget})", a.factor);
            let expr = format!(
                "{long}{{{sel}}} > {threshold}\nand\n{short}{{{sel}}} > {threshold}",
                long = slo_ratio_record(a.long),
                short = slo_ratio_record(a.short),
            );
            let budget_percent = trim_number((1.0 - p.ratio()) * 100.0 * 1e4, 1e4);
            rules.push(alert(
                spec,
                a.alert,
                expr,
                a.for_seconds,
                // The percentile the expression selects, also as a static label: it keeps
                // the four rules of an alert distinct for promtool's duplicate check.
                &[("severity", a.severity), (SLO_ALERT, a.slo_alert), (OBJECTIVE_PERCENTILE, p.label())],
                format!(
                    "Objective {{{{ $labels.{OBJECTIVE_NAME} }}}} ({{{{ $labels.{OBJECTIVE_KIND} }}}}) burns its error budget {}x too fast",
                    a.factor
                ),
                format!(
                    "{{{{ $labels.{JOB} }}}} in {{{{ $labels.{NAMESPACE} }}}}: {{{{ $value | humanizePercentage }}}} of the \
                     events of objective {{{{ $labels.{OBJECTIVE_NAME} }}}} failed over the last {long} (and over the last {short}) \
                     against a budget of {budget_percent}% ({{{{ $labels.{OBJECTIVE_PERCENTILE} }}}}% objective): a 30-day budget \
                     lasts {days} days at this rate.",
                    long = spec.window(a.long.seconds),
                    short = spec.window(a.short.seconds),
                ),
            ));
        }
    }
    rules
}

fn heartbeat_alerts(spec: &Spec) -> Vec<Value> {
    let sel = spec.matchers();
    let w = spec.window(HEARTBEAT_RATE_WINDOW);
    let hour = spec.window(3600);
    let by = format!("{NAMESPACE}, {JOB}, {HEARTBEAT}");
    vec![
        alert(
            spec,
            ALERT_HEARTBEAT_TOO_SLOW,
            // Per process: each replica's heartbeat against the floor it declares.
            format!(
                "rate({HEARTBEAT_TOTAL}{{{sel}}}[{w}])\n  < on ({NAMESPACE}, {JOB}, instance, {HEARTBEAT})\n{HEARTBEAT_MIN_RATE}{{{sel}}}"
            ),
            300,
            &[("severity", SEVERITY_WARNING)],
            format!("Heartbeat {{{{ $labels.{HEARTBEAT} }}}} is slower than its declared floor"),
            format!(
                "{{{{ $labels.{HEARTBEAT} }}}} of {{{{ $labels.{JOB} }}}} on {{{{ $labels.instance }}}} beat \
                 {{{{ $value | humanize }}}} times per second over the last {w}, below its {HEARTBEAT_MIN_RATE}."
            ),
        ),
        alert(
            spec,
            ALERT_HEARTBEAT_MISSING,
            // By job, not by instance: a rolling update replaces the processes but the job
            // keeps the heartbeat; the alert is for the job losing it altogether.
            format!(
                "max by ({by}) (max_over_time({HEARTBEAT_MIN_RATE}{{{sel}}}[{hour}]))\nunless\nmax by ({by}) ({HEARTBEAT_MIN_RATE}{{{sel}}})"
            ),
            300,
            &[("severity", SEVERITY_CRITICAL)],
            format!("Heartbeat {{{{ $labels.{HEARTBEAT} }}}} of {{{{ $labels.{JOB} }}}} is gone"),
            format!(
                "{{{{ $labels.{JOB} }}}} in {{{{ $labels.{NAMESPACE} }}}} declared heartbeat {{{{ $labels.{HEARTBEAT} }}}} \
                 within the last {hour} and no process declares it now: the process that beats is not running or not scraped."
            ),
        ),
    ]
}

fn self_metric_alerts(spec: &Spec) -> Vec<Value> {
    let sel = spec.matchers();
    let w = spec.window(SELF_METRIC_WINDOW);
    SELF_METRIC_ALERTS
        .iter()
        .map(|(name, counter, what)| {
            alert(
                spec,
                name,
                format!("sum by ({}) (increase({}[{w}])) > 0", counter.by(), counter.selector(&sel)),
                300,
                &[("severity", SEVERITY_WARNING)],
                format!("otel-lite on {{{{ $labels.instance }}}}: {what}"),
                format!(
                    "{{{{ $labels.{JOB} }}}} on {{{{ $labels.instance }}}}: {{{{ $value | humanize }}}} {what} over the \
                     last {w} ({}).",
                    counter.described()
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_exact_decimal_text() {
        let budgets: Vec<_> = ObjectivePercentile::ALL.iter().map(|p| error_budget(*p)).collect();
        assert_eq!(budgets, ["0.1", "0.05", "0.01", "0.001"]);
    }

    #[test]
    fn burn_rate_alerts_that_cannot_fire_are_left_out() {
        let alerts: Vec<(String, String)> = rule_groups(&Spec::quickstart())
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| {
                let name = r["alert"].as_str()?.to_string();
                Some((name, r["labels"][OBJECTIVE_PERCENTILE].as_str().unwrap_or_default().to_string()))
            })
            .collect();
        // 14.4 x 0.1 >= 1: no fast-burn page for a 90% objective.
        assert!(!can_fire(&BURN_RATE_ALERTS[0], ObjectivePercentile::P90));
        assert!(!alerts.contains(&("ErrorBudgetBurnPage1h".into(), "90".into())), "{alerts:?}");
        // Every other (alert, percentile) pair is generated.
        for a in &BURN_RATE_ALERTS {
            for p in ObjectivePercentile::ALL {
                if a.alert == "ErrorBudgetBurnPage1h" && p == ObjectivePercentile::P90 {
                    continue;
                }
                assert!(can_fire(a, p), "{} {}", a.alert, p.label());
                assert!(alerts.contains(&(a.alert.into(), p.label().into())), "{} {} missing", a.alert, p.label());
            }
        }
        assert_eq!(alerts.iter().filter(|(a, _)| a.starts_with("ErrorBudgetBurn")).count(), 15);
    }

    #[test]
    fn page_alerts_are_critical_and_ticket_alerts_warnings() {
        for group in rule_groups(&Spec::quickstart()) {
            for rule in group["rules"].as_array().into_iter().flatten().filter(|r| r["alert"].is_string()) {
                let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
                let expected = match (rule["alert"].as_str().unwrap_or_default(), rule["labels"][SLO_ALERT].as_str()) {
                    (_, Some("page")) | (ALERT_HEARTBEAT_MISSING, None) => SEVERITY_CRITICAL,
                    _ => SEVERITY_WARNING,
                };
                assert_eq!(severity, expected, "{rule}");
            }
        }
    }

    #[test]
    fn long_slo_ratios_have_their_own_group_evaluated_every_minute_unless_scaled() {
        let group = |spec: &Spec| {
            rule_groups(spec).into_iter().find(|g| g["name"] == "quickstart.slo-error-ratios-long").expect("group")
        };
        let spec = Spec::quickstart();
        let long = group(&spec);
        assert_eq!(long["interval"], "1m");
        let records: std::collections::BTreeSet<&str> =
            long["rules"].as_array().expect("rules").iter().filter_map(|r| r["record"].as_str()).collect();
        assert_eq!(records, ["objective:slo_errors:ratio_rate1d", "objective:slo_errors:ratio_rate3d"].into());
        let short = rule_groups(&spec).into_iter().find(|g| g["name"] == "quickstart.slo-error-ratios").expect("short");
        assert!(short.get("interval").is_none());
        assert!(!short.to_string().contains("ratio_rate1d") && !short.to_string().contains("ratio_rate3d"));
        let mut scaled = Spec::quickstart();
        scaled.time_scale = 60;
        assert!(group(&scaled).get("interval").is_none());
    }

    #[test]
    fn otlp_self_metric_alerts_select_the_per_signal_counters() {
        let text = rules_file(&Spec::quickstart()).to_string();
        for base in [OTLP_FAILED_EXPORTS, OTLP_REJECTED_ITEMS] {
            assert!(
                text.contains(&format!(r#"{{__name__=~\"{base}_(traces|metrics|logs)_total\", job=\"quickstart\""#)),
                "{base}"
            );
            assert!(!text.contains(&format!("{base}_total")), "{base}");
        }
        assert!(text.contains("sum by (namespace, job, instance, signal) (increase({__name__=~"));
    }

    #[test]
    fn http_failures_are_requests_with_an_error_type() {
        let text = rules_file(&Spec::quickstart()).to_string();
        assert!(!text.contains("5.."), "a 5xx status selector is left");
        assert!(text.contains(HTTP_ERRORS_RATIO));
        assert!(text.contains(r#"http_route=\"/checkout\", error_type!=\"\""#));
    }

    #[test]
    fn scaled_rules_keep_their_names() {
        let mut spec = Spec::quickstart();
        spec.time_scale = 60;
        let text = rules_file(&spec).to_string();
        assert!(text.contains("objective:slo_errors:ratio_rate3d"));
        assert!(text.contains("[1h12m]"));
        assert!(!text.contains("[3d]"));
    }
}
