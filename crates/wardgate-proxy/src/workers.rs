//! Connection workers: single-threaded runtimes, one per core, each serving the
//! connections it is given for their whole life.
//!
//! Why not the multi-threaded runtime that accepts: a connection's task is woken
//! twice per message (the request, then the acknowledgement), and the work-stealing
//! scheduler answers many of those wake-ups by waking an idle worker on the other
//! core to come and look for work. On a virtual machine each such wake-up is an
//! inter-processor interrupt. Measured (BENCHMARKS.md, "Connection workers"), it was
//! about a fifth of wardgate's CPU per message at 4 connections. Pinning each
//! connection to one thread, as HAProxy's and Envoy's workers do, removes it; the
//! price is balance, kept by handing each new connection to the least busy worker.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The worker runtimes. Cloning shares them; they stop when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<Worker>,
    /// Where the search for the least busy worker starts, so ties rotate.
    next: AtomicUsize,
}

struct Worker {
    handle: Handle,
    /// Connections this worker serves now.
    live: Arc<AtomicUsize>,
    /// Dropping it ends the worker thread's `block_on`.
    _stop: oneshot::Sender<()>,
}

/// Counts a connection against its worker for as long as it lives.
pub(crate) struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    /// Starts `n` (at least one) worker threads.
    pub(crate) fn start(n: usize) -> io::Result<Workers> {
        let mut workers = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let (stop, stopped) = oneshot::channel::<()>();
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            // The runtime is built, run and dropped on its own thread: dropping one
            // inside the caller's async context would panic.
            std::thread::Builder::new()
                .name(format!("wardgate-conn-{i}"))
                .spawn(
                    move || match Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => {
                            let _ = tx.send(Ok(rt.handle().clone()));
                            // Returns when the sender is dropped; dropping the runtime then
                            // cancels whatever is left (the proxy has drained or aborted it).
                            let _ = rt.block_on(stopped);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    },
                )?;
            // Building a runtime takes well under a millisecond.
            let handle = rx
                .recv()
                .map_err(|_| io::Error::other("a connection worker ended while starting"))??;
            workers.push(Worker {
                handle,
                live: Arc::new(AtomicUsize::new(0)),
                _stop: stop,
            });
        }
        Ok(Workers {
            inner: Arc::new(Inner {
                workers,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// The runtime for a new connection (the one serving the fewest now) and the
    /// token that counts it there.
    pub(crate) fn pick(&self) -> (Handle, Busy) {
        let ws = &self.inner.workers;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut best = start % ws.len();
        for k in 1..ws.len() {
            let i = (start + k) % ws.len();
            if ws[i].live.load(Ordering::Relaxed) < ws[best].live.load(Ordering::Relaxed) {
                best = i;
            }
        }
        let w = &ws[best];
        w.live.fetch_add(1, Ordering::Relaxed);
        (w.handle.clone(), Busy(w.live.clone()))
    }

    #[cfg(test)]
    fn live(&self) -> Vec<usize> {
        self.inner
            .workers
            .iter()
            .map(|w| w.live.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn new_connections_go_to_the_least_busy_worker() {
        let w = Workers::start(3).unwrap();
        let a = w.pick();
        let b = w.pick();
        let c = w.pick();
        assert_eq!(w.live(), vec![1, 1, 1]);
        drop(b);
        assert_eq!(w.live().iter().sum::<usize>(), 2);
        // The worker that lost its connection is the only one below the others.
        let d = w.pick();
        assert_eq!(w.live(), vec![1, 1, 1]);
        let e = w.pick();
        assert_eq!(w.live().iter().sum::<usize>(), 4);
        assert_eq!(*w.live().iter().max().unwrap(), 2);
        drop((a, c, d, e));
        assert_eq!(w.live(), vec![0, 0, 0]);
    }

    #[test]
    fn a_task_runs_on_its_worker_thread_and_the_workers_stop_when_dropped() {
        let w = Workers::start(2).unwrap();
        let (h, busy) = w.pick();
        let (tx, rx) = std::sync::mpsc::channel();
        h.spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let _ = tx.send(std::thread::current().name().map(str::to_owned));
            drop(busy);
        });
        let name = rx.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert!(name.starts_with("wardgate-conn-"), "{name}");
        drop(w);
        // Once the runtime is gone, a task spawned on it is dropped unrun: its
        // sender goes with it.
        for _ in 0..100 {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            h.spawn(async move {
                let _ = tx.send(());
            });
            if rx.recv_timeout(Duration::from_millis(50)).is_err() {
                return;
            }
        }
        panic!("the worker runtime still runs tasks after the workers were dropped");
    }
}
