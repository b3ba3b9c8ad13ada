//! Reading the TOML file into [`Config`](super::Config). (Being written.)

use std::path::Path;

use super::Config;

/// Every problem found in a configuration file, each with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses and validates configuration text. `revision` is derived from the bytes.
pub fn parse(_text: &str) -> Result<Config, ConfigErrors> {
    Err(ConfigErrors(vec!["not written yet".into()]))
}

/// Reads and parses a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    parse(&text)
}
