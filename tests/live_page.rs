//! The live page (`/live`, feature `live`) in a real headless Chromium against the running
//! quickstart, its OTLP export going to the Python receiver:
//!
//! 1. The page loads and runs with no exception, console error, CSP violation, failed
//!    request or dialog.
//! 2. Every route of the quickstart and every `function` label of `function_calls_total`
//!    on its `/metrics` has a row with a rate above zero.
//! 3. A failed `GET /checkout` trace, opened from the Failed list, shows as a waterfall
//!    with the same spans (ids, parent links, names) and the same log records as the OTLP
//!    receiver got for that trace id.
//! 4. Hostile strings recorded as a span attribute (`check_stock`'s decoded `item`) show
//!    as text: no script runs, no element is injected.
//! 5. The page keeps updating: a route's count changes between two reads at least one
//!    sample interval apart.
//! 6. At 420 px nothing overflows horizontally; the 1280x800 screenshot is a PNG of that
//!    size (`OTEL_LITE_UPDATE_SCREENSHOT=1` copies it to `docs/live-page.png`).
//!
//! The quickstart is this test binary started again (`harness = false`, as in
//! `kube_e2e.rs`): with `OTEL_LITE_LIVE_REPLICA` set it runs the example's own `main`.
//! Chromium (`OTEL_LITE_CHROMIUM` or `chromium` on the `PATH`) runs in its own process
//! group, killed with it; `tests/peers/live_browser.py` drives it over the DevTools
//! protocol and reports what it saw as JSON, which this test judges.

mod peers;
#[path = "../examples/quickstart/main.rs"]
#[allow(dead_code)]
mod quickstart;
// For the quickstart's route templates: the quickstart's own module of it is private.
#[path = "../examples/quickstart/service.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod service;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use peers::otlp::{log_records_of, spans_of, OtlpReceiver};
use peers::{free_port, http_get, python, repo_root, require_binary, try_http_get, wait_for};
use serde_json::Value as Json;

const REPLICA_VAR: &str = "OTEL_LITE_LIVE_REPLICA";
/// The page's sampling interval in the quickstart (5 s by default): rates show after two
/// samples, and the sparklines of a short run get more than a few points.
const SAMPLE_MS: u64 = 1000;
/// With `OTEL_LITE_UPDATE_SCREENSHOT=1`, how long the quickstart runs before errors are
/// injected: the screenshot then shows a minute and a half of history.
const NORMAL_TRAFFIC_FOR_SCREENSHOT: Duration = Duration::from_secs(90);
/// The failed traces opened: every checkout fails once errors are injected.
const FAILED_ROOT: &str = "GET /checkout";
/// Hostile `item`s, and the percent-encoded paths that carry them to `/inventory/{item}`.
const PAYLOADS: [(&str, &str); 2] = [
    ("<script>alert(1)</script>", "/inventory/%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
    ("<img src=x onerror=alert(1)>", "/inventory/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"),
];

fn main() {
    if std::env::var_os(REPLICA_VAR).is_some() {
        if let Err(e) = quickstart::main() {
            eprintln!("quickstart failed: {e}");
            std::process::exit(1);
        }
        return;
    }
    let started = Instant::now();
    live_page();
    println!("live_page: passed in {:.0} s", started.elapsed().as_secs_f64());
}

/// The quickstart process; its log is printed if the test fails while it runs.
struct Quickstart {
    child: Child,
    stdin: ChildStdin,
    log: PathBuf,
}

impl Quickstart {
    fn start(dir: &Path, otlp: &str, metrics_port: u16) -> Quickstart {
        let log = dir.join("quickstart.log");
        let out = std::fs::File::create(&log).expect("quickstart log");
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .env(REPLICA_VAR, "1")
            .env("OTEL_SERVICE_NAME", "quickstart")
            .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
            .env("OTEL_EXPORTER_PROMETHEUS_PORT", metrics_port.to_string())
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_BSP_SCHEDULE_DELAY", "500")
            .env("OTEL_BLRP_SCHEDULE_DELAY", "500")
            .env("OTEL_LITE_LIVE", "on")
            .env("OTEL_LITE_LIVE_SAMPLE_MS", SAMPLE_MS.to_string())
            // A bound on its life even if this test is killed.
            .env("QUICKSTART_SECONDS", "180")
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("starting the quickstart");
        let stdin = child.stdin.take().expect("piped stdin");
        Quickstart { child, stdin, log }
    }

    fn toggle(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush()).expect("writing to the quickstart");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The rest of the first log line that contains `marker`, after it.
    fn printed(&self, marker: &str) -> Option<String> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains(marker))?;
        Some(line[line.find(marker)? + marker.len()..].to_string())
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- the quickstart's log (last 150 lines):\n{}",
                lines[lines.len().saturating_sub(150)..].join("\n")
            );
        }
    }
}

/// Headless Chromium in its own process group (its helpers die with it), with a fresh
/// profile; its stderr is printed if the test fails while it runs.
struct Chromium {
    child: Child,
    profile: PathBuf,
    stderr: PathBuf,
}

impl Chromium {
    /// Starts it and returns it with its DevTools port.
    fn start(binary: &Path, dir: &Path) -> (Chromium, u16) {
        let profile = dir.join("chromium-profile");
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("chromium profile dir");
        let stderr = dir.join("chromium.log");
        let log = std::fs::File::create(&stderr).expect("chromium log");
        let child = Command::new(binary)
            .args([
                "--headless",
                // CI runs as root, where the sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut chromium = Chromium { child, profile, stderr };
        let port_file = chromium.profile.join("DevToolsActivePort");
        let port = wait_for(Duration::from_secs(20), "chromium's DevToolsActivePort", || {
            if let Ok(Some(status)) = chromium.child.try_wait() {
                panic!("chromium exited at start ({status})");
            }
            std::fs::read_to_string(&port_file).ok()?.lines().next()?.trim().parse::<u16>().ok()
        });
        (chromium, port)
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The whole group: the browser and its renderer, GPU and zygote processes.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- chromium's stderr:\n{}", std::fs::read_to_string(&self.stderr).unwrap_or_default());
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The `function` labels of `function_calls_total` in an exposition.
fn function_labels(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| l.starts_with("function_calls_total{"))
        .filter_map(|l| l.split("function=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect()
}

/// A number as the page shows it (en-US thousands separators; `–` for no data).
fn shown_number(text: &str) -> Option<f64> {
    text.replace(',', "").trim().parse().ok()
}

fn str_of<'a>(v: &'a Json, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Whether the overview document shows every function and route with a rate, and a
/// failed trace of [`FAILED_ROOT`].
fn overview_ready(o: &Json, functions: &BTreeSet<String>) -> bool {
    let rated = |rows: &Json, key: &str, want: &str| {
        rows.as_array().is_some_and(|rows| {
            rows.iter().any(|r| str_of(r, key) == want && r["rate"].as_f64().is_some_and(|rate| rate > 0.0))
        })
    };
    !functions.is_empty()
        && functions.iter().all(|f| rated(&o["functions"], "name", f))
        && service::ROUTES.iter().all(|r| rated(&o["routes"], "route", r))
        && o["traces"]["failed"].as_array().is_some_and(|l| l.iter().any(|t| str_of(t, "root") == FAILED_ROOT))
}

/// `(span id, parent id, name)` of every span the receiver got for `trace` (root: no parent).
fn received_spans(receiver: &OtlpReceiver, trace: &str) -> Vec<(String, String, String)> {
    let mut spans: Vec<_> = spans_of(&receiver.requests())
        .iter()
        .filter(|s| str_of(s, "traceId") == trace)
        .map(|s| (str_of(s, "spanId").into(), str_of(s, "parentSpanId").into(), str_of(s, "name").into()))
        .collect();
    spans.sort();
    spans
}

/// `(span id, body)` of every log record the receiver got for `trace`.
fn received_logs(receiver: &OtlpReceiver, trace: &str) -> Vec<(String, String)> {
    let mut logs: Vec<_> = log_records_of(&receiver.requests())
        .iter()
        .filter(|r| str_of(r, "traceId") == trace)
        .map(|r| (str_of(r, "spanId").into(), r["body"]["stringValue"].as_str().unwrap_or("").into()))
        .collect();
    logs.sort();
    logs
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&png[16..20]), be(&png[20..24])))
}

/// Runs the driver with a bound; returns its JSON report.
fn drive(dir: &Path, args: &[String]) -> Json {
    let (out, err) = (dir.join("driver.json"), dir.join("driver.log"));
    let mut child = Command::new(python())
        .arg(repo_root().join("tests/peers/live_browser.py"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("driver output"))
        .stderr(std::fs::File::create(&err).expect("driver log"))
        .spawn()
        .expect("cannot run tests/peers/live_browser.py");
    let limit = Duration::from_secs(120);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the driver") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the browser driver ran over {limit:?}; its log:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) =
        (std::fs::read_to_string(&out).unwrap_or_default(), std::fs::read_to_string(&err).unwrap_or_default());
    let report: Json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "the browser driver ({status}) printed no report ({e}); is websockets installed in the venv? run \
             scripts/test.sh\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )
    });
    assert!(
        report.get("driver_error").is_none(),
        "the browser driver failed ({status}):\n{report:#}\nstderr:\n{stderr}"
    );
    report
}

fn live_page() {
    let chromium_binary = require_binary("chromium", "OTEL_LITE_CHROMIUM");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-page");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the test's directory");

    let receiver = OtlpReceiver::start();
    let metrics_port = free_port();
    let started = Instant::now();
    let mut quickstart = Quickstart::start(&dir, &receiver.endpoint(), metrics_port);
    let metrics = format!("127.0.0.1:{metrics_port}");
    let service = wait_for(Duration::from_secs(30), "the quickstart to print its service address", || {
        let rest = quickstart.printed("the service listens on http://")?;
        Some(rest.split_whitespace().next()?.to_string())
    });
    let url = wait_for(Duration::from_secs(10), "the quickstart to print the live page's URL", || {
        quickstart.printed("open in a browser: ")?.split_whitespace().next().map(str::to_string)
    });
    assert_eq!(url, format!("http://{metrics}/live"), "the URL the quickstart prints");
    let update_screenshot = std::env::var_os("OTEL_LITE_UPDATE_SCREENSHOT").is_some_and(|v| v == "1");
    if update_screenshot {
        // For the README: sparklines with some history, errors starting near their end.
        println!(
            "live_page: {NORMAL_TRAFFIC_FOR_SCREENSHOT:?} of normal traffic first (OTEL_LITE_UPDATE_SCREENSHOT=1)"
        );
        std::thread::sleep(NORMAL_TRAFFIC_FOR_SCREENSHOT);
    }
    // Every inventory lookup fails from now on, and so every checkout.
    quickstart.toggle("e");
    let (chromium, devtools_port) = Chromium::start(&chromium_binary, &dir);

    // Warm-up, read from the page's own JSON: every function and route rated, a failed
    // checkout kept.
    let functions = wait_for(Duration::from_secs(40), "every function and route rated, a failed checkout", || {
        let (status, _, body) = try_http_get(&metrics, "/metrics", &[]).ok()?;
        let functions = function_labels(std::str::from_utf8(&body).ok()?);
        let (_, _, body) = try_http_get(&metrics, "/live/api/overview", &[]).ok()?;
        let overview: Json = serde_json::from_slice(&body).ok()?;
        (status == 200 && overview_ready(&overview, &functions)).then_some(functions)
    });
    println!(
        "live_page: functions {functions:?} and routes {:?} rated, a failed checkout kept, {:.1} s after the quickstart started",
        service::ROUTES,
        started.elapsed().as_secs_f64()
    );

    // The hostile strings, just before the browser opens them (failed traces turn over).
    for (_, path) in PAYLOADS {
        let (status, _, _) = http_get(&service, path, &[]);
        assert_eq!(status, 404, "GET {path}: not an item");
    }
    let xss_traces: Vec<String> = PAYLOADS
        .iter()
        .map(|(payload, _)| {
            wait_for(Duration::from_secs(10), &format!("check_stock with item {payload:?} at the receiver"), || {
                spans_of(&receiver.requests())
                    .iter()
                    .find(|s| {
                        s["name"] == "check_stock"
                            && s["attributes"].as_array().is_some_and(|a| {
                                a.iter().any(|kv| kv["key"] == "item" && kv["value"]["stringValue"] == *payload)
                            })
                    })
                    .map(|s| str_of(s, "traceId").to_string())
            })
        })
        .collect();

    let mut args = vec![
        format!("--port={devtools_port}"),
        format!("--url={url}"),
        format!("--out={}", dir.display()),
        format!("--failed-root={FAILED_ROOT}"),
    ];
    args.extend(functions.iter().map(|f| format!("--function={f}")));
    args.extend(service::ROUTES.iter().map(|r| format!("--route={r}")));
    for ((payload, _), trace) in PAYLOADS.iter().zip(&xss_traces) {
        args.extend([format!("--xss-trace={trace}"), format!("--payload={payload}")]);
    }
    let driven = Instant::now();
    let report = drive(&dir, &args);
    println!(
        "live_page: the browser session took {:.1} s (page ready in {} ms, rates shown in {} ms)",
        driven.elapsed().as_secs_f64(),
        report["ready_ms"],
        report["rates_ms"]
    );

    // 1. A clean run.
    for kind in ["exceptions", "console_errors", "log_errors", "network_errors", "dialogs"] {
        let seen = report[kind].as_array().expect("the report lists each kind");
        assert!(seen.is_empty(), "the page reported {kind}: {seen:#?}");
    }
    assert_eq!(report["interval_ms"], SAMPLE_MS, "the page's sampling interval");

    // 2. Every function and route with a rate.
    let rows = report["rows"].as_array().expect("rows");
    let rate = |kind: &str, matches: &dyn Fn(&str) -> bool| {
        rows.iter()
            .find(|r| r["kind"] == kind && matches(str_of(r, "key")))
            .and_then(|r| shown_number(str_of(r, "rate")))
    };
    let mut shown = Vec::new();
    for f in &functions {
        let r = rate("function", &|k| k == f);
        assert!(r.is_some_and(|r| r > 0.0), "function {f}: rate {r:?} on the page; rows: {rows:#?}");
        shown.push(format!("{f} {}/s", r.unwrap_or_default()));
    }
    for route in service::ROUTES {
        let r = rate("route", &|k| k.split_once(' ').is_some_and(|(_, t)| t == route));
        assert!(r.is_some_and(|r| r > 0.0), "route {route}: rate {r:?} on the page; rows: {rows:#?}");
        shown.push(format!("{route} {}/s", r.unwrap_or_default()));
    }
    println!("live_page: {} rows, rates as shown: {}", rows.len(), shown.join(", "));

    // 3. The failed trace: the waterfall against what the OTLP receiver got.
    let failed = &report["failed_trace"];
    let trace = str_of(failed, "trace").to_string();
    let mut page_spans: Vec<(String, String, String)> = failed["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| (str_of(s, "id").into(), str_of(s, "parent").into(), str_of(s, "name").into()))
        .collect();
    page_spans.sort();
    let mut page_logs: Vec<(String, String)> = failed["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|l| (str_of(l, "span").into(), str_of(l, "body").into()))
        .collect();
    page_logs.sort();
    assert!(
        page_spans.iter().any(|(_, parent, name)| parent.is_empty() && name == FAILED_ROOT),
        "the opened trace has the root {FAILED_ROOT}: {page_spans:#?}"
    );
    assert!(page_spans.len() > 1 && !page_logs.is_empty(), "a failed checkout has child spans and logs: {failed:#}");
    let compared = Instant::now();
    let deadline = compared + Duration::from_secs(10);
    let (mut got_spans, mut got_logs) = (Vec::new(), Vec::new());
    while Instant::now() < deadline {
        (got_spans, got_logs) = (received_spans(&receiver, &trace), received_logs(&receiver, &trace));
        if got_spans == page_spans && got_logs == page_logs {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(page_spans, got_spans, "trace {trace}: the waterfall's (span, parent, name) against the receiver's");
    assert_eq!(page_logs, got_logs, "trace {trace}: the page's (span, body) of its logs against the receiver's");
    println!(
        "live_page: failed trace {trace}: {} spans and {} logs, the same as the OTLP receiver's (matched after {:.1} s)",
        page_spans.len(),
        page_logs.len(),
        compared.elapsed().as_secs_f64()
    );

    // 4. The hostile strings stay text.
    let xss = report["xss"].as_array().expect("xss");
    assert_eq!(xss.len(), PAYLOADS.len(), "{report:#}");
    for (x, (payload, _)) in xss.iter().zip(PAYLOADS) {
        let inert = &x["inert"];
        assert_eq!(x["expanded"], true, "check_stock's details opened in trace {}", x["trace"]);
        assert_eq!(inert["text_found"], true, "{payload:?} shows as exact text: {x:#}");
        assert_eq!(inert["scripts"], 1, "{payload:?}: the page's own script only: {x:#}");
        assert_eq!(inert["injected_img"], 0, "{payload:?}: no injected img: {x:#}");
        assert_eq!(inert["on_attrs"], 0, "{payload:?}: no event handler attributes: {x:#}");
    }
    println!(
        "live_page: {:?} show as text in traces {xss_traces:?}; one script, no injected element",
        PAYLOADS.map(|p| p.0)
    );

    // 5. It keeps updating.
    let reads = &report["count_reads"];
    let (first, second) = (shown_number(str_of(reads, "first")), shown_number(str_of(reads, "second")));
    let apart = reads["apart_ms"].as_u64().unwrap_or(0);
    assert!(first.zip(second).is_some_and(|(a, b)| b > a), "the count grows between two reads: {reads}");
    assert!(apart >= SAMPLE_MS, "the reads are at least one sample interval apart: {reads}");
    println!("live_page: GET /users/{{id}} count {} then {}, {apart} ms apart", reads["first"], reads["second"]);

    // 6. Narrow screens and the screenshot.
    for view in ["trace", "overview"] {
        let overflow = report["overflow_px"][view].as_i64();
        assert!(overflow.is_some_and(|o| o <= 0), "horizontal overflow of the {view} at 420 px: {overflow:?}");
    }
    let screenshot = dir.join("live-1280x800.png");
    let png = std::fs::read(&screenshot).expect("the 1280x800 screenshot");
    assert_eq!(png_size(&png), Some((1280, 800)), "{}", screenshot.display());
    println!(
        "live_page: no horizontal overflow at 420 px ({}); screenshots in {}",
        report["overflow_px"],
        dir.display()
    );
    if update_screenshot {
        let docs = repo_root().join("docs/live-page.png");
        std::fs::create_dir_all(repo_root().join("docs")).expect("docs/");
        std::fs::copy(&screenshot, &docs).expect("copying the screenshot");
        println!("live_page: updated {}", docs.display());
    }
    drop(chromium);
    drop(quickstart);
}
