//! The kinds of failure that choose harden's exit code (README, "Output and
//! exit codes"); anything else is 1.

/// An error type that is only its message.
macro_rules! kind {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub String);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::error::Error for $name {}
    };
}

kind!(
    /// A bad option value or argument, found before anything is read (exit 2,
    /// as clap's own usage errors).
    Usage
);
kind!(
    /// The registry refused the credentials or denied access (exit 3).
    AuthError
);
kind!(
    /// The source image does not exist: no such file, directory, tag or
    /// image in an archive, repository or manifest (exit 4).
    NotFound
);

/// An unsuccessful answer of a registry: its HTTP status (kept, so that
/// `harden serve` passes it on) and what it said. 401 and 403 exit 3, 404
/// exits 4, as the kinds above.
#[derive(Debug)]
pub struct Answered {
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for Answered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Answered {}

/// The registry status an error carries, if it is a registry's answer.
pub fn answered(e: &anyhow::Error) -> Option<u16> {
    e.chain()
        .find_map(|c| c.downcast_ref::<Answered>())
        .map(|a| a.status)
}

/// A usage error carrying `e`'s whole message.
pub fn usage(e: anyhow::Error) -> anyhow::Error {
    Usage(format!("{e:#}")).into()
}

/// The exit code for `e`.
pub fn code(e: &anyhow::Error) -> i32 {
    let is = |f: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool| e.chain().any(f);
    let status = answered(e);
    if is(&|c| c.is::<Usage>()) {
        2
    } else if is(&|c| c.is::<AuthError>()) || matches!(status, Some(401 | 403)) {
        3
    } else if is(&|c| c.is::<NotFound>()) || status == Some(404) {
        4
    } else {
        1
    }
}
