//! Configuration: a TOML file plus `EXHAUST_*` environment variables.
