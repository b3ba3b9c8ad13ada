//! Exact across nodes: caps, budgets, balances and concurrency however the load is spread.
