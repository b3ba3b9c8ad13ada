//! `GET /admin/report`: sales and returns over a period per campaign, seller (and its sources) and buyer,
//! computed from the ledger's transactions so every figure agrees with the balances to the cent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::books::{Books, TransactionKind};
use super::entry::Sale;
use crate::domain::money::Money;

/// The report of one period, `[from, to)`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub campaigns: Vec<Row>,
    pub sellers: Vec<SellerRow>,
    pub buyers: Vec<Row>,
}

/// One campaign's, seller's, source's or buyer's figures.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Row {
    pub id: Option<String>,
    /// Leads sold in the period.
    pub sold: u64,
    /// What buyers paid for them.
    pub gross: Money,
    /// What sellers were paid for them.
    pub payouts: Money,
    /// `gross − payouts`: the platform's revenue from them.
    pub margin: Money,
    /// Returns approved in the period: the money they moved in it.
    pub returns: Returns,
    /// `gross − returns.amount`: what buyers paid net of the credits they got back.
    pub net: Money,
    /// `payouts − returns.clawback`: what sellers earned net of the payouts taken back.
    pub net_payouts: Money,
    /// `net − net_payouts`: the platform's revenue net of returns.
    pub net_margin: Money,
    #[serde(skip)]
    returned_of_sold: u64,
}

/// Approved returns.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Returns {
    pub count: u64,
    /// Price credited back to buyers.
    pub amount: Money,
    /// Payout taken back from sellers.
    pub clawback: Money,
    /// How many for each reason.
    pub by_reason: BTreeMap<String, u64>,
}

/// A seller's figures, its return rate and the same for each `source` it sent.
#[derive(Debug, Serialize)]
pub struct SellerRow {
    #[serde(flatten)]
    pub row: Row,
    pub return_rate: f64,
    pub sources: Vec<SourceRow>,
}

/// The figures of one of a seller's sources (`id: null` for leads sent without one).
#[derive(Debug, Serialize)]
pub struct SourceRow {
    pub id: Option<String>,
    pub sold: u64,
    pub gross: Money,
    pub returns: Returns,
    pub return_rate: f64,
}

impl Row {
    fn sold(&mut self, sale: &Sale, returned_since: bool) {
        self.sold += 1;
        self.gross += sale.price;
        self.payouts += sale.payout;
        self.returned_of_sold += u64::from(returned_since);
    }

    fn returned(&mut self, sale: &Sale, reason: &str) {
        self.returns.count += 1;
        self.returns.amount += sale.price;
        self.returns.clawback += sale.payout;
        *self.returns.by_reason.entry(reason.to_owned()).or_default() += 1;
    }

    fn finish(mut self) -> Row {
        self.margin = self.gross - self.payouts;
        self.net = self.gross - self.returns.amount;
        self.net_payouts = self.payouts - self.returns.clawback;
        self.net_margin = self.net - self.net_payouts;
        self
    }

    /// The share of the period's sales that have an approved return by now (0 when none sold). A rate is
    /// a ratio, not money, so it may be a float.
    fn return_rate(&self) -> f64 {
        if self.sold == 0 {
            return 0.0;
        }
        self.returned_of_sold as f64 / self.sold as f64
    }
}

/// The report of `[from, to)` over these books.
pub fn report(books: &Books, from: DateTime<Utc>, to: DateTime<Utc>) -> Report {
    let mut campaigns: BTreeMap<&str, Row> = BTreeMap::new();
    let mut sellers: BTreeMap<&str, Row> = BTreeMap::new();
    let mut sources: BTreeMap<(&str, Option<&str>), Row> = BTreeMap::new();
    let mut buyers: BTreeMap<&str, Row> = BTreeMap::new();
    for transaction in books.transactions.iter().filter(|t| from <= t.at && t.at < to) {
        let Some(lead) = transaction.lead_id.as_deref().and_then(|id| books.lead(id)) else { continue };
        let sale = &lead.sale;
        let rows = [
            campaigns.entry(&sale.campaign).or_default(),
            sellers.entry(&sale.seller).or_default(),
            sources.entry((&sale.seller, sale.source.as_deref())).or_default(),
            buyers.entry(&sale.buyer).or_default(),
        ];
        match transaction.kind {
            TransactionKind::Sale => {
                let returned = lead
                    .return_id
                    .as_ref()
                    .is_some_and(|id| books.returns[id].status == crate::domain::returns::ReturnStatus::Approved);
                rows.into_iter().for_each(|row| row.sold(sale, returned));
            }
            TransactionKind::Return => {
                let reason = lead.return_id.as_ref().map(|id| books.returns[id].reason.as_str()).unwrap_or("other");
                rows.into_iter().for_each(|row| row.returned(sale, reason));
            }
            TransactionKind::Deposit | TransactionKind::Payout => {}
        }
    }
    let finish = |rows: BTreeMap<&str, Row>| -> Vec<Row> {
        rows.into_iter().map(|(id, row)| Row { id: Some(id.to_owned()), ..row }.finish()).collect()
    };
    let sellers = sellers
        .into_iter()
        .map(|(id, row)| {
            let return_rate = row.return_rate();
            let sources = sources
                .range((id, None)..)
                .take_while(|((seller, _), _)| *seller == id)
                .map(|((_, source), row)| SourceRow {
                    id: source.map(str::to_owned),
                    sold: row.sold,
                    gross: row.gross,
                    returns: row.returns.clone(),
                    return_rate: row.return_rate(),
                })
                .collect();
            SellerRow { row: Row { id: Some(id.to_owned()), ..row }.finish(), return_rate, sources }
        })
        .collect();
    Report { from, to, campaigns: finish(campaigns), sellers, buyers: finish(buyers) }
}
