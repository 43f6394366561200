//! Process metrics: CPU time, memory, threads, file descriptors, uptime and start time, read
//! from `/proc/self` at each collection (each Prometheus scrape).
//!
//! One call registers observable instruments; nothing runs between collections:
//!
//! ```
//! use otel_lite_core::Registry;
//! use otel_lite_integrations::process::{register_process_metrics, ProcessMetricNames, ProcessMetrics};
//!
//! let registry = Registry::new();
//! // OpenTelemetry semantic-convention names (`process.cpu.time`, `process.memory.usage`, ...).
//! let process = register_process_metrics(&registry)?;
//! assert!(process.instruments().contains(&"process.cpu.time"));
//!
//! // Or the names of the Prometheus client libraries (`process_cpu_seconds_total`,
//! // `process_resident_memory_bytes`, ...), which existing Grafana dashboards query.
//! let other = Registry::new();
//! ProcessMetrics::builder().names(ProcessMetricNames::Prometheus).register(&other)?;
//!
//! let snapshot = registry.collect();
//! # #[cfg(target_os = "linux")]
//! assert!(snapshot.scopes.iter().flat_map(|s| &s.metrics).any(|m| m.name.as_str() == "process.memory.usage"));
//! # Ok::<(), otel_lite_core::RegistrationError>(())
//! ```
//!
//! # Names
//!
//! | [`ProcessMetricNames::Semconv`] (default) | kind, unit | Prometheus name |
//! |---|---|---|
//! | `process.cpu.time` (`cpu.mode` = `user`, `system`) | counter, `s` | `process_cpu_time_seconds_total` |
//! | `process.memory.usage` (resident set) | up/down counter, `By` | `process_memory_usage_bytes` |
//! | `process.memory.virtual` | up/down counter, `By` | `process_memory_virtual_bytes` |
//! | `process.thread.count` | up/down counter, `{thread}` | `process_thread_count` |
//! | `process.unix.file_descriptor.count` | up/down counter, `{file_descriptor}` | `process_unix_file_descriptor_count` |
//! | `process.unix.file_descriptor.limit` (soft limit) | up/down counter, `{file_descriptor}` | `process_unix_file_descriptor_limit` |
//! | `process.uptime` | gauge, `s` | `process_uptime_seconds` |
//! | `process.start_time` (Unix time) | gauge, `s` | `process_start_time_seconds` |
//!
//! The first seven are the semantic conventions' process metrics (all still in
//! development there; `process.unix.file_descriptor.count` replaced
//! `process.open_file_descriptor.count`). The conventions have no file descriptor limit or
//! start time metric: those two names are otel-lite's.
//!
//! | [`ProcessMetricNames::Prometheus`] | kind, unit | Prometheus name |
//! |---|---|---|
//! | `process_cpu_seconds` (user + system) | counter, `s` | `process_cpu_seconds_total` |
//! | `process_resident_memory_bytes` | gauge, `By` | `process_resident_memory_bytes` |
//! | `process_virtual_memory_bytes` | gauge, `By` | `process_virtual_memory_bytes` |
//! | `process_open_fds` | gauge, `{file_descriptor}` | `process_open_fds` |
//! | `process_max_fds` (soft limit) | gauge, `{file_descriptor}` | `process_max_fds` |
//! | `process_start_time_seconds` (Unix time) | gauge, `s` | `process_start_time_seconds` |
//!
//! These are the names and meanings of the Go and Python Prometheus clients' process
//! collectors. [`ProcessMetricNames::Both`] registers both sets; `process.start_time` is
//! then left out, as it would be a second `process_start_time_seconds`.
//!
//! The instruments go to the scope given to [`ProcessMetricsBuilder::register`]: the
//! registry itself (its unnamed scope, no `otel_scope_name` label, as the dashboards
//! expect) or a named [`Scope`].
//!
//! # Platforms
//!
//! On Linux every value comes from `/proc/self/stat`, `/proc/self/status`,
//! `/proc/self/limits` and `/proc/self/fd` (plus `/proc/stat` and `/proc/self/auxv` once, at
//! registration, for the boot time and clock tick). A value that cannot be read or parsed
//! is left out of that collection, never guessed. Elsewhere the instruments are registered
//! but report nothing.
//!
//! Each collection reads `/proc` a few times (one small read per instrument); see the
//! crate's measurements for the cost per scrape.

use otel_lite_core::metrics::{ObservableHandle, Scope};
use otel_lite_core::{KeyValue, RegistrationError};

/// Which names the process metrics are registered under (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProcessMetricNames {
    /// The OpenTelemetry semantic conventions: `process.cpu.time`, `process.memory.usage`, ...
    #[default]
    Semconv,
    /// The Prometheus client libraries' names: `process_cpu_seconds_total`,
    /// `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
    /// `process_max_fds`, `process_start_time_seconds`.
    Prometheus,
    /// Both sets (without `process.start_time`, which `process_start_time_seconds` covers).
    Both,
}

/// Configures the process metrics before registration.
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `register` is called"]
pub struct ProcessMetricsBuilder {
    names: ProcessMetricNames,
}

impl ProcessMetricsBuilder {
    /// The names to register under (default [`ProcessMetricNames::Semconv`]).
    pub fn names(mut self, names: ProcessMetricNames) -> Self {
        self.names = names;
        self
    }

    /// Registers the instruments in `scope`: pass `&registry` for the registry's unnamed
    /// scope, or a named scope from [`Registry::scope`](otel_lite_core::Registry::scope).
    ///
    /// # Errors
    ///
    /// The registry's error if a name is taken (for example by an earlier registration of
    /// process metrics in the same scope: an observable instrument takes one callback). The
    /// instruments registered before the failing one are unregistered again.
    pub fn register(self, scope: &Scope) -> Result<ProcessMetrics, RegistrationError> {
        let source = Source::new();
        let mut registered = Registered { handles: Vec::new(), names: Vec::new() };
        let result = (|| {
            let semconv = matches!(self.names, ProcessMetricNames::Semconv | ProcessMetricNames::Both);
            let classic = matches!(self.names, ProcessMetricNames::Prometheus | ProcessMetricNames::Both);
            if semconv {
                register_semconv(scope, &source, !classic, &mut registered)?;
            }
            if classic {
                register_classic(scope, &source, &mut registered)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(ProcessMetrics { handles: registered.handles, names: registered.names }),
            Err(e) => {
                for handle in registered.handles {
                    handle.unregister();
                }
                Err(e)
            }
        }
    }
}

/// Registers the process metrics with their semantic-convention names in the registry's
/// unnamed scope; short for `ProcessMetrics::builder().register(registry)`.
///
/// # Errors
///
/// See [`ProcessMetricsBuilder::register`].
pub fn register_process_metrics(registry: &otel_lite_core::Registry) -> Result<ProcessMetrics, RegistrationError> {
    ProcessMetrics::builder().register(registry)
}

/// The registered process metrics. Dropping this leaves them registered;
/// [`unregister`](ProcessMetrics::unregister) removes them from later collections.
pub struct ProcessMetrics {
    handles: Vec<ObservableHandle>,
    names: Vec<&'static str>,
}

impl ProcessMetrics {
    /// A builder, to choose the names.
    pub fn builder() -> ProcessMetricsBuilder {
        ProcessMetricsBuilder::default()
    }

    /// The names of the registered instruments (instrument names, not Prometheus names).
    pub fn instruments(&self) -> &[&'static str] {
        &self.names
    }

    /// Stops reporting: the instruments disappear from later collections. Their names stay
    /// taken in the registry.
    pub fn unregister(self) {
        for handle in self.handles {
            handle.unregister();
        }
    }
}

impl std::fmt::Debug for ProcessMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessMetrics").field("instruments", &self.names).finish()
    }
}

struct Registered {
    handles: Vec<ObservableHandle>,
    names: Vec<&'static str>,
}

impl Registered {
    fn push(&mut self, name: &'static str, handle: ObservableHandle) {
        self.handles.push(handle);
        self.names.push(name);
    }
}

/// What is known once, at registration.
#[derive(Clone, Copy)]
struct Source {
    /// The process's start as Unix time in seconds, if `/proc` tells it.
    start_unix_seconds: Option<f64>,
    /// Clock ticks per second, the unit of `utime`/`stime` in `/proc/self/stat`.
    ticks_per_second: f64,
}

impl Source {
    fn new() -> Source {
        let ticks_per_second = sys::ticks_per_second();
        Source { start_unix_seconds: sys::start_unix_seconds(ticks_per_second), ticks_per_second }
    }

    fn uptime_seconds(&self) -> Option<f64> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
        // The start time has a tick's resolution and the boot time a second's: never negative.
        self.start_unix_seconds.map(|start| (now - start).max(0.0))
    }
}

const FD_UNIT: &str = "{file_descriptor}";

fn register_semconv(
    scope: &Scope,
    source: &Source,
    start_time: bool,
    out: &mut Registered,
) -> Result<(), RegistrationError> {
    let ticks = source.ticks_per_second;
    let (user, system) = (KeyValue::new("cpu.mode", "user"), KeyValue::new("cpu.mode", "system"));
    let h = scope
        .observable_counter::<f64>("process.cpu.time")
        .unit("s")
        .description("Total CPU seconds broken down by different CPU modes.")
        .build(move |o| {
            if let Some(t) = sys::cpu_ticks() {
                o.observe(t.user as f64 / ticks, std::slice::from_ref(&user));
                o.observe(t.system as f64 / ticks, std::slice::from_ref(&system));
            }
        })?;
    out.push("process.cpu.time", h);

    let h = scope
        .observable_up_down_counter::<i64>("process.memory.usage")
        .unit("By")
        .description("The amount of physical memory in use (resident set size).")
        .build(|o| {
            if let Some(v) = sys::memory().rss_bytes {
                o.observe(v, &[]);
            }
        })?;
    out.push("process.memory.usage", h);

    let h = scope
        .observable_up_down_counter::<i64>("process.memory.virtual")
        .unit("By")
        .description("The amount of committed virtual memory.")
        .build(|o| {
            if let Some(v) = sys::memory().virtual_bytes {
                o.observe(v, &[]);
            }
        })?;
    out.push("process.memory.virtual", h);

    let h = scope
        .observable_up_down_counter::<i64>("process.thread.count")
        .unit("{thread}")
        .description("Process threads count.")
        .build(|o| {
            if let Some(v) = sys::thread_count() {
                o.observe(v, &[]);
            }
        })?;
    out.push("process.thread.count", h);

    let h = scope
        .observable_up_down_counter::<i64>("process.unix.file_descriptor.count")
        .unit(FD_UNIT)
        .description("Number of unix file descriptors in use by the process.")
        .build(|o| {
            if let Some(v) = sys::open_fds() {
                o.observe(v, &[]);
            }
        })?;
    out.push("process.unix.file_descriptor.count", h);

    let h = scope
        .observable_up_down_counter::<i64>("process.unix.file_descriptor.limit")
        .unit(FD_UNIT)
        .description("The soft limit on the number of open file descriptors (RLIMIT_NOFILE).")
        .build(|o| {
            if let Some(v) = sys::max_fds() {
                o.observe(v, &[]);
            }
        })?;
    out.push("process.unix.file_descriptor.limit", h);

    let src = *source;
    let h = scope
        .observable_gauge::<f64>("process.uptime")
        .unit("s")
        .description("The time the process has been running.")
        .build(move |o| {
            if let Some(v) = src.uptime_seconds() {
                o.observe(v, &[]);
            }
        })?;
    out.push("process.uptime", h);

    if start_time {
        let h = start_time_gauge(scope, "process.start_time", source)?;
        out.push("process.start_time", h);
    }
    Ok(())
}

fn register_classic(scope: &Scope, source: &Source, out: &mut Registered) -> Result<(), RegistrationError> {
    let ticks = source.ticks_per_second;
    // With unit `s` the exposition keeps the name (it already ends in `_seconds`) and adds
    // `_total`: `process_cpu_seconds_total`.
    let h = scope
        .observable_counter::<f64>("process_cpu_seconds")
        .unit("s")
        .description("Total user and system CPU time spent in seconds.")
        .build(move |o| {
            if let Some(t) = sys::cpu_ticks() {
                o.observe((t.user + t.system) as f64 / ticks, &[]);
            }
        })?;
    out.push("process_cpu_seconds", h);

    let h = scope
        .observable_gauge::<i64>("process_resident_memory_bytes")
        .unit("By")
        .description("Resident memory size in bytes.")
        .build(|o| {
            if let Some(v) = sys::memory().rss_bytes {
                o.observe(v, &[]);
            }
        })?;
    out.push("process_resident_memory_bytes", h);

    let h = scope
        .observable_gauge::<i64>("process_virtual_memory_bytes")
        .unit("By")
        .description("Virtual memory size in bytes.")
        .build(|o| {
            if let Some(v) = sys::memory().virtual_bytes {
                o.observe(v, &[]);
            }
        })?;
    out.push("process_virtual_memory_bytes", h);

    // A brace annotation adds no suffix.
    let h = scope
        .observable_gauge::<i64>("process_open_fds")
        .unit(FD_UNIT)
        .description("Number of open file descriptors.")
        .build(|o| {
            if let Some(v) = sys::open_fds() {
                o.observe(v, &[]);
            }
        })?;
    out.push("process_open_fds", h);

    let h = scope
        .observable_gauge::<i64>("process_max_fds")
        .unit(FD_UNIT)
        .description("Maximum number of open file descriptors.")
        .build(|o| {
            if let Some(v) = sys::max_fds() {
                o.observe(v, &[]);
            }
        })?;
    out.push("process_max_fds", h);

    let h = start_time_gauge(scope, "process_start_time_seconds", source)?;
    out.push("process_start_time_seconds", h);
    Ok(())
}

fn start_time_gauge(scope: &Scope, name: &'static str, source: &Source) -> Result<ObservableHandle, RegistrationError> {
    let start = source.start_unix_seconds;
    scope
        .observable_gauge::<f64>(name)
        .unit("s")
        .description("Start time of the process since unix epoch in seconds.")
        .build(move |o| {
            if let Some(v) = start {
                o.observe(v, &[]);
            }
        })
}

/// CPU time in clock ticks.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct CpuTicks {
    user: u64,
    system: u64,
}

/// Memory sizes in bytes.
#[derive(Default)]
struct Memory {
    rss_bytes: Option<i64>,
    virtual_bytes: Option<i64>,
}

#[cfg(target_os = "linux")]
mod sys {
    //! Readers of `/proc`. Every one returns `None` (or leaves a field `None`) for what it
    //! cannot read or parse.

    use super::{CpuTicks, Memory};

    /// The fields of `/proc/self/stat` after the command name, which may itself contain
    /// spaces and `)`: the name ends at the last `)`. Index 0 is field 3 (`state`).
    fn stat_fields(stat: &str) -> Option<impl Iterator<Item = &str>> {
        let (_, rest) = stat.rsplit_once(')')?;
        Some(rest.split_ascii_whitespace())
    }

    /// `utime` and `stime` (fields 14 and 15).
    pub(super) fn parse_cpu_ticks(stat: &str) -> Option<CpuTicks> {
        let mut fields = stat_fields(stat)?.skip(11);
        let user = fields.next()?.parse().ok()?;
        let system = fields.next()?.parse().ok()?;
        Some(CpuTicks { user, system })
    }

    /// `starttime` (field 22): clock ticks after boot.
    pub(super) fn parse_start_ticks(stat: &str) -> Option<u64> {
        stat_fields(stat)?.nth(19)?.parse().ok()
    }

    pub(super) fn cpu_ticks() -> Option<CpuTicks> {
        parse_cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// `VmRSS` and `VmSize` from `/proc/self/status`, in kB there: no page size needed.
    pub(super) fn parse_memory(status: &str) -> Memory {
        let mut memory = Memory::default();
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("VmRSS:") {
                memory.rss_bytes = kb(v);
            } else if let Some(v) = line.strip_prefix("VmSize:") {
                memory.virtual_bytes = kb(v);
            }
        }
        memory
    }

    fn kb(value: &str) -> Option<i64> {
        let kb: i64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
        kb.checked_mul(1024)
    }

    pub(super) fn memory() -> Memory {
        std::fs::read_to_string("/proc/self/status").map(|s| parse_memory(&s)).unwrap_or_default()
    }

    /// `num_threads` (field 20 of `/proc/self/stat`).
    pub(super) fn thread_count() -> Option<i64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let threads = stat_fields(&stat)?.nth(17)?.parse().ok()?;
        Some(threads)
    }

    /// The entries of `/proc/self/fd`, less the one the listing itself holds open.
    pub(super) fn open_fds() -> Option<i64> {
        let mut n: i64 = 0;
        for entry in std::fs::read_dir("/proc/self/fd").ok()? {
            entry.ok()?;
            n += 1;
        }
        Some(n.saturating_sub(1))
    }

    /// The soft limit of `Max open files` in `/proc/self/limits`; `None` when unlimited.
    pub(super) fn parse_max_fds(limits: &str) -> Option<i64> {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line["Max open files".len()..].split_ascii_whitespace().next()?.parse().ok()
    }

    pub(super) fn max_fds() -> Option<i64> {
        parse_max_fds(&std::fs::read_to_string("/proc/self/limits").ok()?)
    }

    /// `btime` in `/proc/stat`: the boot time, Unix seconds.
    fn boot_time() -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()
    }

    pub(super) fn start_unix_seconds(ticks_per_second: f64) -> Option<f64> {
        let start = parse_start_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        Some(boot_time()? as f64 + start as f64 / ticks_per_second)
    }

    /// `sysconf(_SC_CLK_TCK)` without libc: the kernel passes it as `AT_CLKTCK` in the
    /// auxiliary vector. It is 100 on every mainstream architecture, the fallback.
    pub(super) fn ticks_per_second() -> f64 {
        const AT_CLKTCK: usize = 17;
        const WORD: usize = std::mem::size_of::<usize>();
        let auxv = std::fs::read("/proc/self/auxv").unwrap_or_default();
        let word = |chunk: &[u8]| chunk.try_into().ok().map(usize::from_ne_bytes);
        auxv.chunks_exact(2 * WORD)
            .find_map(|pair| match (word(&pair[..WORD]), word(&pair[WORD..])) {
                (Some(AT_CLKTCK), Some(v)) if v > 0 => Some(v as f64),
                _ => None,
            })
            .unwrap_or(100.0)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn stat_with_parentheses_and_spaces_in_the_name() {
            let stat = "4242 (my) (odd name)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                        17 5 0 0 20 0 7 0 123456 1000000 250 18446744073709551615";
            let t = parse_cpu_ticks(stat).expect("parsed");
            assert_eq!((t.user, t.system), (17, 5));
            assert_eq!(parse_start_ticks(stat), Some(123456));
            assert!(parse_cpu_ticks("garbage").is_none());
            assert!(parse_cpu_ticks("1 (x) S 1 2").is_none());
        }

        #[test]
        fn status_and_limits() {
            let m = parse_memory("Name:\tx\nVmSize:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t3\n");
            assert_eq!((m.rss_bytes, m.virtual_bytes), (Some(1024 * 1024), Some(2048 * 1024)));
            let m = parse_memory("VmRSS: lots\n");
            assert_eq!((m.rss_bytes, m.virtual_bytes), (None, None));
            let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                          Max open files            1024                 524288               files\n";
            assert_eq!(parse_max_fds(limits), Some(1024));
            assert_eq!(
                parse_max_fds("Max open files            unlimited            unlimited            files"),
                None
            );
        }

        /// The parsers against mutations of this process's own `/proc` files (bytes
        /// replaced, inserted, removed, truncated anywhere, multi-byte characters included):
        /// they answer `None` or a value, never panic, and a file left intact parses as
        /// before. A bounded, seeded stand-in for a fuzz target: these files come from the
        /// kernel, the one outside part being the command name in `stat`.
        #[test]
        fn mutated_proc_files_never_panic() {
            let read = |path: &str| std::fs::read_to_string(path).expect("readable /proc file");
            let (stat, status, limits) =
                (read("/proc/self/stat"), read("/proc/self/status"), read("/proc/self/limits"));
            assert!(parse_cpu_ticks(&stat).is_some() && parse_start_ticks(&stat).is_some());
            assert!(parse_memory(&status).rss_bytes.is_some() && parse_max_fds(&limits).is_some());
            let mut state = 0x9e37_79b9_7f4a_7c15_u64;
            let mut next = move |bound: usize| {
                // xorshift64*: deterministic, so a failure reproduces.
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % bound.max(1)
            };
            let alphabet: Vec<char> = " ()\t\n:kB0123456789-+éx\u{0}".chars().collect();
            for _ in 0..3_000 {
                for original in [&stat, &status, &limits] {
                    let mut chars: Vec<char> = original.chars().collect();
                    for _ in 0..1 + next(4) {
                        let at = next(chars.len() + 1);
                        match next(4) {
                            0 if at < chars.len() => chars[at] = alphabet[next(alphabet.len())],
                            1 => chars.insert(at, alphabet[next(alphabet.len())]),
                            2 if at < chars.len() => {
                                chars.remove(at);
                            }
                            _ => chars.truncate(at),
                        }
                    }
                    let text: String = chars.into_iter().collect();
                    let _ = (parse_cpu_ticks(&text), parse_start_ticks(&text), parse_max_fds(&text));
                    let _ = parse_memory(&text);
                }
            }
        }

        #[test]
        fn clock_ticks() {
            assert!(ticks_per_second() > 0.0);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    //! No `/proc`: nothing to report.

    use super::{CpuTicks, Memory};

    pub(super) fn cpu_ticks() -> Option<CpuTicks> {
        None
    }
    pub(super) fn memory() -> Memory {
        Memory::default()
    }
    pub(super) fn thread_count() -> Option<i64> {
        None
    }
    pub(super) fn open_fds() -> Option<i64> {
        None
    }
    pub(super) fn max_fds() -> Option<i64> {
        None
    }
    pub(super) fn start_unix_seconds(_ticks_per_second: f64) -> Option<f64> {
        None
    }
    pub(super) fn ticks_per_second() -> f64 {
        100.0
    }
}
