//! A service instrumented only with the `tracing` and `metrics` crates, no otel-lite API in
//! its code: `otel_lite::init()`, with the features `tracing` and `metrics`, routes both
//! into otel-lite, so its spans, events (as log records, stamped with their span) and
//! metrics go where the `OTEL_*` variables say, and its metrics are on the Prometheus
//! endpoint (on loopback unless `OTEL_EXPORTER_PROMETHEUS_HOST` says otherwise).
//!
//! ```text
//! cargo run --example tracing_bridge --features tracing,metrics
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run --example tracing_bridge --features tracing,metrics,otlp
//! OTEL_TRACES_EXPORTER=console OTEL_LOGS_EXPORTER=console cargo run --example tracing_bridge --features tracing,metrics,stdout
//! ```
//!
//! Set `OTEL_EXPORTER_PROMETHEUS_PORT` to use another port than 9464 (0 picks a free one)
//! and `QUICKSTART_SECONDS` to stop by itself after that many seconds; Ctrl-C flushes and
//! stops.
//!
//! Each simulated checkout is a `#[tracing::instrument]`ed span (its arguments become
//! typed attributes) with two children: `reserve_stock`, which fails for every fifth order
//! (an `ERROR` event: the span's status is error and it gets an `exception` event), and a
//! `charge_card` span made with `info_span!`, with a field recorded later, which declines
//! some cards with `tracing::error!`. The `metrics` macros count checkouts by outcome,
//! time them and track those in flight.

use std::fmt;
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use otel_lite::Exporter;
use tracing::Instrument as _;

/// Why a checkout failed.
#[derive(Debug)]
enum CheckoutError {
    OutOfStock { sku: String },
    CardDeclined,
}

impl fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckoutError::OutOfStock { sku } => write!(f, "{sku} is out of stock"),
            CheckoutError::CardDeclined => f.write_str("the card was declined"),
        }
    }
}

impl std::error::Error for CheckoutError {}

/// One checkout: the arguments become the span's attributes (`order_id` and `items` as
/// integers, `customer` as a string, `express` as a boolean); an `Err` is an `ERROR` event.
#[tracing::instrument(err, fields(otel.kind = "server"))]
async fn checkout(order_id: i64, customer: &str, items: i64, express: bool) -> Result<i64, CheckoutError> {
    let started = Instant::now();
    gauge!("app.checkout.in_flight").increment(1.0);
    tracing::info!(items, "checkout started");

    let result = async {
        let sku = format!("sku-{}", order_id % 3);
        reserve_stock(order_id, &sku, items).await?;
        let amount_cents = items * 1250 + if express { 500 } else { 0 };
        charge_card(order_id, amount_cents).await?;
        tracing::info!(amount_cents, "checkout complete");
        Ok(amount_cents)
    }
    .await;

    let outcome = match &result {
        Ok(_) => "ok",
        Err(CheckoutError::OutOfStock { .. }) => "out_of_stock",
        Err(CheckoutError::CardDeclined) => "declined",
    };
    counter!("app.checkout.requests", "outcome" => outcome).increment(1);
    histogram!("app.checkout.duration", "outcome" => outcome).record(started.elapsed().as_secs_f64());
    gauge!("app.checkout.in_flight").decrement(1.0);
    result
}

/// Reserves the items; every fifth order finds its SKU out of stock.
#[tracing::instrument(err)]
async fn reserve_stock(order_id: i64, sku: &str, quantity: i64) -> Result<(), CheckoutError> {
    tokio::time::sleep(Duration::from_millis(2 + (order_id % 4) as u64)).await;
    if order_id % 5 == 0 {
        return Err(CheckoutError::OutOfStock { sku: sku.to_owned() });
    }
    gauge!("app.inventory.reserved", "sku" => sku.to_owned()).increment(quantity as f64);
    Ok(())
}

/// Charges the card in a span made by hand: `payment.id` is declared empty and recorded
/// once the (simulated) provider answers. Every seventh order is declined.
async fn charge_card(order_id: i64, amount_cents: i64) -> Result<(), CheckoutError> {
    let span = tracing::info_span!(
        "charge_card",
        amount_cents,
        currency = "EUR",
        card.present = false,
        payment.id = tracing::field::Empty,
    );
    async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if order_id % 7 == 3 {
            tracing::error!(reason = "insufficient_funds", "payment declined");
            return Err(CheckoutError::CardDeclined);
        }
        tracing::Span::current().record("payment.id", format!("pay-{order_id:06}"));
        Ok(())
    }
    .instrument(span)
    .await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `otel_lite::init()` is `Config::from_env().install()`; this only keeps the endpoint on
    // loopback first. `install` also sets the `tracing` subscriber and the `metrics`
    // recorder, so nothing else needs setting up.
    let mut config = otel_lite::Config::from_env();
    if std::env::var_os("OTEL_EXPORTER_PROMETHEUS_HOST").is_none() {
        config.prometheus_host = "127.0.0.1".into();
    }
    let otlp = [&config.traces, &config.metrics, &config.logs].iter().any(|e| e.contains(&Exporter::Otlp));
    let telemetry = match config.install() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tracing_bridge: {e}\nhint: if the port is taken, try OTEL_EXPORTER_PROMETHEUS_PORT=0");
            std::process::exit(1);
        }
    };
    if otlp && cfg!(feature = "otlp") {
        println!("exporting traces, metrics and logs over OTLP as configured by OTEL_EXPORTER_OTLP_*");
    }

    // Described before first use: an instrument keeps the description and unit it was
    // created with.
    describe_counter!("app.checkout.requests", Unit::Count, "Checkouts handled, by outcome.");
    describe_histogram!("app.checkout.duration", Unit::Seconds, "Time to handle a checkout.");
    describe_gauge!("app.checkout.in_flight", Unit::Count, "Checkouts being handled right now.");
    describe_gauge!("app.inventory.reserved", Unit::Count, "Items reserved so far, by SKU.");

    match telemetry.prometheus_addr() {
        Some(addr) => {
            let url = format!("http://{addr}/metrics");
            println!("otel-lite tracing_bridge: serving metrics at {url}");
            println!("look at: curl -s {url} | grep app_");
        }
        None => println!("otel-lite tracing_bridge: no Prometheus endpoint (OTEL_METRICS_EXPORTER leaves it out)"),
    }
    println!("press Ctrl-C to stop");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let stop = async {
            match std::env::var("QUICKSTART_SECONDS").ok().and_then(|s| s.parse::<u64>().ok()) {
                Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
                None => {
                    if let Err(e) = tokio::signal::ctrl_c().await {
                        eprintln!("tracing_bridge: cannot listen for Ctrl-C ({e}); stopping");
                    }
                }
            }
        };
        tokio::pin!(stop);
        // About five checkouts a second.
        let mut ticks = tokio::time::interval(Duration::from_millis(200));
        let customers = ["alice", "bob", "carol"];
        let mut order_id: i64 = 0;
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = ticks.tick() => {
                    order_id += 1;
                    let customer = customers[order_id as usize % customers.len()];
                    // The outcome is already recorded: the span, its events and the metrics.
                    let _ = checkout(order_id, customer, 1 + order_id % 4, order_id % 2 == 0).await;
                }
            }
        }
    });
    // Flushes every pipeline (spans, logs, a last metric export) before exiting.
    telemetry.shutdown();
    println!("stopped cleanly");
    Ok(())
}
