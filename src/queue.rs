//! A bounded queue between threads whose memory follows what it holds:
//! std's list channel (slots allocated in blocks of 31 as they fill, freed
//! as they drain) with a counter for the bound. `sync_channel` allocates and
//! writes every slot up front: the access log's and the refusal feed's
//! queues held 1.6 MB resident that way, queued or not.
//!
//! Used where a request thread hands work to a background thread and must
//! never wait: a full queue refuses at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};

/// The sending side; cheap to clone.
#[derive(Debug)]
pub struct BoundedSender<T> {
    tx: Sender<T>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl<T> Clone for BoundedSender<T> {
    fn clone(&self) -> Self {
        BoundedSender {
            tx: self.tx.clone(),
            queued: Arc::clone(&self.queued),
            capacity: self.capacity,
        }
    }
}

/// The receiving side.
#[derive(Debug)]
pub struct BoundedReceiver<T> {
    rx: Receiver<T>,
    queued: Arc<AtomicUsize>,
}

/// A queue that holds at most `capacity` items.
pub fn bounded<T>(capacity: usize) -> (BoundedSender<T>, BoundedReceiver<T>) {
    let (tx, rx) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let sender = BoundedSender {
        tx,
        queued: Arc::clone(&queued),
        capacity,
    };
    (sender, BoundedReceiver { rx, queued })
}

impl<T> BoundedSender<T> {
    /// Queues `item`, never waiting; gives it back when the queue is full or
    /// the receiver is gone.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(item);
        }
        self.tx.send(item).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            e.0
        })
    }

    /// Queues `item` even past the bound (a rare control message that must
    /// not be lost); gives it back only when the receiver is gone.
    pub fn send_anyway(&self, item: T) -> Result<(), T> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(item).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            e.0
        })
    }
}

impl<T> BoundedReceiver<T> {
    /// The oldest item, if any; never waits.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let item = self.rx.try_recv()?;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_until_drained_and_a_dropped_receiver_refuses() {
        let (tx, rx) = bounded(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.clone().try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(3));
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(tx.try_send(4), Ok(()));
        assert_eq!(tx.try_send(5), Err(5));
        assert_eq!((rx.try_recv(), rx.try_recv()), (Ok(2), Ok(4)));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(rx);
        assert_eq!(tx.try_send(6), Err(6));
    }
}
