//! The live page's endpoints on loopback, over real HTTP: the page with its policy, the
//! overview and trace documents read back as JSON against what the pipeline exported,
//! what a request that is not for the page gets, and the documents' size bound.
//!
//! The browser test (`tests/live_page.rs`) drives the page itself in Chromium.

mod peers;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use otel_lite::live::{LiveConfig, LiveView, MAX_DOCUMENT_BYTES};
use otel_lite::prometheus::PrometheusServer;
use otel_lite::trace::{BatchConfig, InMemorySpanExporter, TracerProvider};
use otel_lite::{KeyValue, Registry};
use peers::http_get;
use serde_json::Value;

fn serve(view: &LiveView, registry: &Registry) -> (PrometheusServer, String) {
    let server = PrometheusServer::builder(registry.clone())
        .host("127.0.0.1")
        .port(0)
        .live(view.clone())
        .start()
        .expect("starts");
    let addr = server.local_addr().to_string();
    (server, addr)
}

/// A request written by hand: `Host` and method as given.
fn raw(addr: &str, request_line: &str, host: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "{request_line}\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("writes");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("reads");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, head, response[split + 4..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn json(addr: &str, path: &str) -> Value {
    let (status, head, body) = http_get(addr, path, &[]);
    assert_eq!(status, 200, "{path}: {head}");
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    assert_eq!(header(&head, "cache-control"), Some("no-store"));
    serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e})"))
}

#[test]
fn the_page_has_a_fresh_nonce_per_response_and_a_policy_that_allows_nothing_else() {
    let registry = Registry::new();
    let view = LiveView::new(registry.clone(), LiveConfig::default());
    let (_server, addr) = serve(&view, &registry);
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let (status, head, body) = http_get(&addr, "/live", &[]);
        assert_eq!(status, 200);
        assert_eq!(header(&head, "content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
        let csp = header(&head, "content-security-policy").expect("a policy");
        assert!(csp.starts_with("default-src 'none'; script-src 'nonce-"), "{csp}");
        assert!(csp.contains("connect-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let nonce = csp["default-src 'none'; script-src 'nonce-".len()..].split('\'').next().expect("nonce").to_owned();
        assert_eq!(nonce.len(), 32);
        let page = String::from_utf8(body).expect("utf-8");
        assert!(!page.contains("__NONCE__"));
        assert_eq!(page.matches(&format!("nonce=\"{nonce}\"")).count(), 2, "the script and the style");
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1]);

    let (status, head, body) = raw(&addr, "HEAD /live HTTP/1.1", &addr);
    assert_eq!((status, header(&head, "content-type"), body.len()), (200, Some("text/html; charset=utf-8"), 0));
    let (status, _, _) = raw(&addr, "POST /live/api/overview HTTP/1.1", &addr);
    assert_eq!(status, 405);
    // The endpoint's own paths are as they were.
    assert_eq!(http_get(&addr, "/metrics", &[]).0, 200);
    assert_eq!(http_get(&addr, "/", &[]).0, 200);
}

/// A `Host` that is a DNS name (what a rebinding attack sends), an id that is not 32
/// lowercase hex digits, a trace that is not kept and an unknown path all get the
/// endpoint's ordinary 404, byte for byte.
#[test]
fn requests_that_are_not_for_the_page_get_the_ordinary_404() {
    let registry = Registry::new();
    let view = LiveView::new(registry.clone(), LiveConfig::default());
    let (_server, addr) = serve(&view, &registry);
    let (_, _, ordinary) = http_get(&addr, "/nothing-here", &[]);
    let port = addr.rsplit(':').next().expect("a port");
    for host in ["evil.example".to_owned(), format!("evil.example:{port}"), format!("127.0.0.1.nip.io:{port}")] {
        let (status, _, body) = raw(&addr, "GET /live HTTP/1.1", &host);
        assert_eq!((status, &body), (404, &ordinary), "Host: {host}");
    }
    for host in [format!("localhost:{port}"), addr.clone()] {
        assert_eq!(raw(&addr, "GET /live/api/overview HTTP/1.1", &host).0, 200, "Host: {host}");
    }
    let unknown = "4bf92f3577b34da6a3ce929d0e0e4736";
    for path in [
        format!("/live/api/trace/{unknown}"),
        format!("/live/api/trace/{}", unknown.to_uppercase()),
        format!("/live/api/trace/{unknown}0"),
        format!("/live/api/trace/{}", "0".repeat(32)),
        format!("/live/api/trace/{}", "a".repeat(4000)),
        "/live/api/trace/".into(),
        "/live/api".into(),
        "/livex".into(),
        "/live/../metrics".into(),
    ] {
        let (status, _, body) = http_get(&addr, &path, &[]);
        assert_eq!((status, &body), (404, &ordinary), "{path}");
    }
}

/// Spans through a tee around an in-memory exporter: the overview lists the failed trace,
/// and its document has exactly the spans the exporter got, with their parent links.
#[test]
fn a_failed_trace_reads_back_as_the_exporter_got_it() {
    let registry = Registry::new();
    let view = LiveView::new(registry.clone(), LiveConfig::default());
    let exported = InMemorySpanExporter::default();
    let provider =
        TracerProvider::builder().with_batch_exporter(view.span_tee(exported.clone()), BatchConfig::default()).build();
    let tracer = provider.tracer("test");
    {
        let mut root = tracer.start("GET /checkout");
        let _entered = root.enter();
        for step in ["reserve", "pay"] {
            let mut child = tracer.start(step);
            if step == "pay" {
                child.set_attribute(KeyValue::new("note", "<script>alert(1)</script>"));
                child.set_status(otel_lite::trace::Status::error("card declined"));
            }
        }
        root.set_status(otel_lite::trace::Status::error("payment failed"));
    }
    provider.force_flush();
    view.sample();
    let (_server, addr) = serve(&view, &registry);

    let overview = json(&addr, "/live/api/overview");
    assert_eq!(overview["v"], 1);
    let failed = overview["traces"]["failed"].as_array().expect("a failed list");
    assert_eq!(failed.len(), 1, "{overview}");
    assert_eq!(failed[0]["root"], "GET /checkout");
    assert_eq!(failed[0]["spans"], 3);
    let id = failed[0]["id"].as_str().expect("an id").to_owned();

    let trace = json(&addr, &format!("/live/api/trace/{id}"));
    let spans = exported.spans();
    assert_eq!(spans.len(), 3);
    let mut got: Vec<(String, String, String)> = trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().expect(k).to_owned();
            (field("id"), field("parent"), field("name"))
        })
        .collect();
    let mut want: Vec<(String, String, String)> = spans
        .iter()
        .map(|s| {
            let parent = if s.parent_span_id().is_valid() { s.parent_span_id().to_string() } else { String::new() };
            (s.span_id().to_string(), parent, s.name().to_owned())
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(spans.iter().all(|s| s.trace_id().to_string() == id));
    let pay = trace["spans"].as_array().expect("spans").iter().find(|s| s["name"] == "pay").expect("pay");
    assert_eq!(pay["status"], "error");
    assert_eq!(pay["status_msg"], "card declined");
    assert_eq!(pay["attrs"][0], serde_json::json!(["note", "<script>alert(1)</script>"]));
    assert_eq!(trace["incomplete"], false);
    // The raw text carries no markup: `<` is escaped.
    let (_, _, raw_body) = http_get(&addr, &format!("/live/api/trace/{id}"), &[]);
    assert!(!String::from_utf8_lossy(&raw_body).contains('<'));
}

/// A trace far larger than a document may be: its document stops at the bound, says so,
/// and is still JSON.
#[test]
fn a_huge_trace_is_cut_to_the_document_bound() {
    let registry = Registry::new();
    let view = LiveView::new(registry.clone(), LiveConfig::default());
    let provider = TracerProvider::builder()
        .with_batch_exporter(view.span_tee(otel_lite::live::Discard), BatchConfig::default())
        .build();
    let tracer = provider.tracer("test");
    // About 2 MB of attributes: twice a document, within what the reservoir keeps.
    let value = "x".repeat(1000);
    {
        let root = tracer.start("root");
        let _entered = root.enter();
        for i in 0..200 {
            let mut child = tracer.start(format!("child {i}"));
            for a in 0..10 {
                child.set_attribute(KeyValue::new(format!("attribute.{a}"), value.clone()));
            }
        }
    }
    provider.force_flush();
    let (_server, addr) = serve(&view, &registry);
    let overview = json(&addr, "/live/api/overview");
    let id = overview["traces"]["recent"][0]["id"].as_str().expect("a kept trace").to_owned();
    let (status, _, body) = http_get(&addr, &format!("/live/api/trace/{id}"), &[]);
    assert_eq!(status, 200);
    assert!(body.len() <= MAX_DOCUMENT_BYTES + 64, "{} bytes", body.len());
    let trace: Value = serde_json::from_slice(&body).expect("still JSON");
    assert_eq!(trace["incomplete"], true);
    assert!(!trace["spans"].as_array().expect("spans").is_empty());
}
