//! `exhaust schema`: the SQL a DBA applies to PostgreSQL before running
//! with `[store] manage_schema = false` (the stores then run no DDL and
//! only check the tables), for the configured table or `--table`. For the
//! default table it is what `deploy/sql/` ships.

use crate::args::ConfigArg;
use anyhow::anyhow;
use clap::Args;
use exhaust_server::app::Settings;

/// `exhaust schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The request table (default: the configuration's `[store] table`,
    /// else `job_request`); `schema.table` puts both tables in that schema.
    #[arg(long)]
    pub table: Option<String>,
}

/// Prints the request table's script, then the token table's.
pub fn run(args: SchemaArgs) -> anyhow::Result<bool> {
    let table = match args.table {
        Some(t) => t,
        None => Settings::load(args.config.config.as_deref())?.store.table,
    };
    let [request, token] =
        exhaust_sources::requests::schema_scripts(&table).map_err(|e| anyhow!(e))?;
    print!("{request}\n{token}");
    Ok(true)
}
