//! A bounded queue between threads whose memory follows what it holds: a
//! `VecDeque` behind a mutex, which the receiver swaps for its own empty one
//! and drains without the lock. `sync_channel` allocates and writes every
//! slot up front (1.6 MB resident for the access log's and the refusal
//! feed's queues, queued or not); std's list channel allocates and zeroes a
//! block per 31 items (about 360 instructions per refused request).
//!
//! Used where a request thread hands work to a background thread and must
//! never wait: a full queue refuses at once. The lock is held for one push,
//! or for one swap by the receiver.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What a receiver's `try_recv` found instead of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Empty {
    /// Nothing queued now.
    Now,
    /// Nothing queued, and every sender is gone.
    ForGood,
}

#[derive(Debug)]
struct Shared<T> {
    items: Mutex<VecDeque<T>>,
    senders: AtomicUsize,
    receiving: AtomicBool,
}

/// The sending side; cheap to clone.
#[derive(Debug)]
pub struct BoundedSender<T> {
    shared: Arc<Shared<T>>,
    capacity: usize,
}

/// The receiving side.
#[derive(Debug)]
pub struct BoundedReceiver<T> {
    shared: Arc<Shared<T>>,
    batch: VecDeque<T>,
    /// What recent batches held, decaying by an eighth a swap: the
    /// capacity a drained batch keeps beyond [`KEPT`].
    recent: usize,
}

/// The capacity a drained batch always keeps.
const KEPT: usize = 256;

/// A queue that holds at most `capacity` items.
pub fn bounded<T>(capacity: usize) -> (BoundedSender<T>, BoundedReceiver<T>) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        senders: AtomicUsize::new(1),
        receiving: AtomicBool::new(true),
    });
    let sender = BoundedSender {
        shared: Arc::clone(&shared),
        capacity,
    };
    let receiver = BoundedReceiver {
        shared,
        batch: VecDeque::new(),
        recent: 0,
    };
    (sender, receiver)
}

impl<T> Clone for BoundedSender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        BoundedSender {
            shared: Arc::clone(&self.shared),
            capacity: self.capacity,
        }
    }
}

impl<T> Drop for BoundedSender<T> {
    fn drop(&mut self) {
        self.shared.senders.fetch_sub(1, Ordering::Release);
    }
}

impl<T> BoundedSender<T> {
    /// Queues `item`, never waiting; gives it back when the queue is full or
    /// the receiver is gone.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        self.push(item, self.capacity)
    }

    /// Queues `item` even past the bound (a rare control message that must
    /// not be lost); gives it back only when the receiver is gone.
    pub fn send_anyway(&self, item: T) -> Result<(), T> {
        self.push(item, usize::MAX)
    }

    fn push(&self, item: T, capacity: usize) -> Result<(), T> {
        if !self.shared.receiving.load(Ordering::Relaxed) {
            return Err(item);
        }
        let mut items = self
            .shared
            .items
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if items.len() >= capacity {
            return Err(item);
        }
        items.push_back(item);
        Ok(())
    }
}

impl<T> BoundedReceiver<T> {
    /// The oldest item, if any; never waits.
    pub fn try_recv(&mut self) -> Result<T, Empty> {
        if let Some(item) = self.batch.pop_front() {
            return Ok(item);
        }
        // Steady traffic keeps the room its batches need (given back and
        // grown again, it was page faults and `mremap`s at every drain): room
        // past four times what recent batches held goes, down to twice that,
        // so a flood's is given back within a few dozen swaps of its end.
        let needed = KEPT.max(self.recent);
        if self.batch.capacity() > 4 * needed {
            self.batch.shrink_to(2 * needed);
        }
        // Read before the swap: a sender that left did so after its last push.
        let gone = self.shared.senders.load(Ordering::Acquire) == 0;
        std::mem::swap(
            &mut self.batch,
            &mut self
                .shared
                .items
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.recent = self.batch.len().max(self.recent - self.recent / 8);
        match self.batch.pop_front() {
            Some(item) => Ok(item),
            None if gone => Err(Empty::ForGood),
            None => Err(Empty::Now),
        }
    }
}

impl<T> Drop for BoundedReceiver<T> {
    fn drop(&mut self) {
        self.shared.receiving.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_until_drained_and_a_dropped_receiver_refuses() {
        let (tx, mut rx) = bounded(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.clone().try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(3));
        assert_eq!(tx.send_anyway(4), Ok(()));
        assert_eq!(rx.try_recv(), Ok(1));
        // The rest moved to the receiver's batch: the queue has room again.
        assert_eq!(tx.try_send(5), Ok(()));
        let drained: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(drained, [2, 4, 5]);
        assert_eq!(rx.try_recv(), Err(Empty::Now));
        drop(rx);
        assert_eq!(tx.try_send(6), Err(6));
    }

    #[test]
    fn steady_batches_keep_their_room_and_a_flood_gives_it_back() {
        let (tx, mut rx) = bounded(100_000);
        let mut drain = |count: usize| {
            for i in 0..count {
                tx.try_send(i).expect("room");
            }
            let got = std::iter::from_fn(|| rx.try_recv().ok()).count();
            assert_eq!(got, count);
            // The buffer the next sends go to, and the receiver's.
            let queued = rx.shared.items.lock().expect("lock").capacity();
            (queued, rx.batch.capacity())
        };
        // Batches that vary: once grown, neither buffer is given back and
        // grown again.
        let sizes = [500, 700, 600].into_iter().cycle();
        for size in sizes.clone().take(6) {
            drain(size);
        }
        let settled = drain(600);
        for size in sizes.take(30) {
            assert_eq!(drain(size), settled, "{size}");
        }
        assert!(settled.0 >= 700, "{settled:?}");
        drain(50_000);
        let mut last = (0, 0);
        for _ in 0..60 {
            last = drain(10);
        }
        assert!(last.0 <= 4 * KEPT && last.1 <= 4 * KEPT, "{last:?}");
    }

    #[test]
    fn the_receiver_learns_when_every_sender_is_gone_after_the_last_item() {
        let (tx, mut rx) = bounded(8);
        let other = tx.clone();
        tx.try_send("a").expect("room");
        drop(tx);
        other.try_send("b").expect("room");
        drop(other);
        assert_eq!((rx.try_recv(), rx.try_recv()), (Ok("a"), Ok("b")));
        assert_eq!(rx.try_recv(), Err(Empty::ForGood));
    }
}
