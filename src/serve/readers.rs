//! The readers: a fixed pool of threads that do the API's blocking work (a
//! store read, a signature check), fed by a bounded queue. The async
//! threads hand a job over and await its answer; a job that finds the queue
//! full is refused at once (503 `busy`), never queued behind it.
//!
//! tokio's blocking pool did this before, one task per look-up: under load
//! it grew to some eighty threads, which contended on its lock and for the
//! two cores with the stages, and the look-ups' p99 reached a second and
//! more (docs/performance.md, "Online services"). A few threads at nice 0
//! keep the work bounded and the answers ahead of the stages.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job was not done.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// As many jobs as the queue holds are waiting or running.
    Busy,
    /// The job panicked, or the pool has stopped.
    Failed,
}

struct Queue {
    jobs: VecDeque<Job>,
    /// Jobs taken and not finished: waiting, or running on a reader (each
    /// holds a [`Place`]).
    in_flight: usize,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A job runs outside the lock, so a poisoned lock holds no half-done
        // change of the queue.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pool of reader threads; stopped (its queue drained) when dropped.
pub struct Readers {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    /// `threads` readers (at least one), named `NAME-N`, and room for
    /// `capacity` jobs at once (at least one), those running included.
    /// Each starts with the spawning thread's priority.
    pub fn start(name: &str, threads: usize, capacity: usize) -> std::io::Result<Readers> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                in_flight: 0,
                stopping: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        });
        let mut readers = Readers {
            shared,
            threads: Vec::new(),
        };
        for n in 0..threads.max(1) {
            let shared = readers.shared.clone();
            // On failure, `readers` is dropped: the threads started stop.
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || read_until_stopped(&shared))?;
            readers.threads.push(thread);
        }
        Ok(readers)
    }

    /// Hands `work` to a reader, refused at once when the queue is full.
    /// The answer comes through the returned future.
    pub fn submit<T, W>(
        &self,
        work: W,
    ) -> Result<impl Future<Output = Result<T, Refused>> + use<T, W>, Refused>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        {
            let mut queue = self.shared.lock();
            if queue.stopping {
                return Err(Refused::Failed);
            }
            if queue.in_flight >= self.shared.capacity {
                return Err(Refused::Busy);
            }
            queue.in_flight += 1;
            let place = Place(self.shared.clone());
            queue.jobs.push_back(Box::new(move || {
                // Bound in this order, a panic drops the place first.
                let (tx, place) = (tx, place);
                let answer = work();
                // The place is free before the answer is sent, so that a
                // caller who asks again at once finds it free; a panicking
                // job frees it as it unwinds, before its sender is dropped
                // unanswered.
                drop(place);
                // A receiver gone (the request timed out) wants no answer.
                let _ = tx.send(answer);
            }));
        }
        self.shared.ready.notify_one();
        // A job that panicked drops its sender unanswered.
        Ok(async move { rx.await.map_err(|_| Refused::Failed) })
    }

    /// [`Readers::submit`], awaited.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Refused> {
        self.submit(work)?.await
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.ready.notify_all();
        // The last holder of the pool may be a job on one of its readers:
        // that reader is not waited for (it stops once its job is done).
        let me = std::thread::current().id();
        for thread in self.threads.drain(..) {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }
}

/// One reader: the queue's jobs in turn until the pool stops and the queue
/// is empty.
fn read_until_stopped(shared: &Shared) {
    loop {
        let job = {
            let mut queue = shared.lock();
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.stopping {
                    return;
                }
                queue = shared.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        // A panicking job answers nothing (its caller sees `Failed`) and
        // leaves the reader running.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

/// A job's place in the queue's room, given back when dropped.
struct Place(Arc<Shared>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_job_is_answered_on_a_named_reader() {
        let readers = Readers::start("rd", 2, 4).unwrap();
        let name = block_on(readers.run(|| std::thread::current().name().map(str::to_string)));
        let name = name.unwrap().unwrap();
        assert!(name == "rd-0" || name == "rd-1", "{name}");
    }

    /// One reader held by a job, room for two: the second job waits, the
    /// third is refused at once; once the first is let go, both are
    /// answered and there is room again.
    #[test]
    fn a_full_queue_refuses_at_once_and_frees_as_jobs_finish() {
        let readers = Readers::start("rd", 1, 2).unwrap();
        let (release, held) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel();
        let first = readers
            .submit(move || {
                started_tx.send(()).unwrap();
                held.recv().unwrap();
                1
            })
            .unwrap();
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        let second = readers.submit(|| 2).unwrap();
        assert_eq!(readers.submit(|| 3).err(), Some(Refused::Busy));
        release.send(()).unwrap();
        assert_eq!(block_on(first), Ok(1));
        assert_eq!(block_on(second), Ok(2));
        assert_eq!(block_on(readers.run(|| 4)), Ok(4));
    }

    #[test]
    fn a_panicking_job_fails_alone_and_the_reader_goes_on() {
        let readers = Readers::start("rd", 1, 1).unwrap();
        let failed: Result<(), Refused> = block_on(readers.run(|| panic!("a job's bug")));
        assert_eq!(failed, Err(Refused::Failed));
        assert_eq!(block_on(readers.run(|| 5)), Ok(5));
    }

    /// A job whose caller stopped waiting still counts until it is done,
    /// then frees its place.
    #[test]
    fn an_abandoned_job_holds_its_place_until_done() {
        let readers = Readers::start("rd", 1, 1).unwrap();
        let (release, held) = mpsc::channel::<()>();
        drop(readers.submit(move || held.recv().unwrap()).unwrap());
        assert_eq!(readers.submit(|| ()).err(), Some(Refused::Busy));
        release.send(()).unwrap();
        let started = std::time::Instant::now();
        loop {
            match readers.submit(|| 6) {
                Ok(answer) => break assert_eq!(block_on(answer), Ok(6)),
                Err(refused) => assert_eq!(refused, Refused::Busy),
            }
            assert!(started.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn dropping_the_pool_finishes_the_queued_jobs() {
        let readers = Readers::start("rd", 1, 8).unwrap();
        let answers: Vec<_> = (0..8).map(|i| readers.submit(move || i).unwrap()).collect();
        drop(readers);
        let got: Vec<_> = answers.into_iter().map(block_on).collect();
        assert_eq!(got, (0..8).map(Ok).collect::<Vec<_>>());
    }
}
