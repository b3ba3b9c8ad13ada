//! Rebuilding the exchange's state in Redis from the ledger, after Redis lost it (restarted empty), and adding
//! the buyers a reload brought (see the module doc of `redis`).

use chrono::{DateTime, Utc};
use redis::Value;

use super::holds::Conversion;
use super::{RedisCoordinator, RECENT_CONVERSIONS};
use crate::buyers::Roster;
use crate::coordinator::Unreachable;
use crate::dedupe::Contact;
use crate::ids::new_id;
use crate::ledger::Ledger;

impl RedisCoordinator {
    /// Converts the last minute's sales again into a rebuilt Redis (see the module doc). The rebuild marked
    /// the sales the ledger already had as converted, so each is counted once: from the ledger, or here.
    pub(super) async fn reconvert_recent(&self) {
        let recent: Vec<Conversion> = self.recent.lock().iter().map(|(_, c)| c.clone()).collect();
        for conversion in recent {
            let _ = self.convert(&conversion).await;
        }
    }

    pub(super) fn needs_rebuild(&self) {
        if !self.rebuilding.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tracing::warn!("redis holds no state for this exchange's epoch: rebuilding from the ledger");
        }
    }

    /// Redis holds this exchange's state again (the buyers a hold found missing were added).
    pub fn rebuilt(&self) {
        self.confirmed.store(true, std::sync::atomic::Ordering::Release);
        self.rebuilding.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Whether a rebuild is wanted (a hold found no state, or the epoch is gone).
    pub fn rebuild_wanted(&self) -> bool {
        self.rebuilding.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Rebuilds the exchange's state in Redis from the ledger (see the module doc). One node does it, under a
    /// lock; a node that finds the lock taken waits for the new epoch and adopts it. `Ok(true)` when this node
    /// rebuilt it.
    pub async fn rebuild(&self, roster: &Roster, ledger: &Ledger) -> Result<bool, Unreachable> {
        self.rebuilding.store(true, std::sync::atomic::Ordering::Release);
        let lock_key = format!("{}rebuild_lock", self.prefix);
        let mut lock = redis::cmd("SET");
        lock.arg(&lock_key).arg(&self.node).arg("NX").arg("PX").arg(30_000);
        let taken: Option<String> = self.call("rebuild_lock", &lock).await?;
        if taken.is_none() {
            // Another node rebuilds; the health loop adopts its epoch when it appears.
            return Err(Unreachable);
        }
        // Another node may have rebuilt it between our look and our lock: then its epoch is the one.
        let current: Option<String> = self.call("epoch", redis::cmd("GET").arg(self.epoch_key())).await?;
        let result = match current {
            Some(epoch) => {
                *self.epoch.write() = Some(epoch);
                self.rebuilding.store(false, std::sync::atomic::Ordering::Release);
                self.confirmed.store(true, std::sync::atomic::Ordering::Release);
                self.reconvert_recent().await;
                Ok(false)
            }
            None => self.rebuild_under_lock(roster, ledger).await.map(|()| true),
        };
        let _ = self.call::<Value>("rebuild_unlock", redis::cmd("DEL").arg(&lock_key)).await;
        result
    }

    async fn rebuild_under_lock(&self, roster: &Roster, ledger: &Ledger) -> Result<(), Unreachable> {
        ledger.sync().await.map_err(|_| Unreachable)?;
        let epoch = new_id("e_");
        let now = Utc::now();
        // The ledger's recent sales, read before the counts: a sale marked here is surely in the counts below
        // (a sale that lands in between is counted, not marked, and converted again: twice, the safe side).
        let recent = self.recent_sales(roster, ledger, now);
        let mut pipe = redis::pipe();
        for (buyer, lead_id) in &recent {
            let marker = self.buyer_keys(buyer).conversion(lead_id);
            pipe.cmd("SET").arg(marker).arg("1").arg("NX").arg("PX").arg(86_400_000).ignore();
        }
        for (buyer, state) in roster.config.buyers.iter().zip(&roster.states) {
            let keys = self.buyer_keys(&buyer.id);
            let snapshot = state.capacity.snapshot(buyer, now);
            let window = chrono::Duration::days(i64::from(buyer.dedupe_days));
            let contacts: Vec<(Contact, i64)> = snapshot
                .contacts
                .iter()
                .map(|(contact, at)| (*contact, (window - (now - *at)).num_milliseconds()))
                .filter(|(_, left)| *left > 0)
                .collect();
            let command = pipe.cmd("FCALL").arg("gavel_rebuild_buyer").arg(1 + contacts.len()).arg(keys.tally());
            for (contact, _) in &contacts {
                command.arg(keys.contact(contact));
            }
            command.arg(&epoch).arg(ledger.balance(&state.account).cents());
            for (key, sales, spent) in snapshot.periods {
                command.arg(key).arg(sales).arg(spent.cents());
            }
            for (_, left) in &contacts {
                command.arg(*left);
            }
        }
        pipe.cmd("SET").arg(self.epoch_key()).arg(&epoch);
        self.pipeline("rebuild", &pipe).await?;
        *self.epoch.write() = Some(epoch);
        self.rebuilding.store(false, std::sync::atomic::Ordering::Release);
        self.confirmed.store(true, std::sync::atomic::Ordering::Release);
        self.reconvert_recent().await;
        tracing::info!(buyers = roster.config.buyers.len(), "redis rebuilt from the ledger");
        Ok(())
    }

    /// The sales of the last two minutes in the ledger, by buyer: what the nodes may convert again.
    fn recent_sales(&self, roster: &Roster, ledger: &Ledger, now: DateTime<Utc>) -> Vec<(String, String)> {
        let since = now - chrono::Duration::from_std(RECENT_CONVERSIONS * 2).unwrap_or_default();
        ledger.read(|books| {
            let mut recent = Vec::new();
            for buyer in &roster.config.buyers {
                let Some(ids) = books.leads_by_buyer.get(&buyer.id) else { continue };
                for id in ids.iter().rev().take_while(|id| books.leads.get(*id).is_some_and(|l| l.sale.at >= since)) {
                    recent.push((buyer.id.clone(), id.clone()));
                }
            }
            recent
        })
    }

    /// Makes sure every buyer of a config has its state in Redis (a buyer added by a reload has none yet).
    pub async fn ensure_buyers(&self, roster: &Roster, ledger: &Ledger) -> Result<(), Unreachable> {
        let Some(epoch) = self.known_epoch() else { return Err(Unreachable) };
        let mut pipe = redis::pipe();
        for buyer in &roster.config.buyers {
            pipe.cmd("HGET").arg(self.buyer_keys(&buyer.id).tally()).arg("epoch");
        }
        let answers = self.pipeline("ensure_buyers", &pipe).await?;
        let missing: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| super::text(a).as_deref() != Some(&epoch))
            .map(|(i, _)| i)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut pipe = redis::pipe();
        for index in missing {
            let (buyer, state) = (&roster.config.buyers[index], &roster.states[index]);
            let snapshot = state.capacity.snapshot(buyer, now);
            let command =
                pipe.cmd("FCALL").arg("gavel_rebuild_buyer").arg(1).arg(self.buyer_keys(&buyer.id).tally()).arg(&epoch);
            command.arg(ledger.balance(&state.account).cents());
            for (key, sales, spent) in snapshot.periods {
                command.arg(key).arg(sales).arg(spent.cents());
            }
        }
        self.pipeline("ensure_buyers", &pipe).await.map(drop)
    }
}
