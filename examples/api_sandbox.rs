//! A server for tools that test the API from outside (schemathesis in `.ci/openapi`): simulated buyers and
//! the real server, both on ports the system picks, with a config in a temporary directory, so it never
//! clashes with `gavel demo` (8080, 18101-18104) or another run. Prints the base URL on its first line and
//! the keys on the next ones, then serves until SIGINT or SIGTERM.
//!
//! ```sh
//! cargo run --example api_sandbox
//! ```
//!
//! The names match `openapi.yaml`'s examples where it has them (campaign `auto-insurance`, buyer
//! `best-insurance`, seller `acme-leads`), so the examples a tool sends reach real objects. The buyer whose key
//! the tool holds, `steady`, outbids it on every lead, accepts every post, cannot pause itself, and its returns
//! all wait for review (`rate_cap_percent = "0"`): whatever the examples do to `best-insurance` (pause it),
//! a tool that follows the document's links still goes ping → post → return → approve or reject.

use std::io::Write;
use std::process::ExitCode;

use gavel::app;
use gavel::sim::{SimBuyer, SimBuyerSpec};

/// The keys of each role; the CI script hands them to schemathesis.
const SELLER_KEY: &str = "sk_sandbox_acme";
const BUYER_KEY: &str = "bk_sandbox_steady";
const ADMIN_TOKEN: &str = "sandbox-admin-token";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("api_sandbox: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let example = SimBuyer::start(SimBuyerSpec::bidding("8.00")).await?;
    let steady = SimBuyer::start(SimBuyerSpec::bidding("9.00")).await?;
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("gavel.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
admin_token = "{ADMIN_TOKEN}"

[[sellers]]
id = "acme-leads"
api_key = "{SELLER_KEY}"
margin_percent = "10"

[[campaigns]]
id = "auto-insurance"
ping_fields = ["postal_code", "state", "age", "homeowner", "phone_sha256", "email_sha256"]
floor = "1.00"
max_bid = "100.00"
ping_deadline_ms = 300

[[buyers]]
id = "best-insurance"
api_key = "bk_sandbox_example"
campaigns = ["auto-insurance"]
ping_url = "{example_ping}"
post_url = "{example_post}"
billing = "invoice"
credit_limit = "1000000.00"
dedupe_days = 0

[[buyers]]
id = "steady"
api_key = "{BUYER_KEY}"
campaigns = ["auto-insurance"]
ping_url = "{steady_ping}"
post_url = "{steady_post}"
billing = "invoice"
credit_limit = "1000000.00"
dedupe_days = 0
self_pause = false

[buyers.returns]
rate_cap_percent = "0"
"#,
            data = dir.path().join("data").display(),
            example_ping = example.ping_url(),
            example_post = example.post_url(),
            steady_ping = steady.ping_url(),
            steady_post = steady.post_url(),
        ),
    )?;
    let config = gavel::config::load_file(&config_path).map_err(|problems| problems.to_string())?;
    let server = app::start(config, None).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "http://{}", server.addr)?;
    writeln!(out, "seller_key={SELLER_KEY}\nbuyer_key={BUYER_KEY}\nadmin_token={ADMIN_TOKEN}")?;
    out.flush()?;
    drop(out);
    gavel::signals::wait_for_stop().await;
    server.shutdown().await;
    drop((example, steady));
    Ok(())
}
