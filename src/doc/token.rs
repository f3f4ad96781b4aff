//! Enumerations of schema tokens: the closed value lists that presence documents spell as
//! element names (`<rpid:on-the-phone/>`) or attribute values (`status="active"`).
#![forbid(unsafe_code)]

/// Declares an enum of schema tokens with its name table: `NAMES`, `ALL`, `as_str`,
/// `from_name` (exact, case-sensitive lookup), `Display`, and `FromStr` whose error names the
/// value kind (`"watcher status"`) and lists the allowed tokens. An optional `@other` variant
/// holds free text (written as `<other>`); it has no token name and `from_name` never returns
/// it. `FromStr` errors are `Error::Malformed` for the document named by the calling module's
/// `DOC` constant.
macro_rules! token_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )*
            $( @other $(#[$ometa:meta])* $other:ident($oty:ty), )?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            $( $(#[$ometa])* $other($oty), )?
        }

        impl $name {
            /// The token names of the predefined values, in schema order.
            pub const NAMES: &'static [&'static str] = &[$($text),*];

            /// Every predefined value, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The token of this value (`"other"` for free text).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )*
                    $( Self::$other(_) => "other", )?
                }
            }

            /// The predefined value with this token, if any.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some(Self::$variant), )*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::Error;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                Self::from_name(s).ok_or_else(|| {
                    $crate::error::Error::malformed(
                        DOC,
                        format!("{} '{}' is not one of {}", $what, s, Self::NAMES.join(", ")),
                    )
                })
            }
        }
    };
}
pub(crate) use token_enum;

/// Names the document in parse errors of the shared tokens below.
const DOC: &str = "document";

token_enum! {
    /// Whether a document carries the whole state (`full`) or only what changed since the
    /// previous version (`partial`); shared by watcher information and dialog state.
    #[derive(Copy, Hash, Default)]
    pub enum DocState("state") {
        /// The whole state.
        #[default]
        Full = "full",
        /// Only what changed since the previous version.
        Partial = "partial",
    }
}

/// What folding a versioned document into the state kept so far must do (RFC 3858 and RFC
/// 4235 number their notifications and send full or partial documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    /// The update is not newer than what is kept: ignore it.
    Stale,
    /// A full document: it replaces what is kept.
    Replace,
    /// The next partial document: merge its changes.
    Merge,
}

/// Decides how the update numbered `version` in `state` folds into the state kept at
/// `kept`. A partial document that skips a version cannot be folded: the full state is
/// needed, and the error (naming `doc`) says so.
pub(crate) fn fold(
    doc: &str,
    kept: u32,
    version: u32,
    state: DocState,
) -> crate::error::Result<Fold> {
    if version <= kept {
        return Ok(Fold::Stale);
    }
    match state {
        DocState::Full => Ok(Fold::Replace),
        DocState::Partial if version != kept.wrapping_add(1) => Err(crate::error::Error::malformed(
            doc,
            format!("partial version {version} does not follow version {kept}; the full state is needed"),
        )),
        DocState::Partial => Ok(Fold::Merge),
    }
}
