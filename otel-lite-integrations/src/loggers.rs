//! Loggers per target, for the bridges that make a record's target its instrumentation
//! scope; and the guard against a record emitted while exporting one.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use otel_lite_core::logs::{Logger, LoggerProvider};

/// Slots of a per-target table (a power of two).
pub(crate) const TARGET_SLOTS: usize = 1024;

/// A logger per target. `LoggerProvider::logger` takes a process-wide lock to intern the
/// scope, and records keep their scope for the life of the process, so each target's
/// logger is made once and kept here. Bounded, because targets can be made at run time:
/// once the table is full, records from further targets share the overflow scope's
/// logger (the bridge then adds their target as an attribute).
pub(crate) struct TargetLoggers {
    pub(crate) table: StrTable<Box<TargetLogger>>,
    overflow: OnceLock<Logger>,
    overflow_scope: &'static str,
}

pub(crate) struct TargetLogger {
    target: Box<str>,
    logger: Logger,
}

impl Keyed for Box<TargetLogger> {
    fn key(&self) -> &str {
        &self.target
    }
}

impl TargetLoggers {
    /// A table whose overflowing targets share `overflow_scope`.
    pub(crate) fn new(overflow_scope: &'static str) -> Self {
        TargetLoggers { table: StrTable::new(TARGET_SLOTS), overflow: OnceLock::new(), overflow_scope }
    }

    /// The logger for `target`, and whether it is the shared overflow logger.
    pub(crate) fn get<'a>(&'a self, provider: &LoggerProvider, target: &str) -> (&'a Logger, bool) {
        let made = || Box::new(TargetLogger { target: target.into(), logger: provider.logger(target.to_owned()) });
        match self.table.get_or_insert(target, made) {
            Some(entry) => (&entry.logger, false),
            None => (self.overflow.get_or_init(|| provider.logger(self.overflow_scope)), true),
        }
    }
}

thread_local! {
    /// Whether this thread is inside a bridge's emit. A simple exporter exports on the
    /// emitting thread, and if it (or a library it calls) logs through `log` or `tracing`,
    /// each record would emit another one forever; such nested records are dropped.
    static EMITTING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `emit` unless this thread is already inside one (see `EMITTING`).
pub(crate) fn emit_guarded(emit: impl FnOnce()) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            EMITTING.set(false);
        }
    }
    if EMITTING.replace(true) {
        return;
    }
    // Reset even if an exporter panics, or this thread would stop logging for good.
    let _reset = Reset;
    emit();
}

/// An entry of a [`StrTable`], found by its string.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

/// A bounded map from strings whose entries are made once and then only read: an
/// open-addressing table of set-once slots, so threads looking up at once never write to
/// a shared cache line (a lock, even a read lock, would). Filled to three quarters at
/// most, which keeps probe sequences short.
pub(crate) struct StrTable<E> {
    slots: Box<[OnceLock<E>]>,
    /// Slots filled or reserved for filling.
    len: AtomicUsize,
    pub(crate) max: usize,
}

impl<E: Keyed> StrTable<E> {
    /// A table of `slots` slots, a power of two.
    pub(crate) fn new(slots: usize) -> Self {
        StrTable { slots: (0..slots).map(|_| OnceLock::new()).collect(), len: AtomicUsize::new(0), max: slots / 4 * 3 }
    }

    /// The entry for `key`, made with `make` if there is none; `None` when there is none
    /// and the table is full.
    pub(crate) fn get_or_insert(&self, key: &str, make: impl Fn() -> E) -> Option<&E> {
        let mask = self.slots.len().wrapping_sub(1);
        let mut index = hash(key) & mask;
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(index)?;
            index = (index + 1) & mask;
            if let Some(entry) = slot.get() {
                if entry.key() == key {
                    return Some(entry);
                }
                continue;
            }
            // Relaxed: the count only bounds the table; the slot's `OnceLock` publishes
            // the entry.
            self.len.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < self.max).then_some(n + 1)).ok()?;
            let mut made = false;
            let entry = slot.get_or_init(|| {
                made = true;
                make()
            });
            if !made {
                // Another thread filled the slot first, and may have made this very entry.
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
            if entry.key() == key {
                return Some(entry);
            }
        }
        None
    }

    // Read by the `log` bridge's `Debug` and by tests.
    #[cfg_attr(not(any(test, feature = "log")), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// A fast hash of a target or key (usually 5–40 bytes): eight bytes at a time, the last
/// word overlapping the one before, so the tail needs no byte-by-byte copy.
pub(crate) fn hash(s: &str) -> usize {
    // A 64×64→128-bit multiply folded to 64 bits: every input bit reaches the low bits
    // the table index uses (a plain multiply carries differences only upwards).
    fn mix(a: u64, b: u64) -> u64 {
        let m = u128::from(a) * u128::from(b);
        (m as u64) ^ ((m >> 64) as u64)
    }
    const K0: u64 = 0x9e37_79b9_7f4a_7c15;
    const K1: u64 = 0xd6e8_feb8_6659_fd93;
    let b = s.as_bytes();
    let len = b.len();
    let word = |at: usize| b.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map_or(0, u64::from_le_bytes);
    let half = |at: usize| {
        b.get(at..at + 4).and_then(|w| <[u8; 4]>::try_from(w).ok()).map_or(0, |w| u64::from(u32::from_le_bytes(w)))
    };
    let byte = |at: usize| b.get(at).map_or(0, |&x| u64::from(x));
    let mut h = mix(K1 ^ len as u64, K0);
    let last = if len >= 8 {
        let mut at = 0;
        while at + 8 < len {
            h = mix(h ^ word(at), K0);
            at += 8;
        }
        word(len - 8)
    } else if len >= 4 {
        half(0) << 32 | half(len - 4)
    } else {
        byte(0) << 16 | byte(len / 2) << 8 | byte(len.wrapping_sub(1))
    };
    mix(h ^ last ^ K0, K1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_makes_one_entry_per_key_across_threads_and_refuses_past_its_bound() {
        let table: StrTable<Box<str>> = StrTable::new(8);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..6 {
                        let key = format!("k{i}");
                        assert_eq!(table.get_or_insert(&key, || key.clone().into()).map(|e| e.key()), Some(&*key));
                    }
                });
            }
        });
        assert_eq!(table.len(), 6);
        assert!(table.get_or_insert("one too many", || "one too many".into()).is_none());
        assert_eq!(table.get_or_insert("k3", || "other".into()).map(|e| e.key()), Some("k3"));
    }

    impl Keyed for Box<str> {
        fn key(&self) -> &str {
            self
        }
    }

    #[test]
    fn the_hash_spreads_similar_targets() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..256 {
            seen.insert(hash(&format!("my_crate::module_{i}")) & (TARGET_SLOTS - 1));
        }
        assert!(seen.len() > 200, "{} distinct slots", seen.len());
        assert_ne!(hash("a"), hash("b"));
        for len in 0..40 {
            let text = "x".repeat(len);
            assert_eq!(hash(&text), hash(&text.clone()));
            assert_ne!(hash(&text), hash(&format!("{text}y")), "length {len}");
        }
    }
}
