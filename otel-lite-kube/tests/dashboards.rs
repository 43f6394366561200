//! Structural checks of the generated Grafana dashboards and of the objects installing
//! them. The queries themselves run against a live Prometheus in the end-to-end test.

use std::collections::{BTreeMap, BTreeSet};

use otel_lite_core::metrics::{ObjectiveLatency, ObjectivePercentile};
use otel_lite_kube::dashboards::{configmaps, dashboards, grafana_dashboards, panel_queries, Dashboard};
use otel_lite_kube::{RouteObjective, Spec};
use serde_json::Value;

/// The quickstart, and a spec with several route objectives, a long name and a time scale.
fn specs() -> Vec<Spec> {
    let mut other = Spec::quickstart();
    other.service = "Payments API / a rather long service name".into();
    other.namespace = "payments".into();
    other.time_scale = 60;
    other.http_objectives.push(RouteObjective {
        name: "pay".into(),
        route: "/pay/{id}".into(),
        success_rate: Some(ObjectivePercentile::P99_9),
        latency: None,
    });
    other.http_objectives.push(RouteObjective {
        name: "list".into(),
        route: "/list".into(),
        success_rate: None,
        latency: Some((ObjectiveLatency::Ms250, ObjectivePercentile::P95)),
    });
    vec![Spec::quickstart(), other]
}

fn all() -> Vec<(Spec, Vec<Dashboard>)> {
    specs().into_iter().map(|s| (s.clone(), dashboards(&s))).collect()
}

fn panels(d: &Dashboard) -> &Vec<Value> {
    d.json["panels"].as_array().expect("panels")
}

/// Panels with queries (row headers carry none).
fn data_panels(d: &Dashboard) -> impl Iterator<Item = &Value> {
    panels(d).iter().filter(|p| p["type"] != "row")
}

fn targets(p: &Value) -> &Vec<Value> {
    p["targets"].as_array().expect("targets")
}

fn exprs(d: &Dashboard) -> Vec<(String, String)> {
    data_panels(d)
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            targets(p).iter().map(move |t| (title.clone(), t["expr"].as_str().expect("expr").to_string()))
        })
        .collect()
}

fn variables(d: &Dashboard) -> &Vec<Value> {
    d.json["templating"]["list"].as_array().expect("templating.list")
}

fn variable<'a>(d: &'a Dashboard, name: &str) -> &'a Value {
    variables(d).iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("{}: no variable {name}", d.uid))
}

/// Names referenced as `$name` or `${name...}`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let name: String =
            after.trim_start_matches('{').chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        out.insert(name);
        rest = after;
    }
    out
}

/// The range of each `rate(`/`increase(`/`changes(` call: the last `[...]` inside its
/// parentheses (string literals skipped).
fn windows(expr: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for func in ["rate(", "increase(", "changes("] {
        let mut from = 0;
        while let Some(i) = expr[from..].find(func) {
            let start = from + i + func.len();
            from = start;
            if func == "rate(" && expr[..start - func.len()].ends_with(['i', '_']) {
                continue; // irate( is not used; a `_rate(` would be another function
            }
            let (mut depth, mut in_string, mut escaped, mut end) = (1, false, false, None);
            for (j, c) in expr[start..].char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if in_string => escaped = true,
                    '"' => in_string = !in_string,
                    '(' if !in_string => depth += 1,
                    ')' if !in_string => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(start + j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let body = &expr[start..end.expect("unbalanced parentheses")];
            let open = body.rfind('[').unwrap_or_else(|| panic!("{func} without a range: {expr}"));
            let close = body[open..].find(']').expect("unclosed range") + open;
            out.push((func.trim_end_matches('(').to_string(), body[open + 1..close].to_string()));
        }
    }
    out
}

#[test]
fn five_dashboards_schema_39_with_tags_and_stable_unique_uids() {
    let mut uids = BTreeSet::new();
    for (spec, ds) in all() {
        assert_eq!(ds.len(), 5);
        for d in &ds {
            assert_eq!(d.json["schemaVersion"], 39, "{}", d.uid);
            assert_eq!(d.json["uid"], d.uid.as_str());
            assert_eq!(d.json["title"], d.title.as_str());
            assert!(d.title.contains(&spec.service), "{}", d.title);
            assert_eq!(d.json["tags"], serde_json::json!(["otel-lite", spec.service]));
            assert!(d.uid.len() <= 40, "uid too long: {}", d.uid);
            assert!(d.uid.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{}", d.uid);
            assert!(uids.insert(d.uid.clone()), "duplicate uid {}", d.uid);
            assert!(!panels(d).is_empty());
        }
        // Stable: the same spec gives the same dashboards.
        assert_eq!(ds, dashboards(&spec));
    }
    assert_eq!(
        dashboards(&Spec::quickstart()).iter().map(|d| d.uid.as_str()).collect::<Vec<_>>(),
        [
            "otel-quickstart-fn",
            "otel-quickstart-http",
            "otel-quickstart-slo",
            "otel-quickstart-proc",
            "otel-quickstart-self"
        ]
    );
}

#[test]
fn panel_ids_are_unique_and_the_grid_fits_without_overlaps() {
    for (_, ds) in all() {
        for d in &ds {
            let mut ids = BTreeSet::new();
            let mut rects: Vec<(u64, u64, u64, u64, String)> = Vec::new();
            for p in panels(d) {
                let id = p["id"].as_u64().expect("numeric id");
                assert!(ids.insert(id), "{}: duplicate panel id {id}", d.uid);
                let g = &p["gridPos"];
                let (x, y, w, h) = (g["x"].as_u64(), g["y"].as_u64(), g["w"].as_u64(), g["h"].as_u64());
                let (x, y, w, h) = (x.expect("x"), y.expect("y"), w.expect("w"), h.expect("h"));
                assert!(w > 0 && h > 0 && x + w <= 24, "{}: panel {id} {g}", d.uid);
                let title = p["title"].as_str().unwrap_or_default().to_string();
                for (ox, oy, ow, oh, other) in &rects {
                    let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
                    assert!(!overlap, "{}: '{title}' overlaps '{other}'", d.uid);
                }
                rects.push((x, y, w, h, title));
            }
        }
    }
}

#[test]
fn every_panel_and_target_uses_the_datasource_variable_and_every_panel_has_a_unit() {
    let ds = serde_json::json!({ "type": "prometheus", "uid": "${datasource}" });
    for (_, dashboards) in all() {
        for d in &dashboards {
            let v = variable(d, "datasource");
            assert_eq!((&v["type"], &v["query"]), (&"datasource".into(), &"prometheus".into()));
            for p in panels(d) {
                if p["type"] == "row" {
                    assert!(p.get("targets").is_none(), "{}: a row with queries", d.uid);
                    continue;
                }
                let title = &p["title"];
                assert_eq!(p["datasource"], ds, "{}: {title}", d.uid);
                let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
                assert!(!unit.is_empty(), "{}: {title} has no unit", d.uid);
                assert!(!targets(p).is_empty(), "{}: {title} has no query", d.uid);
                let mut ref_ids = BTreeSet::new();
                for t in targets(p) {
                    assert_eq!(t["datasource"], ds, "{}: {title}", d.uid);
                    assert!(ref_ids.insert(t["refId"].as_str().expect("refId")), "{}: {title}", d.uid);
                    assert!(!t["expr"].as_str().unwrap_or_default().trim().is_empty(), "{}: {title}", d.uid);
                }
            }
        }
    }
}

#[test]
fn every_query_selects_namespace_job_and_instance() {
    for (_, ds) in all() {
        for d in &ds {
            for (title, expr) in exprs(d) {
                for needle in [r#"namespace=~"$namespace""#, r#"job=~"$job""#, r#"instance=~"$instance""#] {
                    assert!(expr.contains(needle), "{}: '{title}' lacks {needle}: {expr}", d.uid);
                }
                // Every selector (each `{...}` after a metric name or alone) carries them:
                // as many `job=~"$job"` as `namespace=~` and `instance=~`.
                let n = expr.matches(r#"job=~"$job""#).count();
                assert_eq!(expr.matches(r#"namespace=~"$namespace""#).count(), n, "{title}");
                assert_eq!(expr.matches(r#"instance=~"$instance""#).count(), n, "{title}");
                assert_eq!(expr.matches("{namespace=~").count(), n, "{}: '{title}' has a bare selector: {expr}", d.uid);
            }
        }
    }
}

#[test]
fn every_rate_uses_the_rate_interval_the_range_or_a_burn_rate_window() {
    for (spec, ds) in all() {
        let (h1, h6) = if spec.time_scale == 1 { ("1h", "6h") } else { ("1m", "6m") };
        let mut burn_windows = BTreeSet::new();
        for d in &ds {
            for (title, expr) in exprs(d) {
                for (func, window) in windows(&expr) {
                    match window.as_str() {
                        "$__rate_interval" => assert_ne!(func, "changes", "{title}"),
                        "$__range" => {
                            // Over the dashboard's range: budgets and counts, shown as instant stats.
                            let panel = data_panels(d).find(|p| p["title"] == title.as_str()).expect("panel");
                            assert_eq!(panel["type"], "stat", "{}: '{title}' uses $__range", d.uid);
                            assert!(targets(panel).iter().all(|t| t["instant"] == true), "{title}");
                        }
                        w if (w == h1 || w == h6) && title.contains("burn rate") => {
                            burn_windows.insert(w.to_string());
                        }
                        w => panic!("{}: '{title}' uses {func}(...[{w}]): {expr}", d.uid),
                    }
                }
            }
        }
        assert_eq!(burn_windows, BTreeSet::from([h1.to_string(), h6.to_string()]));
    }
}

#[test]
fn every_referenced_variable_is_defined() {
    let builtins = ["__rate_interval", "__range", "__interval"];
    for (_, ds) in all() {
        for d in &ds {
            let defined: BTreeSet<String> =
                variables(d).iter().map(|v| v["name"].as_str().expect("name").to_string()).collect();
            let mut texts: Vec<String> = exprs(d).into_iter().map(|(_, e)| e).collect();
            texts.extend(variables(d).iter().filter_map(|v| v["query"].as_str().map(String::from)));
            for text in texts {
                for name in referenced(&text) {
                    assert!(
                        defined.contains(&name) || builtins.contains(&name.as_str()),
                        "{}: ${name} is not defined ({text})",
                        d.uid
                    );
                }
            }
        }
    }
}

#[test]
fn namespace_job_and_instance_are_chained_and_all_matches_absent_labels() {
    let spec = Spec::quickstart();
    for d in dashboards(&spec) {
        for name in ["namespace", "job", "instance"] {
            let v = variable(&d, name);
            assert_eq!(v["type"], "query");
            assert_eq!(v["includeAll"], true, "{name}");
            assert_eq!(v["allValue"], ".*", "{name}: All must match series without the label");
            assert!(v["query"].as_str().expect("query").starts_with("label_values("), "{name}");
        }
        // From `up`: every scrape target has it, target_info can be turned off.
        assert_eq!(variable(&d, "namespace")["query"], "label_values(up, namespace)");
        assert!(variable(&d, "job")["query"].as_str().expect("q").starts_with("label_values(up{"));
        assert!(variable(&d, "instance")["query"].as_str().expect("q").starts_with("label_values(up{"));
        assert!(variable(&d, "job")["query"].as_str().expect("q").contains(r#"namespace=~"$namespace""#));
        let instance = variable(&d, "instance")["query"].as_str().expect("q").to_string();
        assert!(instance.contains(r#"namespace=~"$namespace""#) && instance.contains(r#"job=~"$job""#));
        // Defaults point at the spec's service.
        assert_eq!(variable(&d, "namespace")["current"]["value"][0], "demo");
        assert_eq!(variable(&d, "job")["current"]["value"][0], "quickstart");
        // The variables come after the datasource they query.
        assert_eq!(variables(&d)[0]["name"], "datasource");
    }
}

#[test]
fn functions_dashboard_has_red_panels_with_exemplars_and_a_function_variable() {
    let d = &dashboards(&Spec::quickstart())[0];
    assert!(variable(d, "function")["query"].as_str().expect("q").contains("function_calls_total"));
    let titles: Vec<&str> = data_panels(d).map(|p| p["title"].as_str().unwrap_or_default()).collect();
    for t in ["Calls per second by result", "Error ratio by function", "Latency p50 / p90 / p99", "In flight"] {
        assert!(titles.contains(&t), "missing {t}: {titles:?}");
    }
    let latency = data_panels(d).find(|p| p["title"] == "Latency p50 / p90 / p99").expect("latency");
    assert_eq!(latency["fieldConfig"]["defaults"]["unit"], "s");
    assert_eq!(targets(latency).len(), 3);
    for (t, q) in targets(latency).iter().zip(["0.5", "0.9", "0.99"]) {
        assert_eq!(t["exemplar"], true);
        let expr = t["expr"].as_str().expect("expr");
        assert!(expr.starts_with(&format!("histogram_quantile({q}, sum by (le, function) (rate(")), "{expr}");
        assert!(expr.contains(r#"function=~"$function""#), "{expr}");
    }
    // Every latency quantile graphed anywhere has exemplars on.
    for d in dashboards(&Spec::quickstart()) {
        for p in data_panels(&d).filter(|p| p["type"] == "timeseries") {
            for t in targets(p) {
                let e = t["expr"].as_str().expect("expr");
                if e.contains("histogram_quantile") && e.contains("duration_seconds_bucket") && t["instant"] == false {
                    assert_eq!(t["exemplar"], true, "{}: {}", d.uid, p["title"]);
                }
            }
        }
    }
}

#[test]
fn http_dashboard_has_a_route_variable_and_uses_it() {
    let d = &dashboards(&Spec::quickstart())[1];
    let route = variable(d, "route");
    assert_eq!(route["allValue"], ".*", "All must include requests without http_route");
    let server: Vec<_> = exprs(d).into_iter().filter(|(_, e)| e.contains("http_server_request_duration")).collect();
    assert!(server.len() >= 6);
    for (title, e) in server {
        assert!(e.contains(r#"http_route=~"$route""#), "{title}: {e}");
    }
    let all = exprs(d).into_iter().map(|(_, e)| e).collect::<Vec<_>>().join("\n");
    for metric in [
        "http_server_active_requests",
        "http_server_request_body_size_bytes",
        "http_server_response_body_size_bytes",
        "http_client_request_duration_seconds_bucket",
        r#"http_response_status_code=~"5..""#,
    ] {
        assert!(all.contains(metric), "{metric}");
    }
}

/// A failed request is one with an `error_type` (a 5xx, or an error of the service without
/// a status code): the error ratios select that, and the status classes show the service
/// errors as their own class.
#[test]
fn http_error_ratios_count_5xx_and_service_errors() {
    let failed = r#"error_type!="""#;
    for spec in specs() {
        let ds = dashboards(&spec);
        for (title, e) in exprs(&ds[1]).into_iter().filter(|(t, _)| t.contains("Error ratio")) {
            assert!(e.contains(failed) && !e.contains("5.."), "{title}: {e}");
        }
        let classes = data_panels(&ds[1]).find(|p| p["title"] == "Requests by status class").expect("classes");
        let e = targets(classes)[0]["expr"].as_str().expect("expr");
        assert!(
            e.contains(r#"error_type!="", http_response_status_code="""#) && e.contains(r#""status_class", "error""#)
        );
        assert!(e.contains(r#"http_response_status_code=~"5..""#));
        // Route objectives: availability from error_type.
        for o in spec.http_objectives.iter().filter(|o| o.success_rate.is_some()) {
            let availability = format!("{} ({}): availability over the range", o.name, o.route);
            let (_, e) = exprs(&ds[2]).into_iter().find(|(t, _)| *t == availability).expect("availability");
            assert!(e.contains(failed) && !e.contains("5.."), "{e}");
        }
    }
}

#[test]
fn slo_dashboard_covers_every_objective_percentile_threshold_and_route_objective() {
    for spec in specs() {
        let d = &dashboards(&spec)[2];
        let all = exprs(d).into_iter().map(|(_, e)| e).collect::<Vec<_>>().join("\n");
        for p in ObjectivePercentile::ALL {
            assert!(all.contains(&format!(r#"objective_percentile="{}""#, p.label())), "{}", p.label());
        }
        for t in ObjectiveLatency::ALL {
            let l = t.label();
            assert!(all.contains(&format!(r#"objective_latency_threshold="{l}", le="{l}""#)), "{l}");
        }
        let titles: Vec<String> = data_panels(d).map(|p| p["title"].as_str().unwrap_or_default().to_string()).collect();
        for o in &spec.http_objectives {
            let mine: Vec<&String> = titles.iter().filter(|t| t.starts_with(&format!("{} (", o.name))).collect();
            assert_eq!(
                mine.len(),
                1 + 2 * usize::from(o.success_rate.is_some()) + 2 * usize::from(o.latency.is_some())
            );
            let route_exprs: Vec<String> =
                exprs(d).into_iter().filter(|(t, _)| t.starts_with(&format!("{} (", o.name))).map(|(_, e)| e).collect();
            assert!(route_exprs.iter().all(|e| e.contains(&format!(r#"http_route="{}""#, o.route))));
            if let Some((t, _)) = o.latency {
                assert!(route_exprs.iter().any(|e| e.contains(&format!(r#"le="{}""#, t.label()))));
            }
            if let Some(p) = o.success_rate {
                let allowed = format!("/ {}", ((1.0 - p.ratio()) * 1e6).round() / 1e6);
                assert!(route_exprs.iter().any(|e| e.contains(&allowed)), "{allowed}");
            }
        }
        let budget = data_panels(d).find(|p| p["title"] == "Success error budget remaining").expect("budget");
        assert_eq!(budget["fieldConfig"]["defaults"]["unit"], "percentunit");
        assert!(targets(budget)[0]["expr"].as_str().expect("e").contains("[$__range]"));
        assert!(variable(d, "objective")["query"].as_str().expect("q").contains("objective_name"));
    }
}

#[test]
fn process_and_self_dashboards_cover_their_series() {
    let ds = dashboards(&Spec::quickstart());
    let text = |d: &Dashboard| exprs(d).into_iter().map(|(_, e)| e).collect::<Vec<_>>().join("\n");
    let process = text(&ds[3]);
    for m in [
        "process_cpu_time_seconds_total",
        "process_memory_usage_bytes",
        "process_memory_virtual_bytes",
        "process_thread_count",
        "process_unix_file_descriptor_count",
        "process_unix_file_descriptor_limit",
        "process_uptime_seconds",
        "build_info",
        "heartbeat_rate",
        "heartbeat_min_rate",
        "heartbeat_total",
    ] {
        assert!(process.contains(m), "process dashboard lacks {m}");
    }
    let build = data_panels(&ds[3]).find(|p| p["title"] == "Build").expect("build");
    assert!(targets(build)[0]["expr"].as_str().expect("e").contains("version, commit"));
    let own = text(&ds[4]);
    for m in [
        "otel_lite_spans_exported_total",
        "otel_lite_spans_dropped_total",
        "otel_lite_spans_failed_total",
        "otel_lite_logs_exported_total",
        "otel_lite_logs_dropped_total",
        "otel_lite_logs_failed_total",
        "otel_lite_spans_export_overruns_total",
        "otel_lite_metric_overflow_records_total",
        "otel_lite_metric_evicted_series_total",
        // The exporter's per-signal counters, exactly (as the alerts select them).
        r#"__name__=~"otel_lite_otlp_failed_exports_(traces|metrics|logs)_total""#,
        r#"__name__=~"otel_lite_otlp_failed_items_(traces|metrics|logs)_total""#,
    ] {
        assert!(own.contains(m), "self dashboard lacks {m}");
    }
}

#[test]
fn configmaps_carry_the_sidecar_label_and_parse_back() {
    let spec = Spec::quickstart();
    let ds = dashboards(&spec);
    let cms = configmaps(&spec, &ds);
    assert_eq!(cms.len(), ds.len());
    let mut names = BTreeSet::new();
    for (cm, d) in cms.iter().zip(&ds) {
        assert_eq!((&cm["apiVersion"], &cm["kind"]), (&"v1".into(), &"ConfigMap".into()));
        assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
        assert_eq!(cm["metadata"]["namespace"], "demo");
        assert!(names.insert(cm["metadata"]["name"].as_str().expect("name").to_string()));
        let data = cm["data"].as_object().expect("data");
        assert_eq!(data.len(), 1);
        let (key, text) = data.iter().next().expect("one entry");
        assert_eq!(key, &format!("{}.json", d.uid));
        assert!(key.ends_with(".json"));
        let text = text.as_str().expect("text");
        assert!(text.contains("\n  "), "pretty-printed");
        assert_eq!(serde_json::from_str::<Value>(text).expect("valid JSON"), d.json);
    }
    // Stable text.
    assert_eq!(cms, configmaps(&spec, &dashboards(&spec)));
}

#[test]
fn grafana_operator_dashboards_have_the_expected_fields() {
    let spec = Spec::quickstart();
    let ds = dashboards(&spec);
    let gds = grafana_dashboards(&spec, &ds);
    assert_eq!(gds.len(), ds.len());
    for (g, d) in gds.iter().zip(&ds) {
        assert_eq!(g["apiVersion"], "grafana.integreatly.org/v1beta1");
        assert_eq!(g["kind"], "GrafanaDashboard");
        assert_eq!(g["metadata"]["name"], d.uid.as_str());
        assert_eq!(g["metadata"]["namespace"], "demo");
        assert_eq!(g["spec"]["instanceSelector"]["matchLabels"], serde_json::json!({ "dashboards": "grafana" }));
        let json = g["spec"]["json"].as_str().expect("spec.json is text");
        assert_eq!(serde_json::from_str::<Value>(json).expect("valid JSON"), d.json);
    }
}

#[test]
fn panel_queries_substitutes_every_variable() {
    for (_, ds) in all() {
        for d in &ds {
            let expected = exprs(d).len();
            // Nothing given: the All values and default durations.
            let defaults = panel_queries(d, &BTreeMap::new());
            assert_eq!(defaults.len(), expected);
            for (title, q) in &defaults {
                assert!(!q.contains('$'), "{}: '{title}' keeps a variable: {q}", d.uid);
                assert!(!q.trim().is_empty());
            }
            assert!(defaults.iter().all(|(_, q)| q.contains(r#"job=~".*""#)));
            // Given values win.
            let vars = BTreeMap::from([
                ("job".to_string(), "quickstart".to_string()),
                ("namespace".to_string(), "demo".to_string()),
                ("__rate_interval".to_string(), "2m".to_string()),
                ("__range".to_string(), "15m".to_string()),
            ]);
            let given = panel_queries(d, &vars);
            assert_eq!(given.len(), expected);
            for ((title, q), (orig_title, orig)) in given.iter().zip(exprs(d)) {
                assert_eq!(title, &orig_title);
                assert!(!q.contains('$'), "{}: '{title}' keeps a variable: {q}", d.uid);
                assert!(q.contains(r#"job=~"quickstart""#) && q.contains(r#"namespace=~"demo""#), "{q}");
                assert!(q.contains(r#"instance=~".*""#), "{q}");
                assert_eq!(q.contains("[2m]"), orig.contains("[$__rate_interval]"), "{q}");
                assert_eq!(q.contains("[15m]"), orig.contains("[$__range]"), "{q}");
            }
        }
    }
}

/// promtool from `PROMTOOL` or `/usr/bin/promtool` (as the rules' promtool tests: missing
/// fails the test rather than skipping the proof).
fn promtool() -> std::path::PathBuf {
    let path = std::path::PathBuf::from(std::env::var_os("PROMTOOL").unwrap_or_else(|| "/usr/bin/promtool".into()));
    assert!(path.is_file(), "promtool not found at {} (set PROMTOOL)", path.display());
    path
}

#[test]
fn every_substituted_query_parses_as_promql() {
    // Each query becomes a recording rule's expression; `promtool check rules` parses them
    // with Prometheus's own PromQL parser. A rules file in JSON is YAML.
    for (n, (_, ds)) in all().into_iter().enumerate() {
        let vars = BTreeMap::from([("job".to_string(), "(quickstart|other)".to_string())]);
        let rules: Vec<Value> = ds
            .iter()
            .flat_map(|d| panel_queries(d, &vars))
            .enumerate()
            .map(|(i, (_, expr))| serde_json::json!({ "record": format!("dashboard:query{i}"), "expr": expr }))
            .collect();
        let file = serde_json::json!({ "groups": [{ "name": "dashboards", "rules": rules }] });
        let dir = std::env::temp_dir().join(format!("otel-lite-kube-dashboards-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let path = dir.join("queries.yml");
        std::fs::write(&path, serde_json::to_string_pretty(&file).expect("json")).expect("write");
        let out =
            std::process::Command::new(promtool()).args(["check", "rules"]).arg(&path).output().expect("promtool");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("SUCCESS"), "promtool check rules:\n{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn slo_dashboard_without_route_objectives_has_only_the_function_panels() {
    let mut spec = Spec::quickstart();
    spec.http_objectives.clear();
    let d = &dashboards(&spec)[2];
    assert!(panels(d).iter().all(|p| p["title"] != "HTTP route objectives"));
    assert!(exprs(d).iter().all(|(_, e)| !e.contains("http_server")));
    assert_eq!(data_panels(d).count(), 7);
    let with_routes = &dashboards(&Spec::quickstart())[2];
    assert!(panels(with_routes).iter().any(|p| p["title"] == "HTTP route objectives"));
}
