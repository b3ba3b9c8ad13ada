//! What a node sends Redis in gathered rounds rather than one round trip each: expired holds to release
//! (`holds.rs`) and auction trails (`trails.rs`). The first item into an empty queue starts a wait; when it
//! ends, everything queued by then goes in one round trip.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::RedisCoordinator;

/// Items waiting for their round.
pub(super) struct Gathering<T> {
    waiting: Mutex<Vec<T>>,
    arrived: Arc<Notify>,
}

impl<T> Default for Gathering<T> {
    fn default() -> Self {
        Gathering { waiting: Mutex::new(Vec::new()), arrived: Arc::default() }
    }
}

impl<T> Gathering<T> {
    /// Queues one item; the first into an empty queue starts the round's wait.
    pub(super) fn push(&self, item: T) {
        let mut waiting = self.waiting.lock();
        waiting.push(item);
        if waiting.len() == 1 {
            self.arrived.notify_one();
        }
    }

    /// Everything queued, leaving the queue empty.
    pub(super) fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.waiting.lock())
    }
}

/// For as long as `redis` lives: after the first item into an empty `queue` (picked out of the coordinator),
/// waits `wait`, then hands `send` whatever is queued (nothing, if something else took it meanwhile).
pub(super) async fn send_in_rounds<T, Send, Sent>(
    redis: Weak<RedisCoordinator>,
    queue: fn(&RedisCoordinator) -> &Gathering<T>,
    wait: Duration,
    send: Send,
) where
    Send: Fn(Arc<RedisCoordinator>, Vec<T>) -> Sent,
    Sent: Future<Output = ()>,
{
    let arrived = match redis.upgrade() {
        Some(redis) => Arc::clone(&queue(&redis).arrived),
        None => return,
    };
    loop {
        arrived.notified().await;
        tokio::time::sleep(wait).await;
        let Some(redis) = redis.upgrade() else { return };
        let round = queue(&redis).take();
        if !round.is_empty() {
            send(redis, round).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_the_first_item_into_an_empty_queue_starts_a_round() {
        let queue = Gathering::default();
        let arrived = Arc::clone(&queue.arrived);
        queue.push(0);
        queue.push(1);
        // One permit for the first item into an empty queue; the second found it waiting.
        tokio::time::timeout(Duration::from_millis(1), arrived.notified()).await.expect("the first item notifies");
        let again = tokio::time::timeout(Duration::from_millis(1), arrived.notified()).await;
        assert!(again.is_err(), "the second item into a waiting queue does not");
        assert_eq!(queue.take(), vec![0, 1]);
        queue.push(2);
        tokio::time::timeout(Duration::from_millis(1), arrived.notified()).await.expect("an emptied queue starts over");
    }
}
