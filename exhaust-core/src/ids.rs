//! Identifier newtypes, so a batch id is never passed where a user id belongs.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier as it is stored; identifiers are opaque text.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The identifier's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps into the owned text.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A course batch id (`course_batch.batchid`).
    BatchId
);
id_type!(
    /// A content id (`do_...`): a collection, a unit, a resource or an assessment.
    ContentId
);
id_type!(
    /// A learner's user id: the suffix of the user cache key `user:<id>`.
    UserId
);
id_type!(
    /// An organisation id (a channel, a root org).
    OrgId
);
