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

use redis::{Cmd, Pipeline};

use super::gather::{send_in_rounds, Gathering};
use super::RedisCoordinator;

/// The longest a trail waits for a pipeline to ride along with.
pub(super) const TRAIL_WAIT: Duration = Duration::from_millis(20);

/// Trails (as their `SET` commands) waiting to be sent.
pub(super) type Trails = Gathering<Cmd>;

/// Moves every waiting trail into `pipe`, their replies ignored (a lost trail costs only its audit detail,
/// never an answer).
pub(super) fn ride_along(trails: &Trails, pipe: &mut Pipeline) {
    for command in trails.take() {
        pipe.add_command(command).ignore();
    }
}

/// Sends the trails no pipeline took within [`TRAIL_WAIT`], for as long as `redis` lives.
pub(super) async fn send_waiting_trails(redis: Weak<RedisCoordinator>) {
    let send = |redis: Arc<RedisCoordinator>, waiting: Vec<Cmd>| async move {
        let mut pipe = redis::pipe();
        for command in waiting {
            pipe.add_command(command).ignore();
        }
        let _ = redis.pipeline("publish_audit", &pipe).await;
    };
    send_in_rounds(redis, |redis| &redis.trails, TRAIL_WAIT, send).await;
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
        ride_along(&trails, &mut pipe);
        let sent: Vec<Vec<u8>> = pipe.cmd_iter().map(Cmd::get_packed_command).collect();
        assert_eq!(sent.len(), 4, "the hold and the three trails in one pipeline");
        assert_eq!(sent[3], trail(2).get_packed_command());
        let mut next = redis::pipe();
        ride_along(&trails, &mut next);
        assert_eq!(next.cmd_iter().count(), 0, "a trail rides once");
        assert!(trails.take().is_empty());
    }
}
