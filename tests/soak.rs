//! A soak of the quickstart: the instrumented service runs under its own traffic while
//! its endpoint is scraped every second and its resident memory sampled; after a warm-up
//! third, memory must be flat. Prints the slope of a least-squares fit (KiB per minute).
//!
//! `OTEL_LITE_SOAK_SECONDS` sets the length (default 45; 600 for the ten-minute soak).

mod peers;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peers::{http_get, Guard};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the quickstart's status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
}

/// The least-squares slope of `(seconds, KiB)` samples, in KiB per minute.
fn slope_per_minute(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    let (mx, my) = samples.iter().fold((0.0, 0.0), |(x, y), (a, b)| (x + a / n, y + b / n));
    let (cov, var) =
        samples.iter().fold((0.0, 0.0), |(c, v), (x, y)| (c + (x - mx) * (y - my), v + (x - mx) * (x - mx)));
    60.0 * cov / var
}

#[test]
fn the_quickstart_keeps_flat_memory_under_load() {
    let seconds: u64 = std::env::var("OTEL_LITE_SOAK_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(45);
    let exe = std::env::current_exe().expect("the test binary");
    let quickstart = exe.parent().and_then(|d| d.parent()).expect("target dir").join("examples").join("quickstart");
    assert!(quickstart.is_file(), "the quickstart example is not built at {}", quickstart.display());
    let mut child = Command::new(&quickstart)
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", "0")
        .env("QUICKSTART_SECONDS", (seconds + 30).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts the quickstart");
    let stdout = child.stdout.take().expect("piped stdout");
    let pid = child.id();
    let _guard = Guard(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("the quickstart prints its address").expect("a line");
        if let Some(rest) = line.split("serving metrics at http://").nth(1) {
            break rest.trim_end_matches("/metrics").to_string();
        }
    };
    // Keep reading its output so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        let (status, _, body) = http_get(&url, "/metrics", &[]);
        assert_eq!(status, 200);
        // The first requests take a moment to finish; after that, their metrics show.
        if started.elapsed() > Duration::from_secs(3) {
            assert!(String::from_utf8_lossy(&body).contains("function_calls_total"));
        }
        samples.push((started.elapsed().as_secs_f64(), rss_kib(pid) as f64));
        std::thread::sleep(Duration::from_secs(1));
    }
    let warm = samples.len() / 3;
    let after = &samples[warm..];
    let slope = slope_per_minute(after);
    let (first, last) = (after[0].1, after[after.len() - 1].1);
    eprintln!(
        "{seconds} s soak: RSS {:.0} KiB at start, {first:.0} KiB after warm-up, {last:.0} KiB at the end; \
         slope after warm-up {slope:.1} KiB/min",
        samples[0].1
    );
    // Flat: a leak of a few bytes per request would show as megabytes over the run.
    assert!(last - first < 2048.0 || slope < 64.0, "RSS grew from {first} to {last} KiB ({slope:.1} KiB/min)");
}
