//! Meters: event rates (count, mean rate and 1/5/15-minute moving averages).
//!
//! Marking is one striped add, exactly like a counter. The moving averages follow
//! Dropwizard's EWMA (a 5-second tick, `alpha = 1 - e^(-5s/window)`), but are computed on
//! read: the ticks that elapsed since the last read are applied in closed form, spreading
//! the events counted in between evenly over them. No thread ticks in the background.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::attributes::KeyValue;
use crate::metrics::cell::{Striped, U64Sum};
use crate::metrics::instrument::{debug_handle, Collect, CollectContext, Core, Descriptor, Health, SeriesLimits};
use crate::metrics::series::Series;
use crate::metrics::snapshot::{MeterPoint, Metric, MetricData};
use crate::sync::{lock, Mutex};

const TICK: Duration = Duration::from_secs(5);
const WINDOWS_MINUTES: [f64; 3] = [1.0, 5.0, 15.0];

/// One meter series: the event count and the moving averages computed from it.
pub struct MeterCell {
    count: Striped<U64Sum>,
    rates: Mutex<Rates>,
}

struct Rates {
    created: Instant,
    last_tick: Instant,
    count_at_last_tick: u64,
    /// Events per second for each window; `None` until the first tick.
    ewma: Option<[f64; 3]>,
}

impl MeterCell {
    /// A meter created at `now`.
    pub fn new(now: Instant) -> Self {
        MeterCell {
            count: Striped::new(&()),
            rates: Mutex::new(Rates { created: now, last_tick: now, count_at_last_tick: 0, ewma: None }),
        }
    }

    /// Records `n` events.
    #[inline]
    pub fn mark(&self, n: u64) {
        self.count.apply(&(), n);
    }

    /// Events so far.
    pub fn count(&self) -> u64 {
        self.count.sum()
    }

    /// `(count, mean, m1, m5, m15)` as of `now`, ticking the averages forward.
    pub fn read(&self, now: Instant) -> (u64, f64, [f64; 3]) {
        let mut r = lock(&self.rates);
        // Read under the lock: reads are then ordered with the ticks they apply, so the count
        // never goes below `count_at_last_tick` (a stale count read before another reader's
        // tick would make `delta` wrap around to ~2^64).
        let count = self.count();
        let elapsed = now.saturating_duration_since(r.last_tick);
        let ticks = (elapsed.as_nanos() / TICK.as_nanos()) as u64;
        if ticks > 0 {
            let delta = count.wrapping_sub(r.count_at_last_tick);
            // Assume the events were spread evenly over the elapsed ticks.
            let instant_rate = delta as f64 / (ticks as f64 * TICK.as_secs_f64());
            let mut rates = [0.0; 3];
            for (i, minutes) in WINDOWS_MINUTES.iter().enumerate() {
                let alpha = 1.0 - (-TICK.as_secs_f64() / (60.0 * minutes)).exp();
                // The first tick starts each average at the observed rate (as Dropwizard
                // does); after that, n ticks at a constant rate r move the average from a
                // to r + (a - r)(1 - alpha)^n.
                let start = r.ewma.map_or(instant_rate, |e| e[i]);
                let n = if r.ewma.is_some() { ticks } else { ticks - 1 };
                rates[i] = instant_rate + (start - instant_rate) * (1.0 - alpha).powf(n as f64);
            }
            r.ewma = Some(rates);
            r.last_tick += TICK * u32::try_from(ticks).unwrap_or(u32::MAX);
            r.count_at_last_tick = count;
        }
        let age = now.saturating_duration_since(r.created).as_secs_f64();
        let mean = if age > 0.0 { count as f64 / age } else { 0.0 };
        // Before the first tick the averages have no history: the rate observed so far is
        // what the first tick will start them at, so it is the best estimate now (a reader
        // right after a burst of marks sees that rate, not zero).
        (count, mean, r.ewma.unwrap_or([mean; 3]))
    }
}

pub(crate) struct MeterConfig;
type MeterCore = Core<MeterCell, MeterConfig>;

pub(crate) fn new_meter_core(d: Descriptor, limits: SeriesLimits) -> MeterCore {
    Core::new(d, MeterConfig, limits)
}

/// The rate of events: a count plus mean and 1/5/15-minute moving rates, the "heartbeat"
/// metric. Prometheus sees the count as a counter and the rates as gauges.
///
/// The moving rates are exponentially weighted averages updated every 5 seconds (read on
/// collection, with no background thread). Before a series' first 5 seconds have passed
/// they equal its mean rate so far, the rate the averages then start from; a meter marked
/// a million times and read at once shows that rate, not zero.
///
/// ```
/// use otel_lite_core::Registry;
/// let registry = Registry::new();
/// let logins = registry.meter("auth.logins").build()?.bind(&[]);
/// logins.mark(1);
/// assert_eq!(logins.count(), 1);
/// # Ok::<(), otel_lite_core::RegistrationError>(())
/// ```
#[derive(Clone)]
pub struct Meter {
    core: Arc<MeterCore>,
}

/// A meter bound to one attribute set.
#[derive(Clone)]
pub struct BoundMeter {
    series: Arc<Series<MeterCell>>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_handle(f, "Meter", &self.core.descriptor.name, None)
    }
}

impl std::fmt::Debug for BoundMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundMeter").field("attributes", &self.series.attributes).finish()
    }
}

impl Meter {
    pub(crate) fn from_core(core: Arc<MeterCore>) -> Self {
        Meter { core }
    }

    /// Marks `n` events for `attributes`.
    #[inline]
    pub fn mark(&self, n: u64, attributes: &[KeyValue]) {
        self.core.series.record(attributes, || MeterCell::new(Instant::now()), |data| data.mark(n));
    }

    /// Whether this instrument evicts idle series (`RegistryBuilder::evict_idle_series`
    /// or the instrument builder's). A bound handle keeps its series from eviction, so code
    /// that caches bound handles for attribute sets it does not control should not cache
    /// them when this is `true`.
    pub fn evicts_idle_series(&self) -> bool {
        self.core.series.evicts_idle()
    }

    /// A handle for one attribute set.
    pub fn bind(&self, attributes: &[KeyValue]) -> BoundMeter {
        BoundMeter { series: self.core.series.bind(attributes, || MeterCell::new(Instant::now())) }
    }
}

impl BoundMeter {
    /// Marks `n` events.
    #[inline]
    pub fn mark(&self, n: u64) {
        self.series.data.mark(n);
    }
    /// Events so far.
    pub fn count(&self) -> u64 {
        self.series.data.count()
    }
}

/// The meter family every heartbeat marks, labelled `heartbeat = <name>`: one family, so a
/// generic alert covers every heartbeat of every service.
pub const HEARTBEAT: &str = "heartbeat";
/// The gauge holding each heartbeat's declared floor, in events per second.
pub const HEARTBEAT_MIN_RATE: &str = "heartbeat.min_rate";
/// The attribute naming a heartbeat.
pub const HEARTBEAT_LABEL: &str = "heartbeat";

impl Collect for MeterCore {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
    fn collect(&self, cx: &mut CollectContext) -> Option<Metric> {
        let now_unix = cx.now;
        let now = Instant::now();
        let points: Vec<MeterPoint> = self.series.map_series(now_unix, |s| {
            let (count, mean_rate, [m1, m5, m15]) = s.data.read(now);
            MeterPoint {
                attributes: s.attributes.clone(),
                start_unix_nanos: s.start_unix_nanos,
                time_unix_nanos: now_unix,
                count,
                mean_rate,
                m1_rate: m1,
                m5_rate: m5,
                m15_rate: m15,
            }
        });
        (!points.is_empty()).then(|| self.descriptor.metric(MetricData::Meter(points)))
    }
    fn health(&self) -> Health {
        Core::health(self)
    }
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

#[cfg(all(test, not(otel_lite_loom)))]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_converges_and_decays() {
        let t0 = Instant::now();
        let m = MeterCell::new(t0);
        // 10 events per second for 10 minutes, read every 15 s like a scrape.
        let mut t = t0;
        for _ in 0..40 {
            m.mark(150);
            t += Duration::from_secs(15);
            m.read(t);
        }
        let (count, mean, [m1, m5, m15]) = m.read(t);
        assert_eq!(count, 6000);
        assert!((mean - 10.0).abs() < 1e-9, "{mean}");
        assert!((m1 - 10.0).abs() < 1e-6, "{m1}");
        assert!((m5 - 10.0).abs() < 0.01, "{m5}");
        assert!((m15 - 10.0).abs() < 0.01, "{m15}");
        // Five idle minutes: the 1-minute rate falls by e^-5, the 15-minute by e^-1/3.
        let (_, _, [m1, _, m15]) = m.read(t + Duration::from_secs(300));
        assert!((m1 - 10.0 * (-5f64).exp()).abs() < 1e-3, "{m1}");
        assert!((m15 - 10.0 * (-1f64 / 3.0).exp()).abs() < 0.05, "{m15}");
    }

    #[test]
    fn first_tick_starts_at_observed_rate() {
        let t0 = Instant::now();
        let m = MeterCell::new(t0);
        m.mark(50);
        let (_, _, rates) = m.read(t0 + Duration::from_secs(5));
        assert_eq!(rates, [10.0; 3]);
        let (_, _, rates) = MeterCell::new(t0).read(t0 + Duration::from_secs(4));
        assert_eq!(rates, [0.0; 3], "no tick yet, no events");
    }

    /// Read right after a burst, before the first tick, the rates are the rate so far
    /// (they read 0 until the first tick before).
    #[test]
    fn before_the_first_tick_the_rates_are_the_mean_rate() {
        let t0 = Instant::now();
        let m = MeterCell::new(t0);
        m.mark(2_000_000);
        let (count, mean, rates) = m.read(t0 + Duration::from_secs(2));
        assert_eq!((count, mean), (2_000_000, 1_000_000.0));
        assert_eq!(rates, [1_000_000.0; 3]);
    }
}
