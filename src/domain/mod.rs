//! The domain: leads, money, bids, ranking and clearing. Pure functions: no I/O, no clock read implicitly.

pub mod expected_value;
pub mod lead;
pub mod money;
pub mod outcomes;
pub mod ranking;
pub mod returns;
