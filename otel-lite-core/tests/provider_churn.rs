//! Providers built and dropped in a loop (a test suite, a plugin reloaded) leave behind
//! only their small pipeline record, which spans point at without counting references:
//! the rings (512 KiB of address space per recording thread), the worker thread and the
//! exporter are released at shutdown. The figure per provider is printed and bounded.
#![cfg(not(otel_lite_loom))]

use otel_lite_core::trace::{BatchConfig, InMemorySpanExporter, TracerProvider};
use otel_lite_core::Resource;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
}

fn churn(providers: usize) {
    for _ in 0..providers {
        let exporter = InMemorySpanExporter::default();
        let provider = TracerProvider::builder()
            .resource(Resource::new(&[]))
            .with_batch_exporter(exporter, BatchConfig::default())
            .build();
        // Record on a thread of its own, so each provider has a ring to release, with
        // enough spans (128 bytes a slot) that a ring kept would show.
        let tracer = provider.tracer("churn");
        std::thread::spawn(move || (0..100).for_each(|_| drop(tracer.start("one")))).join().expect("records");
        drop(provider);
    }
}

#[test]
fn dropped_providers_keep_only_their_pipeline_record() {
    churn(100);
    let before = rss_kib();
    let providers = 1000;
    churn(providers);
    let grown = rss_kib().saturating_sub(before);
    let per_provider = grown as f64 * 1024.0 / providers as f64;
    eprintln!("{providers} providers built and dropped: RSS +{grown} KiB, {per_provider:.0} bytes each");
    // A ring that stayed would keep at least the 12.5 KiB its spans touched, a worker
    // thread that stayed its stack's touched pages.
    assert!(per_provider < 4096.0, "{per_provider:.0} bytes kept per dropped provider");
}
