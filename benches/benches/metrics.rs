//! Metric recording and exposition: otel-lite against opentelemetry_sdk, metrics (+
//! metrics-exporter-prometheus), prometheus, prometheus-client and a raw atomic, case by
//! case in the same run. Group names are `<case>`; function names are the implementations.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use otel_lite::prometheus::{encode, Format};
use otel_lite::{KeyValue, Registry};
use otel_lite_benches::{two_threads, value, BOUNDS};

mod common;

#[repr(align(128))]
struct Padded(AtomicU64);

fn otel_sdk_meter() -> (opentelemetry_sdk::metrics::SdkMeterProvider, opentelemetry::metrics::Meter) {
    use opentelemetry::metrics::MeterProvider;
    let reader = opentelemetry_sdk::metrics::ManualReader::builder().build();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_reader(reader).build();
    let meter = provider.meter("bench");
    (provider, meter)
}

fn attrs() -> [KeyValue; 3] {
    [KeyValue::new("method", "GET"), KeyValue::new("route", "/api/users"), KeyValue::new("status", 200)]
}

fn otel_attrs() -> [opentelemetry::KeyValue; 3] {
    [
        opentelemetry::KeyValue::new("method", "GET"),
        opentelemetry::KeyValue::new("route", "/api/users"),
        opentelemetry::KeyValue::new("status", 200),
    ]
}

const LABELS: [(&str, &str); 3] = [("method", "GET"), ("route", "/api/users"), ("status", "200")];
const LABEL_VALUES: [&str; 3] = ["GET", "/api/users", "200"];

fn install_metrics_recorder() -> metrics_exporter_prometheus::PrometheusHandle {
    use std::sync::OnceLock;
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&BOUNDS)
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("the only recorder");
            handle
        })
        .clone()
}

fn counter_bound(c: &mut Criterion) {
    install_metrics_recorder();
    for threads in [1, 2] {
        let mut g = c.benchmark_group(format!("counter_add_bound/{threads}t"));
        let run = |g: &mut _, name: &str, op: &(dyn Fn() + Sync)| common::on_threads(g, threads, name, op);
        let raw = Arc::new(Padded(AtomicU64::new(0)));
        run(&mut g, "raw-atomic", &|| {
            raw.0.fetch_add(1, Ordering::Relaxed);
        });
        let registry = Registry::new();
        let bound = registry.counter::<u64>("c").build().unwrap().bind(&attrs());
        run(&mut g, "otel-lite", &|| bound.add(1));
        let (_p, meter) = otel_sdk_meter();
        // The SDK's experimental bound instruments: its closest equivalent of a handle.
        let oc = meter.u64_counter("c").build().bind(&otel_attrs());
        run(&mut g, "opentelemetry_sdk", &|| oc.add(1));
        let mc = metrics::counter!("bound_counter", "method" => "GET", "route" => "/api/users", "status" => "200");
        run(&mut g, "metrics", &|| mc.increment(1));
        let pv =
            prometheus::IntCounterVec::new(prometheus::Opts::new("c", "c"), &["method", "route", "status"]).unwrap();
        let pc = pv.with_label_values(&LABEL_VALUES);
        run(&mut g, "prometheus", &|| pc.inc());
        let fam = prometheus_client::metrics::family::Family::<
            [(&str, &str); 3],
            prometheus_client::metrics::counter::Counter,
        >::default();
        let cc = fam.get_or_create(&LABELS).clone();
        run(&mut g, "prometheus-client", &|| {
            cc.inc();
        });
        g.finish();
    }
}

fn counter_attrs(c: &mut Criterion) {
    install_metrics_recorder();
    for threads in [1, 2] {
        let mut g = c.benchmark_group(format!("counter_add_3_attributes/{threads}t"));
        let run = |g: &mut _, name: &str, op: &(dyn Fn() + Sync)| common::on_threads(g, threads, name, op);
        let registry = Registry::new();
        let counter = registry.counter::<u64>("c").build().unwrap();
        let a = attrs();
        run(&mut g, "otel-lite", &|| counter.add(1, black_box(&a)));
        // The same counter with stale-series eviction on: each record pins an epoch.
        let evicting = Registry::builder().evict_idle_series(std::time::Duration::from_secs(60)).build();
        let evicting = evicting.counter::<u64>("c").build().unwrap();
        run(&mut g, "otel-lite (evicting)", &|| evicting.add(1, black_box(&a)));
        let (_p, meter) = otel_sdk_meter();
        let oc = meter.u64_counter("c").build();
        let oa = otel_attrs();
        run(&mut g, "opentelemetry_sdk", &|| oc.add(1, black_box(&oa)));
        run(&mut g, "metrics", &|| {
            metrics::counter!("labelled_counter", "method" => "GET", "route" => "/api/users", "status" => "200")
                .increment(1)
        });
        let pv =
            prometheus::IntCounterVec::new(prometheus::Opts::new("c", "c"), &["method", "route", "status"]).unwrap();
        run(&mut g, "prometheus", &|| pv.with_label_values(black_box(&LABEL_VALUES)).inc());
        let fam = prometheus_client::metrics::family::Family::<
            [(&str, &str); 3],
            prometheus_client::metrics::counter::Counter,
        >::default();
        run(&mut g, "prometheus-client", &|| {
            fam.get_or_create(black_box(&LABELS)).inc();
        });
        g.finish();
    }
}

fn histogram(c: &mut Criterion) {
    install_metrics_recorder();
    for (case, threads) in
        [("histogram_record_bound/1t", 1), ("histogram_record_bound/2t", 2), ("histogram_record_3_attributes/1t", 0)]
    {
        let with_attrs = threads == 0;
        let threads = threads.max(1);
        let mut g = c.benchmark_group(case);
        let run = |g: &mut criterion::BenchmarkGroup<'_, _>, name: &str, op: &(dyn Fn(u64) + Sync)| {
            g.bench_function(name, |b| {
                // A per-thread value sequence: a shared counter would add its own contention.
                thread_local! {
                    static I: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
                }
                let step = || {
                    let i = I.with(|c| {
                        c.set(c.get() + 1);
                        c.get()
                    });
                    op(i)
                };
                if threads == 1 {
                    let mut n = 0u64;
                    b.iter(|| {
                        n += 1;
                        op(n)
                    })
                } else {
                    b.iter_custom(|iters| two_threads(iters, step, step))
                }
            });
        };
        let registry = Registry::new();
        let h = registry.histogram("h").buckets(BOUNDS.to_vec()).build().unwrap();
        let hb = h.bind(&attrs());
        let a = attrs();
        if with_attrs {
            run(&mut g, "otel-lite", &|i| h.record(value(i), black_box(&a)));
        } else {
            run(&mut g, "otel-lite", &|i| hb.record(value(i)));
        }
        let (_p, meter) = otel_sdk_meter();
        let oh = meter.f64_histogram("h").with_boundaries(BOUNDS.to_vec()).build();
        let oa = otel_attrs();
        if with_attrs {
            run(&mut g, "opentelemetry_sdk", &|i| oh.record(value(i), black_box(&oa)));
        } else {
            let ob = oh.bind(&oa);
            run(&mut g, "opentelemetry_sdk", &|i| ob.record(value(i)));
        }
        let mh = metrics::histogram!("bound_histogram", "method" => "GET", "route" => "/api/users", "status" => "200");
        if with_attrs {
            run(&mut g, "metrics", &|i| {
                metrics::histogram!("labelled_histogram", "method" => "GET", "route" => "/api/users", "status" => "200")
                    .record(value(i))
            });
        } else {
            run(&mut g, "metrics", &|i| mh.record(value(i)));
        }
        let pv = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new("h", "h").buckets(BOUNDS.to_vec()),
            &["method", "route", "status"],
        )
        .unwrap();
        let ph = pv.with_label_values(&LABEL_VALUES);
        if with_attrs {
            run(&mut g, "prometheus", &|i| pv.with_label_values(black_box(&LABEL_VALUES)).observe(value(i)));
        } else {
            run(&mut g, "prometheus", &|i| ph.observe(value(i)));
        }
        type PcHist = prometheus_client::metrics::histogram::Histogram;
        let fam =
            prometheus_client::metrics::family::Family::<[(&str, &str); 3], PcHist, _>::new_with_constructor(|| {
                PcHist::new(BOUNDS)
            });
        let pch = fam.get_or_create(&LABELS).clone();
        if with_attrs {
            run(&mut g, "prometheus-client", &|i| fam.get_or_create(black_box(&LABELS)).observe(value(i)));
        } else {
            run(&mut g, "prometheus-client", &|i| pch.observe(value(i)));
        }
        g.finish();
    }
}

fn gauge(c: &mut Criterion) {
    install_metrics_recorder();
    let mut g = c.benchmark_group("gauge_set/1t");
    let registry = Registry::new();
    let gb = registry.gauge::<i64>("g").build().unwrap().bind(&attrs());
    let mut n = 0i64;
    g.bench_function("otel-lite", |b| {
        b.iter(|| {
            n += 1;
            gb.set(black_box(n))
        })
    });
    let (_p, meter) = otel_sdk_meter();
    let og = meter.i64_gauge("g").build();
    g.bench_function("opentelemetry_sdk", |b| {
        b.iter(|| {
            n += 1;
            og.record(black_box(n), &[])
        })
    });
    let mg = metrics::gauge!("bound_gauge", "method" => "GET");
    g.bench_function("metrics", |b| {
        b.iter(|| {
            n += 1;
            mg.set(black_box(n as f64))
        })
    });
    let pg = prometheus::IntGauge::new("g", "g").unwrap();
    g.bench_function("prometheus", |b| {
        b.iter(|| {
            n += 1;
            pg.set(black_box(n))
        })
    });
    let pcg = prometheus_client::metrics::gauge::Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            n += 1;
            pcg.set(black_box(n));
        })
    });
    g.finish();
}

/// 1,000 counter series and 100 histogram series (12 buckets): about 2,400 lines.
fn encoding(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_1000_counters_100_histograms");
    g.measurement_time(Duration::from_secs(4));
    let registry = Registry::builder().resource(otel_lite::Resource::new(&[])).build();
    let counter = registry.counter::<u64>("requests").build().unwrap();
    let hist = registry.histogram("latency").unit("s").buckets(BOUNDS.to_vec()).build().unwrap();
    for i in 0..1000i64 {
        counter.add(i as u64, &[KeyValue::new("series", i), KeyValue::new("route", "/api/users")]);
    }
    for i in 0..100i64 {
        hist.record(0.3, &[KeyValue::new("series", i), KeyValue::new("route", "/api/users")]);
    }
    let mut out = String::with_capacity(256 * 1024);
    g.bench_function("otel-lite", |b| {
        b.iter(|| {
            out.clear();
            encode(&registry.collect(), Format::Text, &mut out);
            black_box(out.len())
        })
    });

    let preg = prometheus::Registry::new();
    let pc =
        prometheus::IntCounterVec::new(prometheus::Opts::new("requests_total", "r"), &["series", "route"]).unwrap();
    let ph = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("latency_seconds", "l").buckets(BOUNDS.to_vec()),
        &["series", "route"],
    )
    .unwrap();
    preg.register(Box::new(pc.clone())).unwrap();
    preg.register(Box::new(ph.clone())).unwrap();
    for i in 0..1000u64 {
        pc.with_label_values(&[&i.to_string(), "/api/users"]).inc_by(i);
    }
    for i in 0..100u64 {
        ph.with_label_values(&[&i.to_string(), "/api/users"]).observe(0.3);
    }
    let mut buf = Vec::with_capacity(256 * 1024);
    g.bench_function("prometheus", |b| {
        use prometheus::Encoder;
        b.iter(|| {
            buf.clear();
            prometheus::TextEncoder::new().encode(&preg.gather(), &mut buf).unwrap();
            black_box(buf.len())
        })
    });

    let mut creg = prometheus_client::registry::Registry::default();
    type Labels = Vec<(&'static str, String)>;
    let cc =
        prometheus_client::metrics::family::Family::<Labels, prometheus_client::metrics::counter::Counter>::default();
    type PcHist = prometheus_client::metrics::histogram::Histogram;
    let ch =
        prometheus_client::metrics::family::Family::<Labels, PcHist, _>::new_with_constructor(|| PcHist::new(BOUNDS));
    creg.register("requests", "r", cc.clone());
    creg.register("latency_seconds", "l", ch.clone());
    for i in 0..1000u64 {
        cc.get_or_create(&vec![("series", i.to_string()), ("route", "/api/users".into())]).inc_by(i);
    }
    for i in 0..100u64 {
        ch.get_or_create(&vec![("series", i.to_string()), ("route", "/api/users".into())]).observe(0.3);
    }
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            out.clear();
            prometheus_client::encoding::text::encode(&mut out, &creg).unwrap();
            black_box(out.len())
        })
    });

    let handle = install_metrics_recorder();
    for i in 0..1000u64 {
        metrics::counter!("enc_requests", "series" => i.to_string(), "route" => "/api/users").increment(i);
    }
    for i in 0..100u64 {
        metrics::histogram!("enc_latency_seconds", "series" => i.to_string(), "route" => "/api/users").record(0.3);
    }
    g.bench_function("metrics", |b| b.iter(|| black_box(handle.render().len())));
    g.finish();
}

/// What real services look like: many names with few series each. 100 counters x 10
/// series and 10 histograms x 10 series (one label, 12 buckets): about 2,400 lines.
fn encoding_many_families(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_100_counters_10_histograms_x10_series");
    g.measurement_time(Duration::from_secs(4));
    let registry = Registry::builder().resource(otel_lite::Resource::new(&[])).build();
    for n in 0..100 {
        let counter = registry.counter::<u64>(format!("app.requests.{n}")).build().unwrap();
        for i in 0..10i64 {
            counter.add(i as u64 + 1, &[KeyValue::new("route", format!("/api/{i}"))]);
        }
    }
    for n in 0..10 {
        let hist = registry.histogram(format!("app.latency.{n}")).unit("s").buckets(BOUNDS.to_vec()).build().unwrap();
        for i in 0..10i64 {
            hist.record(0.3, &[KeyValue::new("route", format!("/api/{i}"))]);
        }
    }
    let mut out = String::with_capacity(256 * 1024);
    g.bench_function("otel-lite", |b| {
        b.iter(|| {
            out.clear();
            encode(&registry.collect(), Format::Text, &mut out);
            black_box(out.len())
        })
    });

    let preg = prometheus::Registry::new();
    for n in 0..100 {
        let c =
            prometheus::IntCounterVec::new(prometheus::Opts::new(format!("app_requests_{n}_total"), "r"), &["route"])
                .unwrap();
        preg.register(Box::new(c.clone())).unwrap();
        for i in 0..10u64 {
            c.with_label_values(&[&format!("/api/{i}")]).inc_by(i + 1);
        }
    }
    for n in 0..10 {
        let h = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(format!("app_latency_{n}_seconds"), "l").buckets(BOUNDS.to_vec()),
            &["route"],
        )
        .unwrap();
        preg.register(Box::new(h.clone())).unwrap();
        for i in 0..10u64 {
            h.with_label_values(&[&format!("/api/{i}")]).observe(0.3);
        }
    }
    let mut buf = Vec::with_capacity(256 * 1024);
    g.bench_function("prometheus", |b| {
        use prometheus::Encoder;
        b.iter(|| {
            buf.clear();
            prometheus::TextEncoder::new().encode(&preg.gather(), &mut buf).unwrap();
            black_box(buf.len())
        })
    });

    let mut creg = prometheus_client::registry::Registry::default();
    type Labels = Vec<(&'static str, String)>;
    type PcHist = prometheus_client::metrics::histogram::Histogram;
    for n in 0..100 {
        let c =
            prometheus_client::metrics::family::Family::<Labels, prometheus_client::metrics::counter::Counter>::default(
            );
        creg.register(format!("app_requests_{n}"), "r", c.clone());
        for i in 0..10u64 {
            c.get_or_create(&vec![("route", format!("/api/{i}"))]).inc_by(i + 1);
        }
    }
    for n in 0..10 {
        let h = prometheus_client::metrics::family::Family::<Labels, PcHist, _>::new_with_constructor(|| {
            PcHist::new(BOUNDS)
        });
        creg.register(format!("app_latency_{n}_seconds"), "l", h.clone());
        for i in 0..10u64 {
            h.get_or_create(&vec![("route", format!("/api/{i}"))]).observe(0.3);
        }
    }
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            out.clear();
            prometheus_client::encoding::text::encode(&mut out, &creg).unwrap();
            black_box(out.len())
        })
    });
    g.finish();
}

/// The `metrics` crate's macros with three literal labels, through otel-lite's recorder
/// (`integrations::metrics`) and through metrics-exporter-prometheus's, each installed
/// thread-locally for its measurement: what `counter!(...).increment(1)` and
/// `histogram!(...).record(v)` cost in code instrumented with `metrics`.
fn metrics_recorders(c: &mut Criterion) {
    use otel_lite::integrations::metrics::OtelLiteRecorder;
    let registry = Registry::new();
    let ours = OtelLiteRecorder::builder(&registry).buckets(&BOUNDS).expect("valid buckets").build();
    let theirs = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&BOUNDS)
        .expect("valid buckets")
        .build_recorder();
    let handle = theirs.handle();
    let recorders: [(&str, &dyn metrics::Recorder); 2] =
        [("otel-lite", &ours), ("metrics-exporter-prometheus", &theirs)];

    let mut g = c.benchmark_group("metrics_counter_3_labels/1t");
    for (name, recorder) in recorders {
        g.bench_function(name, |b| {
            metrics::with_local_recorder(recorder, || {
                b.iter(|| {
                    metrics::counter!("x", "method" => "GET", "route" => "/api/users", "status" => "200").increment(1)
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("metrics_histogram_3_labels/1t");
    for (name, recorder) in recorders {
        g.bench_function(name, |b| {
            metrics::with_local_recorder(recorder, || {
                b.iter_custom(|iters| {
                    let start = std::time::Instant::now();
                    for i in 0..iters {
                        metrics::histogram!("x", "method" => "GET", "route" => "/api/users", "status" => "200")
                            .record(value(i));
                    }
                    let elapsed = start.elapsed();
                    // Untimed: the exporter keeps every sample until it is drained (a
                    // scrape does it); draining here keeps its memory bounded.
                    handle.run_upkeep();
                    elapsed
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = counter_bound, counter_attrs, histogram, gauge, metrics_recorders, encoding, encoding_many_families
}
criterion_main!(benches);
