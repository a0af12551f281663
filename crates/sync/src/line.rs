//! A first-come, first-served line of tasks waiting for a slot, kept under its owner's lock.

use std::collections::VecDeque;
use std::task::{Poll, Waker};

/// Tasks waiting for a slot, served in the order they joined.
///
/// A `Line` holds no lock of its own: it lives inside the state a [`Mutex`](crate::Mutex) guards,
/// beside the count of slots it hands out, so that freeing a slot and granting it to the first waiter
/// are one critical section. Every method that has a waker to wake returns it instead, to be woken once
/// the lock is released (the crate's one rule for locks).
///
/// A waiter holds a key from [`join`](Line::join) until [`poll`](Line::poll) answers it or it
/// [`leave`](Line::leave)s. Leaving is O(1) however long the line: the place stays, marked, and is
/// skipped when the line reaches it.
///
/// # Examples
///
/// ```
/// use bounded_sync::line::{Answer, Line};
/// use std::task::{Poll, Waker};
///
/// let mut line = Line::new();
/// let first = line.join(Waker::noop());
/// let second = line.join(Waker::noop());
/// assert!(line.grant_first().is_some()); // a slot came free: the first waiter gets it
/// assert_eq!(line.poll(first, Waker::noop()), Poll::Ready(Answer::Granted));
/// assert_eq!(line.poll(second, Waker::noop()), Poll::Pending);
/// ```
#[derive(Debug, Default)]
pub struct Line {
    /// Keys of places not yet reached, first in line first.
    order: VecDeque<usize>,
    places: Vec<Place>,
    free: Vec<usize>,
}

#[derive(Debug)]
enum Place {
    Free,
    Waiting(Waker),
    /// Its waiter left while in line; the key is freed when the line reaches it.
    Left,
    Granted,
    Refused,
}

/// What a waiter in line was told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A slot is the waiter's: it gives it back when done (or through [`Leave::Granted`]).
    Granted,
    /// No slot will come: the line was refused (the resource closed).
    Refused,
}

/// What a waiter that leaves before seeing its answer leaves behind.
#[derive(Debug)]
pub enum Leave {
    /// It was still in line: its waker, to drop once the lock is released.
    Waiting(Waker),
    /// It had been granted a slot it never saw: the caller must free that slot again.
    Granted,
    /// It had been refused, or had no place: nothing is owed.
    Nothing,
}

impl Line {
    /// An empty line.
    pub fn new() -> Self {
        Line::default()
    }

    /// Whether nobody is in line (a waiter that left is counted until the line reaches its place).
    /// While someone is, a free slot must go to the line, not to a newcomer.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Joins the back of the line; the key identifies the place until it is answered or left.
    pub fn join(&mut self, waker: &Waker) -> usize {
        let key = match self.free.pop() {
            Some(key) => key,
            None => {
                self.places.push(Place::Free);
                self.places.len() - 1
            }
        };
        self.places[key] = Place::Waiting(waker.clone());
        self.order.push_back(key);
        key
    }

    /// The answer for the waiter with `key`, which frees the key; or `Pending`, with `waker` stored to
    /// be woken when it comes.
    ///
    /// # Panics
    ///
    /// Panics if `key` was not given by [`join`](Line::join), or was already answered or left.
    pub fn poll(&mut self, key: usize, waker: &Waker) -> Poll<Answer> {
        let answer = match &mut self.places[key] {
            Place::Waiting(stored) => {
                if !stored.will_wake(waker) {
                    *stored = waker.clone();
                }
                return Poll::Pending;
            }
            Place::Granted => Answer::Granted,
            Place::Refused => Answer::Refused,
            Place::Free | Place::Left => panic!("a place in line polled after it was answered"),
        };
        self.free_place(key);
        Poll::Ready(answer)
    }

    /// Gives a slot that came free to the first waiter still in line, and returns its waker; `None`
    /// when nobody waits, and the slot stays with the caller.
    pub fn grant_first(&mut self) -> Option<Waker> {
        while let Some(key) = self.order.pop_front() {
            match std::mem::replace(&mut self.places[key], Place::Granted) {
                Place::Waiting(waker) => return Some(waker),
                _ => self.free_place(key),
            }
        }
        None
    }

    /// Refuses every waiter in line, pushing their wakers onto `wakers`.
    pub fn refuse_all(&mut self, wakers: &mut Vec<Waker>) {
        while let Some(key) = self.order.pop_front() {
            match std::mem::replace(&mut self.places[key], Place::Refused) {
                Place::Waiting(waker) => wakers.push(waker),
                _ => self.free_place(key),
            }
        }
    }

    /// The waiter with `key` gives up before it saw its answer.
    pub fn leave(&mut self, key: usize) -> Leave {
        match std::mem::replace(&mut self.places[key], Place::Left) {
            // Still in line: it stays there, marked, so that no other waiter reuses its key before
            // the line reaches it.
            Place::Waiting(waker) => Leave::Waiting(waker),
            Place::Granted => {
                self.free_place(key);
                Leave::Granted
            }
            _ => {
                self.free_place(key);
                Leave::Nothing
            }
        }
    }

    fn free_place(&mut self, key: usize) {
        self.places[key] = Place::Free;
        self.free.push(key);
    }
}

#[cfg(test)]
mod tests {
    use super::{Answer, Leave, Line};
    use std::task::{Poll, Waker};

    #[test]
    fn slots_go_to_waiters_in_the_order_they_joined() {
        let mut line = Line::new();
        let keys: Vec<usize> = (0..3).map(|_| line.join(Waker::noop())).collect();
        for (granted, &key) in keys.iter().enumerate() {
            assert!(line.grant_first().is_some());
            assert_eq!(line.poll(key, Waker::noop()), Poll::Ready(Answer::Granted));
            for &later in &keys[granted + 1..] {
                assert_eq!(line.poll(later, Waker::noop()), Poll::Pending);
            }
        }
        assert!(line.grant_first().is_none(), "nobody is left to take it");
        assert!(line.is_empty());
    }

    #[test]
    fn a_waiter_that_left_is_skipped_and_its_key_reused_only_after() {
        let mut line = Line::new();
        let first = line.join(Waker::noop());
        let second = line.join(Waker::noop());
        assert!(matches!(line.leave(first), Leave::Waiting(_)));
        assert!(
            !line.is_empty(),
            "the place stays until the line reaches it"
        );
        let third = line.join(Waker::noop());
        assert_ne!(
            third, first,
            "a key is not reused while its place is in line"
        );
        assert!(line.grant_first().is_some());
        assert_eq!(
            line.poll(second, Waker::noop()),
            Poll::Ready(Answer::Granted)
        );
        assert_eq!(line.poll(third, Waker::noop()), Poll::Pending);
    }

    #[test]
    fn a_grant_never_seen_is_handed_back_to_the_caller() {
        let mut line = Line::new();
        let key = line.join(Waker::noop());
        assert!(line.grant_first().is_some());
        assert!(matches!(line.leave(key), Leave::Granted));
        assert!(line.grant_first().is_none());
    }

    #[test]
    fn a_refusal_answers_everyone_in_line() {
        let mut line = Line::new();
        let first = line.join(Waker::noop());
        let second = line.join(Waker::noop());
        let mut wakers = Vec::new();
        line.refuse_all(&mut wakers);
        assert_eq!(wakers.len(), 2);
        assert_eq!(
            line.poll(first, Waker::noop()),
            Poll::Ready(Answer::Refused)
        );
        assert!(matches!(line.leave(second), Leave::Nothing));
        assert!(line.is_empty());
    }
}
