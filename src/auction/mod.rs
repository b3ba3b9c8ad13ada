//! The auction: the deadline, the fan-out of pings, the held bids and the post cascade.

pub mod cascade;
pub mod deadline;
pub mod fanout;
pub mod held;
