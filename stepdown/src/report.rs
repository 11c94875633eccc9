//! Messages to stderr from templates: `%s` our text, `%q` a value from
//! outside (quoted, at most 40 bytes, control bytes as '?'), `%n` a number,
//! `%e` ": strerror". No heap and no core::fmt, which would be most of the
//! binary; one template string per message keeps the call sites small.

use crate::sys::Errno;
use crate::text::Text;

/// A failure that has been reported; COMMAND must not run.
#[derive(Debug, PartialEq)]
pub struct Failed;

pub type Result<T> = core::result::Result<T, Failed>;

/// What a template's markers stand for.
#[derive(Clone, Copy)]
pub struct Vals<'a> {
    pub s: &'a [u8],
    pub q: &'a [u8],
    pub n: u32,
    pub e: Option<Errno>,
}

pub const NO: Vals = Vals {
    s: b"",
    q: b"",
    n: 0,
    e: None,
};

type Line = Text<320>;

fn render(prefix: &[u8], template: &[u8], v: &Vals) -> Line {
    let mut line = Line::of(b"harden-stepdown: ");
    line.push(prefix);
    let mut marker = false;
    for &c in template {
        match (marker, c) {
            (false, b'%') => marker = true,
            (false, _) => line.push(&[c]),
            (true, _) => {
                marker = false;
                match c {
                    b's' => line.push(v.s),
                    b'q' => line.push_quoted(v.q),
                    b'n' => line.push_num(v.n),
                    _ => {
                        let e = v.e.unwrap_or(Errno(0));
                        line.push(b": ");
                        match e.text() {
                            Some(t) => line.push(t),
                            None => {
                                line.push(b"error ");
                                line.push_num(e.0 as u32);
                            }
                        }
                    }
                }
            }
        }
    }
    line.push(b"\n");
    line
}

impl crate::text::TextRef {
    /// A value from outside: quoted, at most 40 bytes, control bytes as '?'.
    fn push_quoted(&mut self, q: &[u8]) {
        self.push(b"\"");
        let start = self.len();
        self.push(&q[..q.len().min(40)]);
        self.bytes_mut()[start..]
            .iter_mut()
            .filter(|b| **b < 0x20 || **b == 0x7f)
            .for_each(|b| *b = b'?');
        self.push(if q.len() > 40 { b"...\"" } else { b"\"" });
    }
}

/// Reports an error; the caller returns Err(Failed) and the process exits 1.
#[inline(never)]
pub fn error_with(template: &[u8], v: Vals) -> Failed {
    emit(b"", template, &v);
    Failed
}

#[inline(never)]
pub fn error(template: &[u8]) -> Failed {
    error_with(template, NO)
}

#[inline(never)]
pub fn error_q(template: &[u8], q: &[u8]) -> Failed {
    error_with(template, Vals { q, ..NO })
}

#[inline(never)]
pub fn error_e(template: &[u8], e: Errno) -> Failed {
    error_with(template, Vals { e: Some(e), ..NO })
}

#[inline(never)]
pub fn warn(template: &[u8], v: Vals) {
    emit(b"warning: ", template, &v);
}

#[cfg(not(test))]
fn emit(prefix: &[u8], template: &[u8], v: &Vals) {
    let _ = crate::sys::write_all(2, render(prefix, template, v).as_bytes());
}

#[cfg(test)]
std::thread_local! {
    static LAST: core::cell::RefCell<String> = Default::default();
}

/// Unit tests read the message instead of stderr.
#[cfg(test)]
fn emit(prefix: &[u8], template: &[u8], v: &Vals) {
    let line = render(prefix, template, v);
    let line = String::from_utf8_lossy(line.as_bytes()).into_owned();
    LAST.with(|l| *l.borrow_mut() = line);
}

#[cfg(test)]
pub fn last() -> String {
    LAST.with(|l| l.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_make_one_line() {
        let v = Vals {
            s: b"x",
            q: b"a\nb",
            n: 42,
            e: Some(Errno(13)),
        };
        let line = render(b"warning: ", b"%s %q %n%e.", &v);
        assert_eq!(
            line.as_bytes(),
            b"harden-stepdown: warning: x \"a?b\" 42: permission denied.\n"
        );
        let v = Vals {
            q: &[b'9'; 50],
            e: Some(Errno(999)),
            ..NO
        };
        let line = render(b"", b"%q%e", &v);
        assert!(line.as_bytes().ends_with(b"9999...\": error 999\n"));
        for (n, text) in [
            (1, &b"operation not permitted"[..]),
            (40, b"too many levels of symbolic links"),
            (122, b"disk quota exceeded"),
        ] {
            assert_eq!(Errno(n).text(), Some(text));
        }
        assert_eq!(Errno(3).text(), None);
        assert_eq!(Errno(256 + 1).text(), None);
    }
}
