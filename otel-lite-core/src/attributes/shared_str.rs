//! [`SharedStr`]: a string in 24 bytes that is `'static`, shared or inline.
//!
//! The layout is by hand rather than an enum's. As an enum, an inline string's bytes began
//! just past the tag, at an odd offset, and the compiler copied such a value in pieces of
//! odd sizes at odd offsets. Moving the copy right after (into a vector or an array, as
//! every attribute clone on a hot path is) then read back across several of those small
//! stores, which the CPU cannot forward: a stall of a dozen cycles or more per string
//! cloned. Here every kind is the same 24 plain bytes, cloned and moved whole, with the kind
//! in the last byte.

use std::sync::Arc;

/// A string that is `'static` (free to create), short (up to [`SharedStr::INLINE_CAPACITY`]
/// bytes, kept inline: no allocation) or shared (one allocation, cheap to clone).
#[repr(C)]
pub struct SharedStr {
    head: Head,
    /// An inline string's bytes past `head`; zero otherwise.
    tail: [u8; TAIL],
    tag: Tag,
}

/// The first two words: where a `'static` or shared string is, or an inline string's first
/// bytes.
#[repr(C)]
#[derive(Clone, Copy)]
union Head {
    far: Far,
    bytes: [u8; HEAD],
}

/// A `'static` string's bytes, or those of an `Arc<str>` (from `Arc::into_raw`, holding one
/// count of it).
#[repr(C)]
#[derive(Clone, Copy)]
struct Far {
    ptr: *const u8,
    len: usize,
}

const HEAD: usize = std::mem::size_of::<Far>();
/// The bytes between `head` and `tag`: the 24 bytes are used to the last on every target
/// (7 with 64-bit pointers, 15 with 32-bit ones).
const TAIL: usize = 24 - HEAD - 1;

// Every inline length has its tag, and the value has no padding: `new` and `as_str` rely on
// the first `INLINE_CAPACITY` bytes being `head` then `tail`.
const _: () = assert!(SharedStr::INLINE_CAPACITY < INLINE_TAGS.len());
const _: () = assert!(std::mem::size_of::<SharedStr>() == HEAD + TAIL + 1);

/// The kind of string, and an inline string's length: `Inline0` plus the length. An enum
/// (not a `u8`) so that the values it never takes are a niche, and [`Value`] that holds a
/// `SharedStr` stays its size. Only [`SharedStr::new`] makes an inline tag, for a length it
/// has checked against [`SharedStr::INLINE_CAPACITY`].
///
/// [`Value`]: crate::Value
#[repr(u8)]
#[derive(Clone, Copy, PartialEq, Eq)]
#[rustfmt::skip]
enum Tag {
    Static, Shared,
    Inline0, Inline1, Inline2, Inline3, Inline4, Inline5, Inline6, Inline7, Inline8,
    Inline9, Inline10, Inline11, Inline12, Inline13, Inline14, Inline15, Inline16,
    Inline17, Inline18, Inline19, Inline20, Inline21, Inline22, Inline23,
}

/// The tag of an inline string of each length up to the capacity.
#[rustfmt::skip]
const INLINE_TAGS: [Tag; 24] = [
    Tag::Inline0, Tag::Inline1, Tag::Inline2, Tag::Inline3, Tag::Inline4, Tag::Inline5,
    Tag::Inline6, Tag::Inline7, Tag::Inline8, Tag::Inline9, Tag::Inline10, Tag::Inline11,
    Tag::Inline12, Tag::Inline13, Tag::Inline14, Tag::Inline15, Tag::Inline16, Tag::Inline17,
    Tag::Inline18, Tag::Inline19, Tag::Inline20, Tag::Inline21, Tag::Inline22, Tag::Inline23,
];

/// What a [`SharedStr`] holds, read from its tag.
enum Kind {
    /// `head.far` is a `'static` string.
    Static,
    /// `head.far` is an `Arc<str>` of which this value owns one count.
    Shared,
    /// The first `len` bytes of the value are the string.
    Inline(usize),
}

// SAFETY: a `SharedStr` is a `&'static str`, an `Arc<str>` or plain bytes, all three
// `Send` and `Sync`; the raw pointer only stands for the first two.
unsafe impl Send for SharedStr {}
// SAFETY: as for `Send`: through a shared reference a `SharedStr` is only read, or its
// `Arc<str>`'s count incremented, which is atomic.
unsafe impl Sync for SharedStr {}

impl SharedStr {
    /// The longest string kept inline, without an allocation: 23 bytes, enough for most
    /// attribute values such as paths, ids and short messages.
    pub const INLINE_CAPACITY: usize = HEAD + TAIL;

    /// A string that borrows a `'static` literal; costs nothing.
    pub const fn from_static(s: &'static str) -> Self {
        SharedStr { head: Head { far: Far { ptr: s.as_ptr(), len: s.len() } }, tail: [0; TAIL], tag: Tag::Static }
    }

    /// A copy of `s`: inline when it is at most [`SharedStr::INLINE_CAPACITY`] bytes,
    /// otherwise one shared allocation of its exact size.
    #[inline]
    pub fn new(s: &str) -> Self {
        if s.len() > Self::INLINE_CAPACITY {
            return SharedStr::from(Arc::<str>::from(s));
        }
        let mut inline = SharedStr { head: Head { bytes: [0; HEAD] }, tail: [0; TAIL], tag: INLINE_TAGS[s.len()] };
        // SAFETY: the struct is `repr(C)`: `head` (`HEAD` bytes, here its `bytes` field) and
        // `tail` (`TAIL` bytes) are its first `INLINE_CAPACITY` bytes, with no padding
        // between them (`tail` is bytes). `s.len()` is at most that, so the copy stays
        // inside `inline`, which is a distinct local and cannot overlap `s`.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), (&raw mut inline).cast::<u8>(), s.len()) };
        inline
    }

    /// Whether the string is kept inline.
    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        matches!(self.kind(), Kind::Inline(_))
    }

    #[inline]
    fn kind(&self) -> Kind {
        match self.tag {
            Tag::Static => Kind::Static,
            Tag::Shared => Kind::Shared,
            inline => Kind::Inline(usize::from(inline as u8 - Tag::Inline0 as u8)),
        }
    }

    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        let bytes = match self.kind() {
            // SAFETY: for these kinds `head.far` was written (by `from_static` or
            // `From<Arc<str>>`) from a `str` that lives as long as `self` does: `'static`, or
            // an `Arc` of which `self` holds a count.
            Kind::Static | Kind::Shared => unsafe {
                let far = self.head.far;
                std::slice::from_raw_parts(far.ptr, far.len)
            },
            // SAFETY: `new` copied the string to the start of the value and set this length,
            // at most `INLINE_CAPACITY`, the size of `head` and `tail` (see `new`).
            Kind::Inline(len) => unsafe { std::slice::from_raw_parts((self as *const Self).cast::<u8>(), len) },
        };
        // SAFETY: each kind's bytes are all of a `str` (valid UTF-8), copied or referred to
        // whole, and never written after construction.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl SharedStr {
    /// Counts one more owner of a shared string (nothing for the other kinds), for a bitwise
    /// copy of a value holding `self` to own: a [`KeyValue`](crate::KeyValue) is cloned
    /// whole this way, for the reason this module's layout is what it is.
    ///
    /// # Safety
    /// The caller makes exactly one bitwise copy of `self` (alone or inside the value that
    /// holds it) for each call, and that copy is dropped as a `SharedStr`; otherwise the
    /// shared string leaks, or is freed while still in use.
    #[inline]
    pub(crate) unsafe fn retain_for_copy(&self) {
        if let Kind::Shared = self.kind() {
            // SAFETY: a shared string's `far` is the pointer and length of an `Arc<str>` from
            // `Arc::into_raw`, alive since `self` holds a count; the caller's copy owns the
            // count added here.
            unsafe {
                Arc::increment_strong_count(
                    std::ptr::slice_from_raw_parts(self.head.far.ptr, self.head.far.len) as *const str
                )
            };
        }
    }
}

impl Clone for SharedStr {
    /// A whole-value copy, after counting one more owner for a shared string.
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: one bitwise copy of `self` follows, and is returned as a `SharedStr`: a
        // `'static` or inline string is plain data, and a shared one's count was just
        // incremented for the copy to own.
        unsafe {
            self.retain_for_copy();
            std::ptr::read(self)
        }
    }
}

impl Drop for SharedStr {
    #[inline]
    fn drop(&mut self) {
        if let Kind::Shared = self.kind() {
            // SAFETY: a shared string's pointer and length came from `Arc::into_raw` (in
            // `From<Arc<str>>`), and this value owns one count (its own, or the one
            // `retain_for_copy` added for it), given back here once: the value is being dropped.
            unsafe {
                drop(Arc::from_raw(std::ptr::slice_from_raw_parts(self.head.far.ptr, self.head.far.len) as *const str))
            };
        }
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        let len = s.len();
        let ptr = Arc::into_raw(s).cast::<u8>();
        SharedStr { head: Head { far: Far { ptr, len } }, tail: [0; TAIL], tag: Tag::Shared }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capacity_holds_and_the_niche_is_kept() {
        assert_eq!(SharedStr::INLINE_CAPACITY, 23);
        assert_eq!(std::mem::size_of::<Option<SharedStr>>(), std::mem::size_of::<SharedStr>());
        assert_eq!(std::mem::size_of::<crate::Value>(), std::mem::size_of::<SharedStr>());
        assert!(SharedStr::INLINE_CAPACITY < INLINE_TAGS.len());
    }

    /// Every kind reads back, clones and drops (miri checks the counts and the accesses).
    #[test]
    fn each_kind_reads_back_and_clones() {
        let long = "a string longer than any inline capacity";
        let values = [
            SharedStr::from_static("static"),
            SharedStr::new(""),
            SharedStr::new("short"),
            SharedStr::new(long),
            SharedStr::from(Arc::<str>::from("shared")),
        ];
        let texts = ["static", "", "short", long, "shared"];
        for (value, text) in values.iter().zip(texts) {
            let clone = value.clone();
            assert_eq!(clone.as_str(), text);
            assert_eq!(value.as_str(), text);
        }
        let kinds = values.iter().map(|v| match v.kind() {
            Kind::Static => "static",
            Kind::Shared => "shared",
            Kind::Inline(_) => "inline",
        });
        assert!(kinds.eq(["static", "inline", "inline", "shared", "shared"]));
        let shared = Arc::<str>::from("counted");
        let value = SharedStr::from(Arc::clone(&shared));
        let clones: Vec<SharedStr> = (0..3).map(|_| value.clone()).collect();
        assert_eq!(Arc::strong_count(&shared), 5);
        drop(clones);
        drop(value);
        assert_eq!(Arc::strong_count(&shared), 1);
    }
}
