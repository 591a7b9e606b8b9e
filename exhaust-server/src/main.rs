//! # exhaust-server
//!
//! The HTTP service that will speak Sunbird's Data Exhaust API. It is not
//! built yet (issue 6); until then this binary says so and exits with an
//! error rather than pretending to serve anything.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "exhaust-server is not built yet: the HTTP API is planned (issue 6). \
         Use `exhaust report` to build reports."
    );
    ExitCode::from(2)
}
