//! Trace and span ids, and the per-thread random source that makes them.

use std::cell::Cell;
use std::fmt;

/// A 16-byte trace id; never all zero when generated here.
///
/// Held as its two big-endian halves in integers (ordered like the bytes): ids are built
/// from random integers and copied around in registers-sized pieces, and a 16-byte array
/// assembled from two 8-byte stores then read back whole stalls the load (a failed store
/// forward, measured at a third of an unsampled span's cost).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId([u64; 2]);

/// An 8-byte span id; never all zero when generated here. Held as its big-endian value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(u64);

impl TraceId {
    /// The invalid (all-zero) id.
    pub const INVALID: TraceId = TraceId([0; 2]);

    /// An id from its bytes (big-endian, as on the wire).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        let v = u128::from_be_bytes(bytes);
        TraceId([(v >> 64) as u64, v as u64])
    }

    /// The bytes (big-endian, as on the wire).
    pub const fn to_bytes(self) -> [u8; 16] {
        ((self.0[0] as u128) << 64 | self.0[1] as u128).to_be_bytes()
    }

    /// Whether the id is valid (not all zero).
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 2]
    }
}

impl SpanId {
    /// The invalid (all-zero) id.
    pub const INVALID: SpanId = SpanId(0);

    /// An id from its bytes (big-endian, as on the wire).
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        SpanId(u64::from_be_bytes(bytes))
    }

    /// The bytes (big-endian, as on the wire).
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Whether the id is valid (not all zero).
    pub fn is_valid(&self) -> bool {
        self.0 != 0
    }
}

/// A hex id that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseIdError {
    /// The text that was given.
    pub input: String,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid id {:?}: expected lowercase hex of the right length, not all zeros", self.input)
    }
}
impl std::error::Error for ParseIdError {}

macro_rules! id_type {
    ($ty:ident, $n:literal, $what:literal) => {
        impl $ty {
            #[doc = concat!("Parses ", $what, " lowercase hex characters; rejects uppercase, other lengths and all zeros.")]
            pub fn from_hex(hex: &str) -> Result<Self, ParseIdError> {
                let err = || ParseIdError { input: hex.to_string() };
                let bytes = hex.as_bytes();
                if bytes.len() != 2 * $n {
                    return Err(err());
                }
                let mut out = [0u8; $n];
                for (i, pair) in bytes.chunks_exact(2).enumerate() {
                    out[i] = (hex_value(pair[0]).ok_or_else(err)? << 4) | hex_value(pair[1]).ok_or_else(err)?;
                }
                let id = $ty::from_bytes(out);
                if id.is_valid() {
                    Ok(id)
                } else {
                    Err(err())
                }
            }

            /// Writes the id as lowercase hex into `out`.
            pub fn write_hex(&self, out: &mut String) {
                for b in self.to_bytes() {
                    out.push(HEX[usize::from(b >> 4)] as char);
                    out.push(HEX[usize::from(b & 0xf)] as char);
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut s = String::with_capacity(2 * $n);
                self.write_hex(&mut s);
                f.write_str(&s)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($ty))
            }
        }
    };
}

id_type!(TraceId, 16, "32");
id_type!(SpanId, 8, "16");

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex digits only: W3C Trace Context forbids uppercase.
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

// --- random source ---------------------------------------------------------------------

thread_local! {
    /// wyrand state; 0 means "not seeded yet".
    static STATE: Cell<u64> = const { Cell::new(0) };
}

#[cold]
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS once per process and varies per instance; mixing in
    // the time and a stack address keeps threads apart.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    let local = 0u8;
    h.write_usize(std::ptr::addr_of!(local) as usize);
    h.finish() | 1
}

/// The next 64 random bits of this thread (wyrand: fast, passes BigCrush; not for secrets).
#[inline]
pub(crate) fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut state = s.get();
        if state == 0 {
            state = seed();
        }
        state = state.wrapping_add(0xa076_1d64_78bd_642f);
        s.set(state);
        let t = u128::from(state) * u128::from(state ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

impl TraceId {
    /// A new random, valid trace id.
    #[inline]
    pub fn random() -> Self {
        loop {
            let (a, b) = (next_u64(), next_u64());
            if a | b != 0 {
                return TraceId([a, b]);
            }
        }
    }
}

impl SpanId {
    /// A new random, valid span id.
    #[inline]
    pub fn random() -> Self {
        loop {
            let a = next_u64();
            if a != 0 {
                return SpanId(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rules() {
        let t = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").is_err(), "uppercase");
        assert!(TraceId::from_hex("00000000000000000000000000000000").is_err(), "all zeros");
        assert!(TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e473").is_err(), "short");
        assert!(TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e473g").is_err(), "non-hex");
        let s = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
        assert_eq!(SpanId::from_hex(&s.to_string()), Ok(s));
    }

    #[test]
    fn bytes_round_trip_and_order_like_the_bytes() {
        let bytes: [u8; 16] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        assert_eq!(TraceId::from_bytes(bytes).to_bytes(), bytes);
        assert_eq!(SpanId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]).to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8]);
        let mut later = bytes;
        later[15] = later[15].wrapping_add(1);
        assert!(TraceId::from_bytes(bytes) < TraceId::from_bytes(later));
        assert!(TraceId::from_bytes([0; 16]) < TraceId::from_bytes([1; 16]));
        assert!(SpanId::from_bytes([0, 0, 0, 0, 0, 0, 0, 9]) < SpanId::from_bytes([0, 0, 0, 0, 0, 0, 1, 0]));
        assert!(!TraceId::from_bytes([0; 16]).is_valid() && TraceId::from_bytes(later).is_valid());
    }

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let ids: std::collections::HashSet<SpanId> = (0..10_000).map(|_| SpanId::random()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(TraceId::random().is_valid());
        let other = std::thread::spawn(SpanId::random).join().unwrap();
        assert!(!ids.contains(&other));
    }
}
