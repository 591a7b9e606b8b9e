//! Examples only.
