//! Cluster mode: this node's local view of what every node records. Every entry any node commits reaches
//! this node's books through the ledger's catch-up, and through [`ReplicaView`] its buyers' local state: sales
//! count in the local caps, budgets and duplicate history the gates read, and pauses and resumes through the
//! API take effect here (the ledger's tail runs every 200 ms, so within a second of the answer on the node
//! that made them). The exact counts live in Redis; the money the Redis balance mirror must learn of (deposits,
//! approved returns) is sent there by the node that committed it.

use std::sync::{Arc, Weak};

use super::Engine;
use crate::dedupe::{decode_contact, Contact};
use crate::domain::returns::ReturnStatus;
use crate::ledger::{Entry, LedgerObserver};

/// The ledger's observer in cluster mode.
pub(super) struct ReplicaView {
    engine: Weak<Engine>,
}

impl Engine {
    /// Cluster mode: makes this engine's local view follow every entry of the shared ledger.
    pub fn attach_replica(self: &Arc<Self>) {
        if self.coordinator.is_clustered() {
            self.ledger.set_observer(Arc::new(ReplicaView { engine: Arc::downgrade(self) }));
        }
    }

    fn follow(&self, entry: &Entry) {
        let roster = self.roster();
        match entry {
            Entry::Sale { sale, .. } => {
                if let Some((buyer, state)) = roster.buyer(&sale.buyer) {
                    let contacts: Vec<Contact> = sale.contact_digests().filter_map(decode_contact).collect();
                    state.capacity.record_sale(buyer, sale.price, sale.at, &contacts);
                }
            }
            Entry::Standing { buyer, paused_by, .. } => {
                if let Some((_, state)) = roster.buyer(buyer) {
                    state.restore_api_standing(*paused_by);
                }
            }
            Entry::Deposit { .. }
            | Entry::Payout { .. }
            | Entry::Return { .. }
            | Entry::Decision { .. }
            | Entry::Terms { .. } => {}
        }
    }

    /// The books were replaced whole: the local view starts over from them.
    fn rebuild_local_view(&self) {
        for state in &self.roster().states {
            state.capacity.reset();
        }
        self.restore_from_books();
    }

    /// Money this node committed that the Redis balance mirror must learn of.
    fn mirror_credits(&self, entries: &[Entry]) {
        let Some(redis) = self.coordinator.redis() else { return };
        let mut credits = Vec::new();
        for entry in entries {
            match entry {
                Entry::Deposit { transaction_id, deposit } => {
                    credits.push((deposit.buyer.clone(), transaction_id.clone(), deposit.amount));
                }
                Entry::Return { filed } if filed.status == ReturnStatus::Approved => {
                    if let Some(transaction_id) = &filed.transaction_id {
                        credits.push((filed.buyer.clone(), transaction_id.clone(), filed.credit));
                    }
                }
                Entry::Decision { decision } if decision.approve => {
                    let credit = self.ledger.read(|books| {
                        let filed = books.returns.get(&decision.return_id)?;
                        Some((filed.buyer.clone(), books.leads.get(&filed.lead_id)?.sale.price))
                    });
                    if let (Some((buyer, price)), Some(transaction_id)) = (credit, &decision.transaction_id) {
                        credits.push((buyer, transaction_id.clone(), price));
                    }
                }
                _ => {}
            }
        }
        if credits.is_empty() {
            return;
        }
        let redis = Arc::clone(redis);
        tokio::spawn(async move {
            for (buyer, transaction_id, amount) in credits {
                redis.credit(&buyer, &transaction_id, amount).await;
            }
        });
    }
}

impl LedgerObserver for ReplicaView {
    fn entry(&self, entry: &Entry) {
        if let Some(engine) = self.engine.upgrade() {
            engine.follow(entry);
        }
    }

    fn rebuilt(&self) {
        if let Some(engine) = self.engine.upgrade() {
            engine.rebuild_local_view();
        }
    }

    fn committed(&self, entries: &[Entry]) {
        if let Some(engine) = self.engine.upgrade() {
            engine.mirror_credits(entries);
        }
    }
}
