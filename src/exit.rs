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

/// A usage error carrying `e`'s whole message.
pub fn usage(e: anyhow::Error) -> anyhow::Error {
    Usage(format!("{e:#}")).into()
}

/// The exit code for `e`.
pub fn code(e: &anyhow::Error) -> i32 {
    let is = |f: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool| e.chain().any(f);
    if is(&|c| c.is::<Usage>()) {
        2
    } else if is(&|c| c.is::<AuthError>()) {
        3
    } else if is(&|c| c.is::<NotFound>()) {
        4
    } else {
        1
    }
}
