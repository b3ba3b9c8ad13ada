//! Wall-clock times as the contract writes them. (Durations and deadlines use `tokio::time::Instant`.)

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 in UTC with milliseconds: `2026-11-22T10:00:00.123Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
