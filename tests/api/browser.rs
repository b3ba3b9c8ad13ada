//! The pages in a real browser: `tests/browser/pages.mjs` drives Debian's Chromium through playwright-core
//! against the real server and simulated buyers (API.md section 10, issue 20's scenarios). Screenshots of
//! every page visited land in `target/browser-screenshots/`.
//!
//! Needs Node.js, the npm packages of `tests/browser` and Chromium; `.ci/run` installs them. Without them the
//! test fails and says what to install: it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{spawn_app, TestBuyer, ADMIN_TOKEN, SELLER_KEY};

/// Where Chromium is (Debian's `chromium` package), unless `GAVEL_CHROMIUM` says otherwise.
fn chromium() -> PathBuf {
    std::env::var_os("GAVEL_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What the browser tests need that is missing, as instructions.
fn missing_tools(browser_dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if Command::new("node").arg("--version").output().map_or(true, |out| !out.status.success()) {
        missing.push("Node.js 20 or later: apt-get install nodejs npm".to_owned());
    }
    if !browser_dir.join("node_modules/playwright-core/package.json").exists() {
        missing.push(format!("the npm packages of the browser tests: (cd {} && npm ci)", browser_dir.display()));
    }
    if !chromium().exists() {
        missing.push(format!("Chromium at {}: apt-get install chromium (or set GAVEL_CHROMIUM)", chromium().display()));
    }
    missing
}

/// Where screenshots go: `<target dir>/browser-screenshots`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), PathBuf::from);
    target.join("browser-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_buyer_and_seller_pages_work_in_chromium() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let missing = missing_tools(&browser_dir);
    assert!(missing.is_empty(), "the browser tests need, and this machine lacks:\n  {}", missing.join("\n  "));

    let policy = "[buyers.returns]\npolicy_note = \"Returns within 7 days for defects only.\"";
    let app =
        spawn_app("", vec![TestBuyer::bidding("harbor", "10.00").with(policy), TestBuyer::bidding("cheapo", "5.00")])
            .await;
    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let script = browser_dir.join("pages.mjs");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .args([app.base.as_str(), ADMIN_TOKEN, "bk_harbor", SELLER_KEY])
        .arg(&shots)
        .output()
        .await
        .expect("node runs");
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the browser tests failed:\n{printed}");
    let taken = std::fs::read_dir(&shots).map(|dir| dir.count()).unwrap_or(0);
    assert!(taken >= 30, "a screenshot of every page visited, found {taken}:\n{printed}");
}
