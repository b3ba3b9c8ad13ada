//! Auction trails on their way to Redis. A trail is written just after its auction's answer; sent on its own
//! it would cost a round trip per auction — a write, a wake-up of Redis and one of this node to read the reply
//! — on the same two vCPUs that the next auction's hold is waiting for. So a trail waits here for the next
//! pipeline this node sends for an auction (its holds and held ping) and rides along with it, or, if none
//! comes within [`TRAIL_WAIT`], goes in one pipeline with whatever else waited.
//!
//! A reader on another node that finds the held ping but not yet its trail waits up to 100 ms for it
//! (`Engine::audit_trail`), well past [`TRAIL_WAIT`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Cmd, Pipeline};
use tokio::sync::Notify;

use super::RedisCoordinator;

/// The longest a trail waits for a pipeline to ride along with.
pub(super) const TRAIL_WAIT: Duration = Duration::from_millis(20);

/// Trails (as their `SET` commands) waiting to be sent.
#[derive(Default)]
pub(super) struct Trails {
    waiting: Mutex<Vec<Cmd>>,
    arrived: Arc<Notify>,
}

impl Trails {
    /// Queues one trail's command; the first into an empty queue starts the [`TRAIL_WAIT`] countdown.
    pub(super) fn push(&self, command: Cmd) {
        let mut waiting = self.waiting.lock();
        waiting.push(command);
        if waiting.len() == 1 {
            self.arrived.notify_one();
        }
    }

    /// Moves every waiting trail into `pipe`, their replies ignored (a lost trail costs only its audit
    /// detail, never an answer).
    pub(super) fn ride_along(&self, pipe: &mut Pipeline) {
        for command in std::mem::take(&mut *self.waiting.lock()) {
            pipe.add_command(command).ignore();
        }
    }

    fn take(&self) -> Vec<Cmd> {
        std::mem::take(&mut *self.waiting.lock())
    }
}

/// Sends the trails no pipeline took within [`TRAIL_WAIT`], for as long as `redis` lives.
pub(super) async fn send_waiting_trails(redis: Weak<RedisCoordinator>) {
    let arrived = match redis.upgrade() {
        Some(redis) => Arc::clone(&redis.trails.arrived),
        None => return,
    };
    loop {
        arrived.notified().await;
        tokio::time::sleep(TRAIL_WAIT).await;
        let Some(redis) = redis.upgrade() else { return };
        let waiting = redis.trails.take();
        if !waiting.is_empty() {
            let mut pipe = redis::pipe();
            for command in waiting {
                pipe.add_command(command).ignore();
            }
            let _ = redis.pipeline("publish_audit", &pipe).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(n: usize) -> Cmd {
        let mut command = redis::cmd("SET");
        command.arg(format!("audit:{n}")).arg("{}");
        command
    }

    #[test]
    fn waiting_trails_ride_along_with_the_next_pipeline_once() {
        let trails = Trails::default();
        for n in 0..3 {
            trails.push(trail(n));
        }
        let mut pipe = redis::pipe();
        pipe.cmd("FCALL").arg("gavel_hold");
        trails.ride_along(&mut pipe);
        let sent: Vec<Vec<u8>> = pipe.cmd_iter().map(Cmd::get_packed_command).collect();
        assert_eq!(sent.len(), 4, "the hold and the three trails in one pipeline");
        assert_eq!(sent[3], trail(2).get_packed_command());
        let mut next = redis::pipe();
        trails.ride_along(&mut next);
        assert_eq!(next.cmd_iter().count(), 0, "a trail rides once");
        assert!(trails.take().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trail_no_pipeline_takes_is_due_after_the_wait_and_only_the_first_starts_it() {
        let trails = Trails::default();
        let arrived = Arc::clone(&trails.arrived);
        trails.push(trail(0));
        trails.push(trail(1));
        // One permit for the first trail into an empty queue; the second found it waiting.
        tokio::time::timeout(Duration::from_millis(1), arrived.notified()).await.expect("the first trail notifies");
        let again = tokio::time::timeout(Duration::from_millis(1), arrived.notified()).await;
        assert!(again.is_err(), "the second trail into a waiting queue does not");
        assert_eq!(trails.take().len(), 2);
        trails.push(trail(2));
        tokio::time::timeout(Duration::from_millis(1), arrived.notified()).await.expect("an emptied queue starts over");
    }
}
