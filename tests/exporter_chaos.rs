//! Exporter chaos: spans are recorded at full speed while the OTLP receiver, request after
//! request, hangs up, answers too late, throttles with `Retry-After` (1 s, 2^64-1 s, an
//! HTTP date), fails with 500, rejects part of a batch, or answers 200 with a malformed
//! body; then it recovers. Every recorded span is accounted for exactly: delivered (the
//! receiver accepted it), or counted as dropped by the processor (queue full, failed batch)
//! or as rejected by the exporter. The recording thread never blocks (its p99 cost during
//! chaos and calm is printed, not asserted), memory stays bounded, and delivery resumes.
//!
//! `OTEL_LITE_CHAOS_SECONDS` sets the chaos phase (default 10; 120 for the full run).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use otel_lite::otlp::{OtlpSpanExporter, Protocol, Signal, SignalConfig};
use otel_lite::trace::{BatchConfig, Sampler, TracerProvider};

const CALM: u8 = 0;
const CHAOS: u8 = 1;

/// What the receiver does with a request, in turn, during chaos.
const CHAOS_REPLIES: &[&str] =
    &["ok", "hang up", "too late", "429 1", "503 huge", "500", "partial", "malformed", "503 date", "ok"];

/// Whatever the receiver has counted.
#[derive(Default)]
struct Receiver {
    phase: AtomicU8,
    requests: AtomicU64,
    /// Spans in requests answered with a success, minus those a partial success rejected.
    delivered: AtomicU64,
    delivered_after_recovery: AtomicU64,
    recovered: AtomicBool,
}

fn spans_in(body: &[u8]) -> u64 {
    let json: serde_json::Value = serde_json::from_slice(body).expect("an OTLP/JSON request");
    let count = |v: &serde_json::Value, key: &str| v[key].as_array().map(|a| a.to_vec()).unwrap_or_default();
    count(&json, "resourceSpans")
        .iter()
        .flat_map(|r| count(r, "scopeSpans"))
        .map(|s| count(&s, "spans").len() as u64)
        .sum()
}

/// Serves one connection's requests (keep-alive) until the client or the chaos hangs up.
fn serve(stream: TcpStream, receiver: &Receiver) {
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut stream = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("a content length");
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = receiver.requests.fetch_add(1, Ordering::Relaxed) as usize;
        let reply =
            if receiver.phase.load(Ordering::Relaxed) == CHAOS { CHAOS_REPLIES[n % CHAOS_REPLIES.len()] } else { "ok" };
        let spans = spans_in(&body);
        let (status, headers, answer, accepted) = match reply {
            "ok" => ("200 OK", "", "{}".to_string(), spans),
            "partial" => (
                "200 OK",
                "",
                r#"{"partialSuccess":{"rejectedSpans":"1","errorMessage":"chaos"}}"#.to_string(),
                spans.saturating_sub(1),
            ),
            // A success whose body cannot be read: still a success.
            "malformed" => ("200 OK", "", "{\"partialSuccess\": [1, 2".to_string(), spans),
            "hang up" => return,
            "too late" => {
                // Longer than the exporter's timeout: the client has given up.
                std::thread::sleep(Duration::from_millis(1500));
                return;
            }
            "429 1" => ("429 Too Many Requests", "Retry-After: 1\r\n", String::new(), 0),
            "503 huge" => ("503 Service Unavailable", "Retry-After: 18446744073709551615\r\n", String::new(), 0),
            "503 date" => {
                ("503 Service Unavailable", "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n", String::new(), 0)
            }
            _ => ("500 Internal Server Error", "", "chaos".to_string(), 0),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{answer}",
            answer.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
        receiver.delivered.fetch_add(accepted, Ordering::Relaxed);
        if receiver.recovered.load(Ordering::Relaxed) {
            receiver.delivered_after_recovery.fetch_add(accepted, Ordering::Relaxed);
        }
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
}

/// The median and 99th percentile of `samples`.
fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: usize| samples.get(samples.len() * q / 100).copied().unwrap_or(f64::NAN);
    (at(50), at(99))
}

#[test]
fn every_span_is_delivered_or_counted_whatever_the_receiver_does() {
    let chaos_seconds: u64 = std::env::var("OTEL_LITE_CHAOS_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let addr = listener.local_addr().expect("an address");
    let receiver = Arc::new(Receiver::default());
    {
        let receiver = Arc::clone(&receiver);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let receiver = Arc::clone(&receiver);
                std::thread::spawn(move || serve(stream, &receiver));
            }
        });
    }

    let mut config = SignalConfig::new(Signal::Traces).with_base_endpoint(&format!("http://{addr}"), Signal::Traces);
    config.protocol = Protocol::HttpJson;
    config.timeout = Duration::from_secs(1);
    let exporter = OtlpSpanExporter::new(config).expect("an exporter");
    let transport = exporter.stats();
    let batch = BatchConfig {
        scheduled_delay: Duration::from_millis(50),
        export_timeout: Duration::from_secs(1),
        ..BatchConfig::default()
    };
    let provider = TracerProvider::builder().sampler(Sampler::AlwaysOn).with_batch_exporter(exporter, batch).build();
    let tracer = provider.tracer("chaos");

    // Records spans for `seconds`; returns (spans, the cost of each batch of 100 in ns per span).
    let record = |seconds: u64| {
        let (mut spans, mut costs) = (0u64, Vec::new());
        let until = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < until {
            let started = Instant::now();
            for _ in 0..100 {
                drop(tracer.start("work"));
            }
            costs.push(started.elapsed().as_nanos() as f64 / 100.0);
            spans += 100;
            // Full speed, with a breath for the worker and receiver on a two-core machine.
            if spans % 10_000 == 0 {
                std::thread::yield_now();
            }
        }
        (spans, costs)
    };

    let (calm_spans, calm_costs) = record(2);
    receiver.phase.store(CHAOS, Ordering::Relaxed);
    let rss_at_chaos = rss_kib();
    let (chaos_spans, chaos_costs) = record(chaos_seconds);
    let rss_after_chaos = rss_kib();
    receiver.phase.store(CALM, Ordering::Relaxed);
    // Let the worker finish what chaos left it (a batch may be waiting out a retry).
    std::thread::sleep(Duration::from_secs(2));
    receiver.recovered.store(true, Ordering::Relaxed);
    let (recovered_spans, _) = record(2);
    assert!(provider.force_flush_within(Duration::from_secs(10)), "the flush finishes");
    assert!(provider.shutdown(Duration::from_secs(5)), "the shutdown finishes");

    let recorded = calm_spans + chaos_spans + recovered_spans;
    let stats = provider.stats();
    let rejected = transport.rejected.load(Ordering::Relaxed);
    // The receiver counts a request after writing its reply, so the exporter can have read
    // the last reply (and the shutdown returned) a moment before that count: wait for it,
    // briefly. (A CI run once read the counts in that moment: one batch short.)
    let settled = Instant::now() + Duration::from_secs(2);
    while receiver.delivered.load(Ordering::Relaxed) + rejected < stats.exported && Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(10));
    }
    let delivered = receiver.delivered.load(Ordering::Relaxed);
    eprintln!(
        "{recorded} spans recorded ({chaos_spans} in {chaos_seconds} s of chaos, {} requests): {delivered} delivered, \
         {} dropped by the processor, {} in failed batches, {rejected} rejected; {} retries; \
         span cost (median, p99 of batches of 100) {:.0?} ns calm, {:.0?} ns in chaos; RSS {rss_at_chaos} KiB before chaos, {rss_after_chaos} KiB after",
        receiver.requests.load(Ordering::Relaxed),
        stats.dropped,
        stats.failed,
        transport.retries.load(Ordering::Relaxed),
        percentiles(calm_costs),
        percentiles(chaos_costs),
    );
    assert_eq!(stats.exported + stats.failed + stats.dropped, recorded, "the processor accounts for every span");
    assert_eq!(delivered + rejected, stats.exported, "what the processor exported, the receiver accepted or rejected");
    assert_eq!(delivered + rejected + stats.failed + stats.dropped, recorded, "delivered + dropped = recorded");
    assert!(receiver.delivered_after_recovery.load(Ordering::Relaxed) > 0, "delivery resumes after the chaos");
    assert!(rss_after_chaos.saturating_sub(rss_at_chaos) < 64 * 1024, "memory grew in chaos");
}
