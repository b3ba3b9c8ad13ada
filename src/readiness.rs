//! Whether this node can sell: what `GET /readyz` answers, and what a load balancer probes before it sends
//! traffic. Set by `app` at start and at shutdown.

use std::sync::atomic::{AtomicU8, Ordering};

/// A node's readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Replaying the journal, not yet serving.
    Starting,
    /// Serving: it can sell.
    Ready,
    /// Shutting down: finishing what is in flight, taking nothing new.
    Stopping,
}

impl Readiness {
    /// Why a node that is not ready is not, as `/readyz` words it; `None` when ready.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Readiness::Starting => Some("starting"),
            Readiness::Ready => None,
            Readiness::Stopping => Some("stopping"),
        }
    }
}

/// The readiness shared by the server and its start-up and shutdown.
#[derive(Debug)]
pub struct ReadinessFlag(AtomicU8);

impl Default for ReadinessFlag {
    fn default() -> Self {
        ReadinessFlag(AtomicU8::new(Readiness::Starting as u8))
    }
}

impl ReadinessFlag {
    /// The readiness now.
    pub fn get(&self) -> Readiness {
        match self.0.load(Ordering::Acquire) {
            x if x == Readiness::Ready as u8 => Readiness::Ready,
            x if x == Readiness::Stopping as u8 => Readiness::Stopping,
            _ => Readiness::Starting,
        }
    }

    /// Moves to `readiness`.
    pub fn set(&self, readiness: Readiness) {
        self.0.store(readiness as u8, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_starts_unready_and_says_why() {
        let flag = ReadinessFlag::default();
        assert_eq!((flag.get(), flag.get().reason()), (Readiness::Starting, Some("starting")));
        flag.set(Readiness::Ready);
        assert_eq!((flag.get(), flag.get().reason()), (Readiness::Ready, None));
        flag.set(Readiness::Stopping);
        assert_eq!(flag.get().reason(), Some("stopping"));
    }
}
