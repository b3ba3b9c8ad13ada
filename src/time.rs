//! Wall-clock times as the contract writes them. (Durations and deadlines use `tokio::time::Instant`.)

use std::cell::RefCell;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Tz;

/// RFC 3339 in UTC with milliseconds: `2026-11-22T10:00:00.123Z`.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One moment, in every timezone an auction asks for, each converted once: a conversion searches the
/// zone's transition table, and a hundred buyers mostly share a handful of zones. Lives on one task.
pub struct Moment {
    pub utc: DateTime<Utc>,
    local: RefCell<Vec<(Tz, NaiveDateTime)>>,
}

impl Moment {
    /// The moment `utc`.
    pub fn new(utc: DateTime<Utc>) -> Moment {
        Moment { utc, local: RefCell::new(Vec::new()) }
    }

    /// The local date and time in `tz` (daylight saving time from the tz database).
    pub fn local(&self, tz: Tz) -> NaiveDateTime {
        if let Some((_, local)) = self.local.borrow().iter().find(|(zone, _)| *zone == tz) {
            return *local;
        }
        let local = self.utc.with_timezone(&tz).naive_local();
        self.local.borrow_mut().push((tz, local));
        local
    }
}
