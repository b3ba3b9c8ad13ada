//! Log setup: lines on stderr, as text for people or as JSON objects for log shippers.
//!
//! The filter comes from `--log`, else `GAVEL_LOG`, else `RUST_LOG`, else `info`. A bare level (`debug`) is
//! Gavel's level alone, with dependencies kept at `warn`: their debug lines name buyer URLs, and a URL may carry
//! a buyer's credentials. Full directives (`gavel=debug,hyper=trace`) are taken as written.
//!
//! What Gavel logs never holds PII or secrets: auctions are named by their ping id (the request id of every
//! line logged inside one) and lead id, buyers and sellers by id, and no lead field is ever logged.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global logger. `filter` is the command line's `--log`; a bad one is an error naming it. Safe
/// to call more than once (later calls do nothing).
pub fn init(filter: Option<&str>, format: LogFormat) -> Result<(), String> {
    let filter = match filter {
        Some(spec) => parse_filter(spec).map_err(|error| format!("--log {spec:?}: {error}"))?,
        None => from_environment(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    Ok(())
}

fn from_environment() -> EnvFilter {
    for variable in ["GAVEL_LOG", "RUST_LOG"] {
        let Ok(spec) = std::env::var(variable) else { continue };
        match parse_filter(&spec) {
            Ok(filter) => return filter,
            // The logger is not up yet: say so where the operator will look, and go on at `info`.
            Err(error) => eprintln!("gavel: ignoring {variable}={spec:?}: {error}"),
        }
    }
    parse_filter("info").expect("a level is a filter")
}

/// A bare level applies to Gavel only; anything else is an `EnvFilter` directive list.
fn parse_filter(spec: &str) -> Result<EnvFilter, String> {
    let spec = spec.trim();
    let directives = match spec.parse::<LevelFilter>() {
        Ok(level) => format!("warn,gavel={level}"),
        Err(_) => spec.to_owned(),
    };
    EnvFilter::try_new(directives).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filter's directives, in a fixed order (the filter prints them in its own).
    fn directives(spec: &str) -> Vec<String> {
        let mut directives: Vec<String> =
            parse_filter(spec).unwrap().to_string().split(',').map(str::to_owned).collect();
        directives.sort();
        directives
    }

    #[test]
    fn a_bare_level_is_gavels_alone_and_directives_are_kept() {
        assert_eq!(directives("debug"), ["gavel=debug", "warn"]);
        assert_eq!(directives(" TRACE "), ["gavel=trace", "warn"]);
        assert_eq!(directives("gavel=info,hyper=debug"), ["gavel=info", "hyper=debug"]);
        assert!(parse_filter("gavel=loud").is_err());
    }
}
