//! Faults: a node killed, Redis emptied, PostgreSQL stopped — on private store instances.
