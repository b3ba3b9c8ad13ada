//! The auction: the deadline, the fan-out of pings, the return rates of the bids (for return-aware ranking),
//! the held bids and the post cascade.

pub mod cascade;
pub mod deadline;
pub mod fanout;
pub mod held;
pub mod rates;
