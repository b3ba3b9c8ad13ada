//! Delivery: the outbound HTTP to buyers and the classification of every answer (API.md section 3).
//!
//! - [`client`] — the keep-alive client for all buyers (one per server worker); every exchange bounded in
//!   time and size. [`pool`] keeps its idle connections by origin; [`wire`] is HTTP/1.1 on one of them.
//! - [`ping`] — the ping body, sending it under the buyer's deadline, and reading the answer into
//!   bid / no-bid / timeout / error(kind); `bid_answer` reads the answer's body in one pass.
//! - [`post`] — the post body, sending it with one retry under an idempotency key, and reading the answer
//!   into accepted / rejected(reason) / failed(retryable?).
//!
//! The buyer adapter (field_map, static_fields, response paths) is applied here and nowhere else. Bodies are
//! serialized straight from the engine's lead, without a per-buyer copy of it.

mod adapter;
mod bid_answer;
pub mod client;
pub mod ping;
mod pool;
pub mod post;
#[cfg(test)]
mod test_support;
pub mod wire;

pub use client::{BuyerClient, RawAnswer, SendError, MAX_ANSWER_BYTES};
pub use ping::{classify_ping, ping_body, ping_buyer, ping_buyer_untimed, PingBodies, PingOutcome};
pub use post::{classify_post, post_body, post_lead, PostAttempt, PostOutcome};
