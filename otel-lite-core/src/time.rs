//! Wall-clock time in the form the data model uses.

/// Nanoseconds since the Unix epoch, or 0 if the clock is before it.
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
