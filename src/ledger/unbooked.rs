//! Sales a buyer has accepted that the ledger of record could not book yet (cluster mode, PostgreSQL away
//! while the lead was with the buyer). The lead is delivered, so the sale must be booked whatever happens
//! next: it is written to the node's own directory before the node starts retrying, and a node that stops or
//! dies before PostgreSQL takes it books it when it starts again.
//!
//! The file, `unbooked-sales.jsonl`, is one JSON object a line: a sale kept (written and synced before the
//! retries begin) or a sale booked (its lead id; not synced: a booking the file forgot is found in the ledger
//! on the next start, where the sale is refused as a duplicate and so counts as booked). Start-up books every
//! sale kept and not booked, then rewrites the file with the ones it could not (none, unless the ledger refused
//! one for good).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::entry::Sale;

/// The file's name in the node's directory.
pub const FILE_NAME: &str = "unbooked-sales.jsonl";

/// A sale as it is kept until booked: with the config revision and the buyer's terms it was sold under, so it
/// is booked under those even if the node starts again on another config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unbooked {
    pub sale: Sale,
    pub revision: String,
    pub terms: Value,
}

/// One line of the file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Kept(Box<Unbooked>),
    Booked { lead_id: String },
}

/// The node's file of unbooked sales.
pub struct UnbookedSales {
    path: PathBuf,
    file: Arc<parking_lot::Mutex<File>>,
}

impl UnbookedSales {
    /// Opens (or creates) the file in `dir`, and returns it with the sales kept there and not booked, in the
    /// order they were kept. A last line cut short (the node died writing it) is skipped: its sale's retries
    /// had not begun.
    pub fn open(dir: &Path) -> std::io::Result<(UnbookedSales, Vec<Unbooked>)> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
        let (mut kept, mut booked) = (Vec::new(), HashSet::new());
        for line in BufReader::new(&file).lines() {
            match serde_json::from_str::<Line>(&line?) {
                Ok(Line::Kept(unbooked)) => kept.push(*unbooked),
                Ok(Line::Booked { lead_id }) => {
                    booked.insert(lead_id);
                }
                Err(error) => tracing::warn!(%error, file = %path.display(), "an unreadable line was skipped"),
            }
        }
        kept.retain(|unbooked| !booked.contains(&unbooked.sale.lead_id));
        Ok((UnbookedSales { path, file: Arc::new(parking_lot::Mutex::new(file)) }, kept))
    }

    /// Writes `unbooked` and syncs it to disk.
    pub async fn keep(&self, unbooked: &Unbooked) -> std::io::Result<()> {
        self.append(Line::Kept(Box::new(unbooked.clone())), true).await
    }

    /// Notes that the sale of `lead_id` is booked.
    pub async fn booked(&self, lead_id: &str) -> std::io::Result<()> {
        self.append(Line::Booked { lead_id: lead_id.to_owned() }, false).await
    }

    /// Replaces the file's contents with `left` (start-up, once the rest is booked); synced, then renamed into
    /// place, so a crash leaves the old file or the new one.
    pub fn rewrite(&self, left: &[Unbooked]) -> std::io::Result<()> {
        let mut file = self.file.lock();
        let fresh = self.path.with_extension("jsonl.new");
        let mut out = File::create(&fresh)?;
        for unbooked in left {
            writeln!(out, "{}", serde_json::to_string(&Line::Kept(Box::new(unbooked.clone())))?)?;
        }
        out.sync_all()?;
        std::fs::rename(&fresh, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        *file = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }

    async fn append(&self, line: Line, sync: bool) -> std::io::Result<()> {
        let mut text = serde_json::to_string(&line)?;
        text.push('\n');
        let file = Arc::clone(&self.file);
        let write = move || {
            let mut file = file.lock();
            file.write_all(text.as_bytes())?;
            if sync {
                file.sync_data()?;
            }
            Ok(())
        };
        tokio::task::spawn_blocking(write).await.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Money;

    fn unbooked(lead_id: &str) -> Unbooked {
        Unbooked {
            sale: Sale {
                lead_id: lead_id.into(),
                ping_id: "p_1".into(),
                campaign: "auto".into(),
                seller: "acme".into(),
                buyer: "best".into(),
                source: None,
                price: Money::from_cents(1250),
                payout: Money::from_cents(1125),
                at: chrono::Utc::now(),
                lead: serde_json::Map::new(),
                terms_id: 0,
            },
            revision: "r1".into(),
            terms: serde_json::json!({"caps": {"daily": 3}}),
        }
    }

    #[tokio::test]
    async fn a_kept_sale_is_found_again_until_it_is_booked() {
        let dir = tempfile::tempdir().unwrap();
        let (sales, left) = UnbookedSales::open(dir.path()).unwrap();
        assert!(left.is_empty());
        sales.keep(&unbooked("l_1")).await.unwrap();
        sales.keep(&unbooked("l_2")).await.unwrap();
        sales.booked("l_1").await.unwrap();
        drop(sales);

        let (sales, left) = UnbookedSales::open(dir.path()).unwrap();
        assert_eq!(lead_ids(&left), ["l_2"]);
        assert_eq!(left[0].sale.price, Money::from_cents(1250));
        assert_eq!(left[0].terms["caps"]["daily"], 3, "kept with the terms it was sold under");
        sales.rewrite(&[]).unwrap();
        drop(sales);
        assert!(UnbookedSales::open(dir.path()).unwrap().1.is_empty(), "rewritten without what was booked");
    }

    #[tokio::test]
    async fn a_line_cut_short_is_skipped_and_the_rest_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (sales, _) = UnbookedSales::open(dir.path()).unwrap();
        sales.keep(&unbooked("l_1")).await.unwrap();
        drop(sales);
        let mut file = OpenOptions::new().append(true).open(dir.path().join(FILE_NAME)).unwrap();
        file.write_all(br#"{"kept":{"sale":{"lead_id":"l_2""#).unwrap();
        let (_, left) = UnbookedSales::open(dir.path()).unwrap();
        assert_eq!(lead_ids(&left), ["l_1"]);
    }

    fn lead_ids(sales: &[Unbooked]) -> Vec<&str> {
        sales.iter().map(|u| u.sale.lead_id.as_str()).collect()
    }
}
