//! A cheap clock for span timestamps.
//!
//! Reading the wall clock costs ~30 ns here; span start and end each need one. On x86_64
//! with an invariant TSC, spans record raw TSC ticks (~8 ns) and the ticks are converted to
//! Unix nanoseconds when they are exported, off the hot path, with a frequency measured
//! against the monotonic clock. Elsewhere ticks are nanoseconds since a process anchor.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A point in time in clock ticks; convert with [`to_unix_nanos`].
pub(crate) type Ticks = u64;

struct Calibration {
    /// The anchor: ticks and wall time read together.
    anchor_ticks: u64,
    anchor_unix_nanos: u64,
    anchor_instant: Instant,
    /// Nanoseconds per tick.
    nanos_per_tick: f64,
    /// The same in 32.32 fixed point, for integer conversion on the export path (its
    /// rounding, under a millisecond per day, is far below the calibration error).
    nanos_per_tick_q32: u64,
    /// Ticks in a millisecond (at least 1).
    ticks_per_ms: u64,
    tsc: bool,
}

static CALIBRATION: OnceLock<Calibration> = OnceLock::new();

fn calibration() -> &'static Calibration {
    CALIBRATION.get_or_init(calibrate)
}

#[cfg(target_arch = "x86_64")]
// `__cpuid` became a safe function in Rust 1.94; the block keeps older compilers building.
#[allow(unused_unsafe)]
fn invariant_tsc() -> bool {
    // CPUID leaf 0x8000_0007, EDX bit 8: the TSC runs at a constant rate in all states.
    // SAFETY: CPUID is available on every x86_64 processor.
    let max = unsafe { std::arch::x86_64::__cpuid(0x8000_0000) }.eax;
    // SAFETY: as above; leaf 0x8000_0007 is queried only when the processor reports it.
    max >= 0x8000_0007 && unsafe { std::arch::x86_64::__cpuid(0x8000_0007) }.edx & (1 << 8) != 0
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no preconditions on x86_64; it only reads the time-stamp counter.
    unsafe { std::arch::x86_64::_rdtsc() }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn calibrate() -> Calibration {
    let anchor_instant = Instant::now();
    let anchor_unix_nanos = unix_nanos(SystemTime::now());
    #[cfg(target_arch = "x86_64")]
    if invariant_tsc() {
        // Measure the TSC against the monotonic clock over ~2 ms: the frequency error is a
        // few parts per million, i.e. microseconds over a span lasting seconds.
        let t0 = rdtsc();
        let i0 = Instant::now();
        while i0.elapsed() < Duration::from_millis(2) {
            std::hint::spin_loop();
        }
        let (t1, i1) = (rdtsc(), Instant::now());
        let ticks = t1.wrapping_sub(t0);
        if ticks > 0 {
            let nanos_per_tick = (i1 - i0).as_nanos() as f64 / ticks as f64;
            let anchor_ticks = t0 - ((i0 - anchor_instant).as_nanos() as f64 / nanos_per_tick) as u64;
            return Calibration {
                anchor_ticks,
                anchor_unix_nanos,
                anchor_instant,
                nanos_per_tick,
                nanos_per_tick_q32: (nanos_per_tick * 4_294_967_296.0).round() as u64,
                ticks_per_ms: ((1e6 / nanos_per_tick) as u64).max(1),
                tsc: true,
            };
        }
    }
    Calibration {
        anchor_ticks: 0,
        anchor_unix_nanos,
        anchor_instant,
        nanos_per_tick: 1.0,
        nanos_per_tick_q32: 1 << 32,
        ticks_per_ms: 1_000_000,
        tsc: false,
    }
}

/// Makes sure the clock is calibrated, so the first span does not pay for it.
pub(crate) fn init() {
    calibration();
}

/// The current time in ticks.
#[inline]
pub(crate) fn now() -> Ticks {
    let c = calibration();
    #[cfg(target_arch = "x86_64")]
    if c.tsc {
        return rdtsc();
    }
    u64::try_from(c.anchor_instant.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// How many ticks make a millisecond.
#[inline]
pub(crate) fn ticks_per_millisecond() -> u64 {
    calibration().ticks_per_ms
}

/// Seconds elapsed since `start` (a [`now`] reading).
#[inline]
pub(crate) fn seconds_since(start: Ticks) -> f64 {
    seconds_between(start, now())
}

/// Seconds from `start` to `end` (two [`now`] readings).
#[inline]
pub(crate) fn seconds_between(start: Ticks, end: Ticks) -> f64 {
    end.saturating_sub(start) as f64 * calibration().nanos_per_tick * 1e-9
}

/// Converts ticks to nanoseconds since the Unix epoch.
///
/// Integer arithmetic only: the float-to-128-bit conversion it replaced was a libcall and a
/// visible share of the export worker's time per span.
pub(crate) fn to_unix_nanos(ticks: Ticks) -> u64 {
    let c = calibration();
    let scale = |d: u64| u64::try_from((u128::from(d) * u128::from(c.nanos_per_tick_q32)) >> 32).unwrap_or(u64::MAX);
    if ticks >= c.anchor_ticks {
        c.anchor_unix_nanos.saturating_add(scale(ticks - c.anchor_ticks))
    } else {
        c.anchor_unix_nanos.saturating_sub(scale(c.anchor_ticks - ticks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_track_the_wall_clock() {
        let before = unix_nanos(SystemTime::now());
        let t0 = now();
        std::thread::sleep(Duration::from_millis(20));
        let t1 = now();
        let after = unix_nanos(SystemTime::now());
        let (a, b) = (to_unix_nanos(t0), to_unix_nanos(t1));
        assert!(b > a);
        let elapsed = b - a;
        assert!((19_000_000..200_000_000).contains(&elapsed), "{elapsed}");
        // Within a millisecond of the wall clock (calibration error plus scheduling).
        assert!(a + 1_000_000 >= before && b <= after + 1_000_000, "{before} {a} {b} {after}");
    }
}
