//! Criterion benchmarks of the report core (rows per second from loaded
//! inputs) and of CSV writing. Run with `cargo bench -p exhaust-benches`.
//! This crate has no code of its own.
