//! Shutdown as each inline connection polls it: lock-free on the message path.
//!
//! A `tokio::sync::watch` receiver waits through a `Notify`, whose waiter takes
//! the channel's waiter-list lock on every poll; every connection of both
//! workers polls its shutdown future about twice per message (each time its
//! `select!` finds nothing ready), so they all contended for one lock (1.3% of
//! the gateway's samples and contended-mutex waits at 64 connections). Here each
//! connection registers its own [`AtomicWaker`] once; a poll is two atomic
//! operations, and only [`Bell::ring`] and a connection's start and end lock the
//! list.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

/// Rung once, when the gateway stops; every [`Listener`], past or future, then
/// resolves.
#[derive(Default)]
pub(crate) struct Bell {
    rung: AtomicBool,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
}

impl Bell {
    /// Wakes every listener; later listeners resolve at their first poll.
    pub(crate) fn ring(&self) {
        self.rung.store(true, Ordering::SeqCst);
        let waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        for w in waiting.values() {
            w.wake();
        }
    }

    /// A future that resolves once the bell has rung.
    pub(crate) fn listen(self: &Arc<Self>) -> Listener {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, waker.clone());
        Listener {
            bell: self.clone(),
            id,
            waker,
        }
    }

    /// How many listeners are registered (for tests: none outlive their connection).
    #[cfg(test)]
    fn listeners(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }
}

/// One connection's wait for the bell; unregisters itself when dropped.
pub(crate) struct Listener {
    bell: Arc<Bell>,
    id: u64,
    waker: Arc<AtomicWaker>,
}

impl Future for Listener {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Register before reading the flag: a ring between the two wakes the
        // waker just registered, so no ring is missed.
        self.waker.register(cx.waker());
        if self.bell.rung.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.bell
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ring_wakes_waiting_listeners_and_resolves_later_ones() {
        let bell = Arc::new(Bell::default());
        let waiting: Vec<_> = (0..8)
            .map(|_| tokio::spawn(bell.listen()))
            .collect::<Vec<_>>();
        tokio::task::yield_now().await;
        assert_eq!(bell.listeners(), 8);
        bell.ring();
        for w in waiting {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .expect("a listener waiting before the ring resolves")
                .unwrap();
        }
        assert_eq!(
            bell.listeners(),
            0,
            "resolved listeners unregister when dropped"
        );
        tokio::time::timeout(std::time::Duration::from_secs(5), bell.listen())
            .await
            .expect("a listener made after the ring resolves at once");
    }

    #[tokio::test]
    async fn an_unrung_bell_keeps_listeners_pending_and_a_dropped_one_unregisters() {
        let bell = Arc::new(Bell::default());
        let mut l = bell.listen();
        let polled = futures_poll_once(&mut l).await;
        assert!(polled.is_pending());
        assert_eq!(bell.listeners(), 1);
        drop(l);
        assert_eq!(bell.listeners(), 0);
    }

    async fn futures_poll_once(l: &mut Listener) -> Poll<()> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *l).poll(cx))).await
    }
}
