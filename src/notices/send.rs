//! The drainer: takes notices off the queue and sends each once, at most [`MAX_IN_FLIGHT`] at a time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Notice, MAX_IN_FLIGHT};
use crate::delivery::BuyerClient;
use crate::metrics::Metrics;

/// Sends queued notices until the queue closes. The sends are tasks of this one: aborting it aborts them.
pub(super) async fn drain(mut queue: mpsc::Receiver<Notice>, client: BuyerClient, metrics: Arc<Metrics>) {
    let mut sending = JoinSet::new();
    loop {
        tokio::select! {
            // A free slot first: with every slot taken the queue fills up instead, and then drops.
            notice = queue.recv(), if sending.len() < MAX_IN_FLIGHT => match notice {
                Some(notice) => {
                    let (client, metrics) = (client.clone(), Arc::clone(&metrics));
                    sending.spawn(async move {
                        let outcome = send(&client, &notice).await;
                        metrics.inc("gavel_notices_total", &[("buyer", &notice.buyer.id), ("outcome", outcome)]);
                    });
                }
                None => break,
            },
            Some(_) = sending.join_next(), if !sending.is_empty() => {}
        }
    }
    while sending.join_next().await.is_some() {}
}

/// Sends one notice within its buyer's `timeout_ms`: `sent` on a 2xx answer, else `failed`. Never retried,
/// and never counted in the buyer's health: a notice is a courtesy, not part of the auction.
async fn send(client: &BuyerClient, notice: &Notice) -> &'static str {
    let Some(url) = &notice.buyer.notice_url else { return "failed" };
    let (auction, fate) = (&notice.auction, &notice.fate);
    let body = json!({
        "ping_id": auction.ping_id,
        "campaign": auction.campaign,
        "outcome": fate.outcome.as_str(),
        "bid": fate.bid,
        "price": fate.price,
        "min_to_win": fate.min_to_win,
        "test": auction.test,
    });
    let timeout = Duration::from_millis(notice.buyer.timeout_ms);
    match client.send(url, &notice.buyer.headers, &[], Bytes::from(body.to_string()), timeout).await {
        Ok(answer) if (200..300).contains(&answer.status) => "sent",
        Ok(answer) => {
            tracing::debug!(buyer = %notice.buyer.id, ping_id = %auction.ping_id, status = answer.status, "notice refused");
            "failed"
        }
        Err(error) => {
            tracing::debug!(buyer = %notice.buyer.id, ping_id = %auction.ping_id, kind = error.kind(), "notice not sent");
            "failed"
        }
    }
}
