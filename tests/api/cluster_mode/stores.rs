//! Private PostgreSQL and Redis instances on free ports, for tests that stop, kill or empty a store.
