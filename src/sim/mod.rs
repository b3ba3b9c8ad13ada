//! Simulated buyer endpoints. (Being written.)
