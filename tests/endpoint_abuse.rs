//! The metrics endpoint under abuse, on loopback: 500 concurrent slow-loris connections
//! (headers trickled a byte at a time), a request with a 1 MiB header, then 10,000 scrapes
//! in a row. Throughout, a normal scrape is answered within a second; afterwards the
//! process's memory has not grown with the scrapes. The cost of a counter add on a
//! recording thread, calm and under abuse, is printed (measured, not asserted).
//!
//! `OTEL_LITE_ABUSE_SCRAPES` sets the number of scrapes in a row (default 10,000).

mod peers;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use otel_lite::prometheus::PrometheusServer;
use otel_lite::{KeyValue, Registry};

use peers::http_get;

/// The process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
}

/// One normal scrape: it must succeed, and within a second.
fn scrape(addr: &str) -> Duration {
    let started = Instant::now();
    let (status, _, body) = http_get(addr, "/metrics", &[]);
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("requests_total"), "the scrape has the metrics");
    assert!(took < Duration::from_secs(1), "a normal scrape took {took:?}");
    took
}

/// Median nanoseconds of a counter add, in batches, until `stop` (at most 10 s).
fn record_until(stop: &AtomicBool, registry: &Registry) -> f64 {
    let counter = registry.counter::<u64>("work").build().expect("registers");
    let attrs = [KeyValue::new("route", "/a")];
    let mut batches = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let started = Instant::now();
        for _ in 0..10_000 {
            counter.add(1, &attrs);
        }
        batches.push(started.elapsed().as_nanos() as f64 / 10_000.0);
    }
    batches.sort_by(f64::total_cmp);
    batches.get(batches.len() / 2).copied().unwrap_or(f64::NAN)
}

#[test]
fn the_endpoint_stays_up_and_answers_under_abuse() {
    let registry = Registry::new();
    let requests = registry.counter::<u64>("requests").build().expect("registers");
    for route in 0..50 {
        requests.add(route, &[KeyValue::new("route", format!("/r{route}"))]);
    }
    let server = PrometheusServer::builder(registry.clone()).host("127.0.0.1").port(0).start().expect("starts");
    let addr = server.local_addr().to_string();

    // Calm: the recording cost without abuse.
    let stop = AtomicBool::new(false);
    let calm_ns = std::thread::scope(|s| {
        let recorder = s.spawn(|| record_until(&stop, &registry));
        for _ in 0..20 {
            scrape(&addr);
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        recorder.join().expect("the recorder")
    });

    // Abuse: 500 connections that never finish their headers, and one 1 MiB header.
    let mut loris: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).expect("connects");
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").expect("writes");
            c
        })
        .collect();
    let big = {
        let mut c = TcpStream::connect(&addr).expect("connects");
        c.set_read_timeout(Some(Duration::from_secs(10))).expect("a timeout");
        let header = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1 << 20));
        // The server may close before reading it all: a write error is an answer too.
        let _ = c.write_all(header.as_bytes());
        let mut answer = Vec::new();
        let _ = c.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).lines().next().unwrap_or("(closed)").to_string()
    };
    assert!(!big.contains(" 200 "), "a 1 MiB header is refused, not served: {big}");

    let stop = AtomicBool::new(false);
    let latencies = Mutex::new(Vec::new());
    let abused_ns = std::thread::scope(|s| {
        let recorder = s.spawn(|| record_until(&stop, &registry));
        // 3 s of slow-loris: a byte per connection every 250 ms, a scrape every 50 ms.
        let started = Instant::now();
        let mut next_trickle = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            if Instant::now() >= next_trickle {
                for c in &mut loris {
                    let _ = c.write_all(b"a");
                }
                next_trickle += Duration::from_millis(250);
            }
            latencies.lock().expect("not poisoned").push(scrape(&addr));
            std::thread::sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
        recorder.join().expect("the recorder")
    });
    let mut latencies = latencies.into_inner().expect("not poisoned");
    latencies.sort();
    drop(loris);

    // 10,000 scrapes in a row, memory sampled after the first thousand and at the end.
    let scrapes: usize = std::env::var("OTEL_LITE_ABUSE_SCRAPES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let warm = scrapes.min(1000);
    let mut rss_after_warmup = 0;
    let started = Instant::now();
    for i in 0..scrapes {
        scrape(&addr);
        if i + 1 == warm {
            rss_after_warmup = rss_kib();
        }
    }
    let rss_end = rss_kib();
    let per_scrape = started.elapsed() / scrapes.max(1) as u32;
    eprintln!(
        "counter add: {calm_ns:.1} ns calm, {abused_ns:.1} ns under abuse ({:.2}x); scrape under abuse: median {:?}, max {:?}; \
         {scrapes} scrapes in a row: {per_scrape:?} each, RSS {rss_after_warmup} KiB after {warm}, {rss_end} KiB at the end; \
         1 MiB header answered: {big}",
        abused_ns / calm_ns,
        latencies[latencies.len() / 2],
        latencies.last().expect("scrapes under abuse"),
    );
    // Flat: the scrapes after warm-up may not keep what they allocated (a leak of even
    // a kilobyte per scrape would show as 9 MiB).
    assert!(
        rss_end.saturating_sub(rss_after_warmup) < 4 * 1024,
        "RSS grew from {rss_after_warmup} KiB to {rss_end} KiB over {} scrapes",
        scrapes - warm
    );
    server.shutdown();
}

/// An idle keep-alive connection, or one that connects and says nothing, does not hold a
/// connection slot for ever: the server closes it.
#[test]
fn idle_connections_are_closed() {
    let registry = Registry::new();
    let server = PrometheusServer::builder(registry).host("127.0.0.1").port(0).start().expect("starts");
    let addr = server.local_addr().to_string();
    let mut silent = TcpStream::connect(&addr).expect("connects");
    silent.set_read_timeout(Some(Duration::from_secs(30))).expect("a timeout");
    let mut keep_alive = TcpStream::connect(&addr).expect("connects");
    keep_alive.set_read_timeout(Some(Duration::from_secs(30))).expect("a timeout");
    keep_alive.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("writes");
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let mut first = Vec::new();
    // The keep-alive connection's answer, then its close (read returns 0).
    loop {
        match keep_alive.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => first.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the idle keep-alive connection was not closed: {e} after {:?}", started.elapsed()),
        }
    }
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200"), "answered first");
    let closed = silent.read(&mut buf);
    assert!(
        matches!(closed, Ok(0)) || closed.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "closed"
    );
    let took = started.elapsed();
    eprintln!("idle connections closed after {took:?}");
    assert!(took < Duration::from_secs(30));
    server.shutdown();
}
