//! The ledger's schema, created and upgraded by whichever node starts first.
//!
//! Several nodes may start at once: the whole upgrade runs under a session advisory lock, so one node creates
//! or upgrades while the others wait and then find it done (`CREATE … IF NOT EXISTS` alone races on the
//! catalog). The version is kept in `meta`; a node that finds a newer schema than it knows refuses to start
//! rather than write rows an older format cannot describe.

use tokio_postgres::Client;

use crate::ledger::LedgerError;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Each version's statements, applied in order; `{s}` is the schema name.
const MIGRATIONS: [&str; 1] = [r#"
CREATE TABLE {s}.entries (
    seq         bigint      PRIMARY KEY,
    node        text        NOT NULL,
    batch       text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    kind        text        NOT NULL,
    lead_id     text,
    ping_id     text,
    buyer       text,
    return_id   text,
    entry       jsonb       NOT NULL
);
CREATE UNIQUE INDEX entries_sale_lead ON {s}.entries (lead_id) WHERE kind = 'sale';
CREATE UNIQUE INDEX entries_sale_per_ping_and_buyer ON {s}.entries (ping_id, buyer) WHERE kind = 'sale';
CREATE UNIQUE INDEX entries_one_return_per_lead ON {s}.entries (lead_id) WHERE kind = 'return';
CREATE UNIQUE INDEX entries_one_decision_per_return ON {s}.entries (return_id) WHERE kind = 'decision';
CREATE INDEX entries_batch ON {s}.entries (batch);
"#];

/// Creates the schema or brings it to [`SCHEMA_VERSION`].
pub async fn migrate(client: &mut Client, schema: &str) -> Result<(), LedgerError> {
    let unavailable = |e: tokio_postgres::Error| LedgerError::Unavailable(format!("schema {schema}: {e}"));
    let key = super::lock_key(&format!("{schema}/migrate"));
    client.execute("SELECT pg_advisory_lock($1)", &[&key]).await.map_err(unavailable)?;
    let result = upgrade(client, schema).await;
    // Released on every path (the session would release it on disconnect too).
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&key]).await;
    result
}

async fn upgrade(client: &mut Client, schema: &str) -> Result<(), LedgerError> {
    let unavailable = |e: tokio_postgres::Error| LedgerError::Unavailable(format!("schema {schema}: {e}"));
    client
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.meta (key text PRIMARY KEY, value text NOT NULL);"
        ))
        .await
        .map_err(unavailable)?;
    let row = client
        .query_opt(&format!("SELECT value FROM {schema}.meta WHERE key = 'schema_version'"), &[])
        .await
        .map_err(unavailable)?;
    let found: i64 = match row {
        Some(row) => row
            .get::<_, String>(0)
            .parse()
            .map_err(|_| LedgerError::Unavailable(format!("schema {schema}: meta.schema_version is not a number")))?,
        None => 0,
    };
    if found > SCHEMA_VERSION {
        return Err(LedgerError::Unavailable(format!(
            "schema {schema} is at version {found}, newer than this build's {SCHEMA_VERSION}: upgrade this node"
        )));
    }
    for (index, statements) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        let transaction = client.transaction().await.map_err(unavailable)?;
        transaction.batch_execute(&statements.replace("{s}", schema)).await.map_err(unavailable)?;
        transaction
            .execute(
                &format!(
                    "INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', $1)
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                ),
                &[&version.to_string()],
            )
            .await
            .map_err(unavailable)?;
        transaction.commit().await.map_err(unavailable)?;
        tracing::info!(%schema, version, "ledger schema upgraded");
    }
    Ok(())
}
