//! `max_connections` (SPEC 2), changeable by a reload (SPEC 9): the
//! listeners stop accepting while the limit's permits are all held. A
//! larger limit adds permits at once; a smaller one withdraws the free
//! permits at once and the rest as the connections holding them end, so
//! open connections are never cut to meet it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The connection limit shared by every listener of every worker.
#[derive(Debug)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    /// The limit in force (written by reloads only).
    limit: Mutex<usize>,
    /// Permits still to be withdrawn when the connections holding them end.
    owed: AtomicUsize,
}

/// One accepted connection's place under the limit; handed back with
/// [`ConnectionLimit::release`].
#[derive(Debug)]
pub struct Place(OwnedSemaphorePermit);

impl ConnectionLimit {
    /// A limit of `limit` connections.
    pub fn new(limit: usize) -> ConnectionLimit {
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(limit)),
            limit: Mutex::new(limit),
            owed: AtomicUsize::new(0),
        }
    }

    /// Waits for a place; `None` once the limit is closed.
    pub async fn acquire(&self) -> Option<Place> {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .ok()
            .map(Place)
    }

    /// A place, if one is free now.
    pub fn try_acquire(&self) -> Option<Place> {
        Arc::clone(&self.permits)
            .try_acquire_owned()
            .ok()
            .map(Place)
    }

    /// Gives a place back when its connection ends, or withdraws it when a
    /// smaller limit is still owed places.
    pub fn release(&self, place: Place) {
        let owed = self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if owed.is_ok() {
            place.0.forget();
        }
    }

    /// Sets a new limit (a reload).
    pub fn set(&self, limit: usize) {
        let mut current = self.limit.lock().unwrap_or_else(PoisonError::into_inner);
        if limit > *current {
            // Places still owed are forgiven first.
            let more = limit - *current;
            let forgiven = self
                .owed
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    Some(n.saturating_sub(more))
                })
                .map_or(0, |before| before.min(more));
            self.permits.add_permits(more - forgiven);
        } else if limit < *current {
            let fewer = *current - limit;
            let withdrawn = self.permits.forget_permits(fewer);
            self.owed.fetch_add(fewer - withdrawn, Ordering::AcqRel);
        }
        *current = limit;
    }

    /// Places free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_larger_limit_frees_places_at_once_and_a_smaller_one_as_connections_end() {
        let limit = ConnectionLimit::new(2);
        let a = limit.try_acquire().expect("first place");
        let b = limit.try_acquire().expect("second place");
        assert!(limit.try_acquire().is_none(), "two of two taken");

        limit.set(3);
        let c = limit.try_acquire().expect("the third place, at once");
        assert!(limit.try_acquire().is_none());

        // Three open, limit one: nothing is cut; two places are owed.
        limit.set(1);
        limit.release(a);
        assert_eq!(limit.available(), 0, "withdrawn, not given back");
        limit.release(b);
        assert_eq!(limit.available(), 0, "withdrawn, not given back");
        limit.release(c);
        assert_eq!(limit.available(), 1, "the one place of the new limit");

        // Owed places are forgiven before new ones are added.
        let d = limit.try_acquire().expect("the place");
        limit.set(0);
        limit.set(2);
        assert_eq!(limit.available(), 1);
        limit.release(d);
        assert_eq!(limit.available(), 2);
    }
}
