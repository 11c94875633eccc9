//! A fixed-capacity byte string: messages, paths and account lines without a
//! heap. What does not fit is dropped and remembered, so that a path or a
//! passwd line that is too long can be refused rather than cut.

use core::ffi::CStr;
use core::mem::MaybeUninit;

/// Bytes past `len` are never written until pushed: a 4 KiB path buffer of
/// which 20 bytes are used touches one page, not two (page faults are most
/// of the step-down's run time).
pub struct TextBuf<B: ?Sized> {
    len: usize,
    cut: bool,
    bytes: B,
}

/// A text of capacity N. Its methods are those of `TextRef` (through Deref),
/// so each is in the binary once, not once per capacity.
pub type Text<const N: usize> = TextBuf<[MaybeUninit<u8>; N]>;

/// Any `Text`, whatever its capacity.
pub type TextRef = TextBuf<[MaybeUninit<u8>]>;

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Text<N> {
    pub const fn new() -> Self {
        TextBuf {
            len: 0,
            cut: false,
            bytes: [MaybeUninit::uninit(); N],
        }
    }

    /// A short text by value. (A path-sized one is better made with `new` and
    /// `push` in place: returning it copies its whole capacity.)
    pub fn of(s: &[u8]) -> Self {
        let mut t = Self::default();
        t.push(s);
        t
    }

    /// `push`, by value.
    pub fn and(mut self, s: &[u8]) -> Self {
        self.push(s);
        self
    }
}

impl<const N: usize> core::ops::Deref for Text<N> {
    type Target = TextRef;
    fn deref(&self) -> &TextRef {
        self
    }
}

impl<const N: usize> core::ops::DerefMut for Text<N> {
    fn deref_mut(&mut self) -> &mut TextRef {
        self
    }
}

impl TextRef {
    /// Appends what fits of `s`; what does not is dropped and remembered.
    pub fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        // Safety: n bytes fit after len, and s has at least n.
        unsafe {
            let to = self.bytes.as_mut_ptr().add(self.len).cast();
            core::ptr::copy_nonoverlapping(s.as_ptr(), to, n);
        }
        self.len += n;
        self.cut |= n < s.len();
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.cut = false;
    }

    pub fn push_num(&mut self, n: u32) {
        let mut digits = [0u8; 10];
        self.push(decimal(n, &mut digits));
    }

    /// Whether everything pushed fitted.
    pub fn whole(&self) -> bool {
        !self.cut
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // Safety: bytes[..len] have been written.
        unsafe { core::slice::from_raw_parts_mut(self.bytes.as_mut_ptr().cast(), self.len) }
    }

    pub fn as_bytes(&self) -> &[u8] {
        // Safety: bytes[..len] have been written.
        unsafe { core::slice::from_raw_parts(self.bytes.as_ptr().cast(), self.len) }
    }

    /// The text NUL-terminated, for a system call; None when it was cut or
    /// holds a NUL itself.
    pub fn c_str(&mut self) -> Option<&CStr> {
        // Not `contains`: that brings core's memchr, 200 bytes of the binary.
        #[allow(clippy::manual_contains)]
        if self.cut || self.len == self.bytes.len() || self.as_bytes().iter().any(|b| *b == 0) {
            return None;
        }
        self.bytes[self.len].write(0);
        // Safety: bytes[..=len] are written, with one NUL, at the end (checked above).
        Some(unsafe {
            let bytes = core::slice::from_raw_parts(self.bytes.as_ptr().cast(), self.len + 1);
            CStr::from_bytes_with_nul_unchecked(bytes)
        })
    }
}

/// `n` in decimal, written into `buf`.
pub fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits_and_says_so() {
        let mut t = Text::<8>::of(b"/home/");
        assert!(t.c_str().is_some());
        t.push(b"app");
        assert_eq!(t.as_bytes(), b"/home/ap");
        assert!(t.c_str().is_none(), "cut text is never used as a path");
        let mut full = Text::<4>::of(b"abcd");
        assert!(full.c_str().is_none(), "no room for the NUL");
    }

    #[test]
    fn numbers() {
        let mut t = Text::<32>::default();
        t.push_num(0);
        t.push(b" ");
        t.push_num(4294967295);
        assert_eq!(t.as_bytes(), b"0 4294967295");
    }
}
