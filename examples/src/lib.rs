//! Examples of embedding the exhaust library (see `build_report.rs`) and the
//! bundled sample snapshot (`sample-snapshot/`), which `exhaust report` reads
//! by default. This crate has no code of its own.
