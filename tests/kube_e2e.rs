//! The generated kube-prometheus artefacts against the real thing, on loopback: a real
//! Prometheus scrapes three quickstart replicas with the generated rules loaded (windows
//! divided by [`TIME_SCALE`]), a real Alertmanager receives its alerts and posts them to a
//! webhook in this test.
//!
//! 1. Normal traffic: no alert fires.
//! 2. Errors injected into one replica: the fast-burn (page) alerts of the checkout's
//!    objectives arrive at the webhook with their labels.
//! 3. A second replica's worker stalls: the heartbeat alert arrives, naming that instance.
//! 4. Traffic stops: `sum by (function) (function_calls_total)` in Prometheus equals the sum
//!    of what each replica's endpoint reports, exactly.
//! 5. Every dashboard panel query and every prometheus-adapter query, variables and
//!    templates substituted, returns data.
//!
//! The replicas are this test binary started again (`harness = false`): with
//! `OTEL_LITE_E2E_REPLICA` set it runs the quickstart's own `main` (the example's file,
//! included below), so the test never depends on a separately built example binary.

mod peers;
#[path = "../examples/quickstart/main.rs"]
#[allow(dead_code)]
mod quickstart;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otel_lite_kube::Spec;
use peers::{free_port, require_binary, try_http_get, wait_for, PrometheusUnderTest};

/// Every rule window and `for` is divided by this: the 1-hour window of the fast-burn
/// alert becomes 1 minute, the 5-minute one 5 seconds.
const TIME_SCALE: u32 = 60;
const REPLICAS: usize = 3;
const REPLICA_VAR: &str = "OTEL_LITE_E2E_REPLICA";

fn main() {
    if std::env::var_os(REPLICA_VAR).is_some() {
        if let Err(e) = quickstart::main() {
            eprintln!("replica failed: {e}");
            std::process::exit(1);
        }
        return;
    }
    let started = Instant::now();
    end_to_end();
    println!("kube_e2e: passed in {:.0} s", started.elapsed().as_secs_f64());
}

/// One quickstart process; its faults are toggled through its standard input.
struct Replica {
    metrics: String,
    stdin: ChildStdin,
    child: Child,
    log: PathBuf,
}

impl Replica {
    /// Replica `n`, exporting over OTLP/HTTP to `otlp` as well (so the OTLP self-metrics
    /// that the dashboards show exist).
    fn start(dir: &Path, n: usize, otlp: &str) -> Replica {
        let port = free_port();
        let log = dir.join(format!("replica-{n}.log"));
        let out = std::fs::File::create(&log).expect("replica log");
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .env(REPLICA_VAR, "1")
            .env("OTEL_SERVICE_NAME", "quickstart")
            .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
            .env("OTEL_EXPORTER_PROMETHEUS_PORT", port.to_string())
            // A bound on the replica's life even if this test is killed.
            .env("QUICKSTART_SECONDS", "600")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "2000")
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("starting a replica");
        let stdin = child.stdin.take().expect("piped stdin");
        Replica { metrics: format!("127.0.0.1:{port}"), stdin, child, log }
    }

    fn toggle(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush()).expect("writing to a replica");
    }

    fn scrape(&self) -> String {
        match try_http_get(&self.metrics, "/metrics", &[]) {
            Ok((200, _, body)) => String::from_utf8(body).expect("UTF-8 exposition"),
            other => panic!("scraping {}: {other:?}\n{}", self.metrics, self.log()),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Alertmanager's webhook receiver: every alert it posts, as JSON. It also answers the
/// replicas' OTLP exports with an empty success (their content is not what this test is
/// about; `tests/otlp.rs` decodes it with the official definitions).
struct Webhook {
    addr: String,
    alerts: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("webhook port");
        let addr = listener.local_addr().expect("address").to_string();
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&alerts);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let Some(body) = read_request_body(&mut stream) else { continue };
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) {
                    let posted = json["alerts"].as_array().cloned().unwrap_or_default();
                    sink.lock().expect("alerts").extend(posted);
                }
            }
        });
        Webhook { addr, alerts }
    }

    /// The firing alerts received so far.
    fn firing(&self) -> Vec<serde_json::Value> {
        self.alerts.lock().expect("alerts").iter().filter(|a| a["status"] == "firing").cloned().collect()
    }
}

/// The body of one HTTP/1.1 request with a `content-length` (Alertmanager sends one).
fn read_request_body(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0usize;
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            let mut body = vec![0; length.min(1 << 20)];
            reader.read_exact(&mut body).ok()?;
            return Some(body);
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    None
}

/// A real Alertmanager on loopback, clustering off, posting to `webhook`.
struct Alertmanager {
    addr: String,
    dir: PathBuf,
    _child: peers::Guard,
}

impl Alertmanager {
    fn start(dir: &Path, webhook: &Webhook) -> Alertmanager {
        let binary = require_binary("prometheus-alertmanager", "ALERTMANAGER");
        let dir = dir.join("alertmanager");
        std::fs::create_dir_all(&dir).expect("alertmanager dir");
        let config = format!(
            "route:\n  receiver: test\n  group_by: [alertname, objective_name, instance]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: http://{}/alerts\n        send_resolved: false\n",
            webhook.addr
        );
        std::fs::write(dir.join("alertmanager.yml"), config).expect("alertmanager config");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("alertmanager.log")).expect("log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            // An empty address turns clustering off: no gossip port, no peers to wait for.
            .arg("--cluster.listen-address=")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting alertmanager");
        let am = Alertmanager { addr, dir, _child: peers::Guard(child) };
        wait_for(Duration::from_secs(30), "Alertmanager to be ready", || {
            matches!(try_http_get(&am.addr, "/-/ready", &[]), Ok((200, _, _))).then_some(())
        });
        am
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }
}

fn label<'a>(alert: &'a serde_json::Value, name: &str) -> &'a str {
    alert["labels"][name].as_str().unwrap_or("")
}

fn end_to_end() {
    let dir = std::env::temp_dir().join(format!("otel-lite-kube-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");

    let spec = Spec { time_scale: TIME_SCALE, ..Spec::quickstart() };
    let rules = dir.join("rules.yml");
    std::fs::write(&rules, otel_lite_kube::yaml::to_yaml(&otel_lite_kube::rules::rules_file(&spec)))
        .expect("writing the rules");

    let webhook = Webhook::start();
    let mut replicas: Vec<Replica> = (0..REPLICAS).map(|n| Replica::start(&dir, n, &webhook.addr)).collect();
    for r in &replicas {
        wait_for(Duration::from_secs(60), "a replica's /metrics", || {
            matches!(try_http_get(&r.metrics, "/metrics", &[]), Ok((200, _, _))).then_some(())
        });
    }
    let alertmanager = Alertmanager::start(&dir, &webhook);
    // The labels the Operator gives a pod's series: namespace and pod (job = the service).
    let targets: String = replicas
        .iter()
        .enumerate()
        .map(|(n, r)| {
            format!(
                "      - targets: ['{}']\n        labels: {{namespace: {}, pod: {}-{n}}}\n",
                r.metrics, spec.namespace, spec.service
            )
        })
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\nscrape_configs:\n  - job_name: {}\n    static_configs:\n{targets}",
        rules.display(),
        alertmanager.addr,
        spec.service
    );
    let prometheus = PrometheusUnderTest::start(&require_binary("prometheus", "PROMETHEUS"), &config);
    let context = || format!("\nprometheus log:\n{}\nalertmanager log:\n{}", prometheus.log(), alertmanager.log());
    wait_for(Duration::from_secs(60), "Prometheus to scrape all replicas", || {
        (prometheus.single("count(up{job=\"quickstart\"} == 1)") == Some(REPLICAS as f64)).then_some(())
    });
    // Every rule group loaded (a rule Prometheus refused would be missing here).
    let groups = wait_for(Duration::from_secs(30), "the rule groups", || {
        let (status, _, body) = try_http_get(&prometheus.addr, "/api/v1/rules", &[]).ok()?;
        let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let groups = json["data"]["groups"].as_array()?.len();
        (status == 200 && groups > 0).then_some(groups)
    });
    let expected_groups = otel_lite_kube::rules::rule_groups(&spec).len();
    assert_eq!(groups, expected_groups, "Prometheus loaded every generated group{}", context());

    // 1. Normal traffic, long enough for every scaled `for` to pass: nothing fires.
    std::thread::sleep(Duration::from_secs(30));
    let firing = prometheus.query("ALERTS{alertstate=\"firing\"}").expect("ALERTS");
    assert!(firing.is_empty(), "alerts fired during normal traffic: {firing:?}{}", context());
    assert!(webhook.firing().is_empty(), "the webhook got alerts during normal traffic: {:?}", webhook.firing());
    println!("kube_e2e: 30 s of normal traffic, no alert");

    // 2. Errors on one replica: the checkout's and the inventory's page alerts arrive.
    replicas[0].toggle("e");
    let injected = Instant::now();
    let page = wait_for(Duration::from_secs(120), "the fast-burn page alerts at the webhook", || {
        let firing = webhook.firing();
        let objectives: BTreeSet<String> = firing
            .iter()
            .filter(|a| label(a, "severity") == "critical")
            .map(|a| label(a, "objective_name").to_string())
            .collect();
        ["checkout", "inventory", "checkout-http"].iter().all(|o| objectives.contains(*o)).then_some(firing)
    });
    for alert in page.iter().filter(|a| label(a, "severity") == "critical") {
        assert_eq!(label(alert, "job"), "quickstart", "{alert}");
        assert_eq!(label(alert, "namespace"), "demo", "{alert}");
        assert!(!alert["annotations"]["summary"].as_str().unwrap_or("").is_empty(), "{alert}");
        assert!(!alert["annotations"]["description"].as_str().unwrap_or("").is_empty(), "{alert}");
    }
    let checkout = page
        .iter()
        .find(|a| label(a, "objective_name") == "checkout" && label(a, "severity") == "critical")
        .expect("the checkout page alert");
    assert_eq!(label(checkout, "objective_percentile"), "99.9", "{checkout}");
    println!(
        "kube_e2e: page alerts {:?} arrived {:.0} s after the errors started",
        page.iter()
            .map(|a| format!("{}{{{}}}", label(a, "alertname"), label(a, "objective_name")))
            .collect::<BTreeSet<_>>(),
        injected.elapsed().as_secs_f64()
    );
    replicas[0].toggle("e");

    // 3. The second replica's worker stalls: its heartbeat alert arrives.
    replicas[1].toggle("h");
    let stalled = Instant::now();
    let instance = replicas[1].metrics.clone();
    let heartbeat = wait_for(Duration::from_secs(90), "the heartbeat alert at the webhook", || {
        webhook.firing().into_iter().find(|a| label(a, "heartbeat") == "worker" && label(a, "instance") == instance)
    });
    assert_eq!(label(&heartbeat, "job"), "quickstart", "{heartbeat}");
    assert!(!label(&heartbeat, "severity").is_empty(), "{heartbeat}");
    assert!(
        webhook.firing().iter().all(|a| label(a, "heartbeat") != "worker" || label(a, "instance") == instance),
        "only the stalled replica's heartbeat alerts: {:?}",
        webhook.firing()
    );
    println!(
        "kube_e2e: heartbeat alert {} for {instance} arrived {:.0} s after the worker stalled",
        label(&heartbeat, "alertname"),
        stalled.elapsed().as_secs_f64()
    );
    replicas[1].toggle("h");

    // 4. Traffic stops: the job's total is the replicas' totals, exactly.
    for r in &mut replicas {
        r.toggle("p");
    }
    std::thread::sleep(Duration::from_secs(3));
    let mut served: BTreeMap<String, f64> = BTreeMap::new();
    for r in &replicas {
        for (function, value) in function_calls(&r.scrape()) {
            *served.entry(function).or_default() += value;
        }
    }
    let query = "sum by (function) (function_calls_total{job=\"quickstart\"})";
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        seen = prometheus
            .query(query)
            .unwrap_or_default()
            .into_iter()
            .map(|(labels, v)| (labels.get("function").cloned().unwrap_or_default(), v))
            .collect();
        if seen == served {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(seen, served, "{query} against the replicas' own totals{}", context());
    println!("kube_e2e: {query} equals the replicas' totals: {served:?}");

    // 5. Every dashboard panel and every adapter query returns data from this Prometheus.
    let vars: BTreeMap<String, String> = [
        ("namespace", "demo"),
        ("job", "quickstart"),
        ("instance", ".*"),
        ("function", ".*"),
        ("route", ".*"),
        ("objective", ".*"),
        ("heartbeat", ".*"),
        ("__rate_interval", "10s"),
        ("__range", "2m"),
        ("__interval", "5s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut empty = Vec::new();
    let (mut checked, mut zero_filled) = (0, 0);
    for dashboard in otel_lite_kube::dashboards::dashboards(&spec) {
        for (panel, expr) in otel_lite_kube::dashboards::panel_queries(&dashboard, &vars) {
            checked += 1;
            match prometheus.query(&expr) {
                Some(result) if !result.is_empty() && !expr.contains("or vector(0)") => {}
                // A zero-filled query always answers, misspelled names included: each
                // series it reads must exist, except otel-lite's per-instrument health
                // counters, which appear at their first incident.
                Some(result) if !result.is_empty() => {
                    zero_filled += 1;
                    for selector in selectors(&expr) {
                        let count = format!("count({selector})");
                        if prometheus.query(&count).is_none_or(|r| r.is_empty()) && !incident_counter(&selector) {
                            empty.push(format!("{} / {panel}: {selector} has no series ({expr})", dashboard.title));
                        }
                    }
                }
                other => empty.push(format!("{} / {panel}: {expr} -> {other:?}", dashboard.title)),
            }
        }
    }
    // The adapter's windows are the production ones: they are not alert windows, and a
    // window divided by TIME_SCALE would hold fewer than two scrapes.
    let adapter = otel_lite_kube::adapter::adapter_queries(
        &Spec::quickstart(),
        "namespace=\"demo\",pod=~\"quickstart-.*\"",
        "pod",
    );
    for (name, expr) in &adapter {
        checked += 1;
        match prometheus.query(expr) {
            Some(result) if result.len() == REPLICAS => {}
            other => empty.push(format!("adapter {name}: {expr} -> {other:?} (one value per pod expected)")),
        }
    }
    assert!(empty.is_empty(), "queries without data:\n{}", empty.join("\n"));
    println!(
        "kube_e2e: {checked} dashboard and adapter queries return data ({zero_filled} zero-filled, their \
         series checked one by one)"
    );
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `function -> calls` from one exposition (all results and objectives added up).
fn function_calls(exposition: &str) -> BTreeMap<String, f64> {
    let mut calls = BTreeMap::new();
    for line in exposition.lines().filter(|l| l.starts_with("function_calls_total{")) {
        let (labels, value) = line.rsplit_once(' ').expect("a sample");
        let function = labels
            .split("function=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a function label")
            .to_string();
        *calls.entry(function).or_default() += value.parse::<f64>().expect("a number");
    }
    calls
}

/// The series selectors of a query: `name{...}` and `{__name__=~"...", ...}`, with their
/// matchers (as the query wrote them).
fn selectors(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(open) = expr[i..].find('{').map(|o| o + i) {
        let close = expr[open..].find('}').map_or(expr.len() - 1, |c| c + open);
        let mut start = open;
        while start > 0
            && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_' || bytes[start - 1] == b':')
        {
            start -= 1;
        }
        let name = &expr[start..open];
        // `by (...)` groupings and function names never precede a brace.
        if !name.is_empty() || expr[open..close].contains("__name__") {
            found.push(expr[start..=close].to_string());
        }
        i = close + 1;
    }
    found
}

/// Whether a selector reads a counter otel-lite publishes from its first incident on
/// (overflowed, evicted or invalid measurements of an instrument; renamed or hidden series).
fn incident_counter(selector: &str) -> bool {
    selector.contains("otel_lite_metric_")
}
