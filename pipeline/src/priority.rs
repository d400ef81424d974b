//! Thread priorities: which work the scheduler runs first when the cores
//! are contended. std has no thread priority, so this is Linux's nice value
//! of one thread (`setpriority` on its thread id: Linux threads are tasks),
//! best effort: a refusal or another system leaves the priority as it was.
//!
//! The order, most favoured first: whatever answers a client (`clearing
//! serve`'s API threads and its readers, nice 0), the stages (nice 0 in
//! `clearing run`, `--stages-nice` in `clearing serve`), then the writers
//! behind them ([`BEHIND_THE_STAGES`] further: the sled persisters). A thread
//! starts with the nice value of the thread that spawned it, so the stages'
//! own helpers (prefetch, sled's threads) follow the thread that starts them.

/// How far behind the stages their background writers run (the persister,
/// state/mirror.rs): nice 10 leaves them the idle time and about a tenth of
/// a core the stages contend for.
pub const BEHIND_THE_STAGES: i32 = 10;

/// The least favoured nice value Linux has.
pub const LOWEST: i32 = 19;

/// Why a priority was not changed.
#[derive(Debug, thiserror::Error)]
pub enum PriorityError {
    #[error("nice {0} is outside 0..=19")]
    OutOfRange(i32),
    #[error("setpriority: {0}")]
    Refused(std::io::Error),
    #[error("thread priorities are not supported on this system")]
    Unsupported,
}

/// A nice value for work `behind` steps below `nice`, kept within Linux's
/// range (a thread already at 15 puts its writers at 19, not 25).
pub fn below(nice: i32, behind: i32) -> i32 {
    nice.saturating_add(behind).clamp(0, LOWEST)
}

/// The calling thread's nice value (`None` where it cannot be read).
pub fn current() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        // getpriority returns -1 both for nice -1 and for an error: errno
        // tells them apart, so it is cleared first.
        // SAFETY: gettid has no preconditions; getpriority on this thread's
        // id reads only its nice value; __errno_location points at this
        // thread's errno.
        unsafe {
            let tid = libc::gettid();
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            (nice != -1 || *libc::__errno_location() == 0).then_some(nice)
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Sets the calling thread's nice value (0..=19: only ever lowered from
/// the default, which needs no privilege). Threads it spawns afterwards
/// start with it.
pub fn set_current(nice: i32) -> Result<(), PriorityError> {
    if !(0..=LOWEST).contains(&nice) {
        return Err(PriorityError::OutOfRange(nice));
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions; setpriority on this thread's
        // id changes only this thread's nice value.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(PriorityError::Refused(std::io::Error::last_os_error()))
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(PriorityError::Unsupported)
    }
}

/// Puts the calling thread [`BEHIND_THE_STAGES`] below the thread that
/// spawned it (whose nice value it started with), best effort: a stage's
/// writer at 10 under `clearing run`, at `--stages-nice` + 10 under
/// `clearing serve`.
pub fn fall_behind_the_stages() {
    if let Some(nice) = current() {
        let _ = set_current(below(nice, BEHIND_THE_STAGES));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_within_linux_range() {
        assert_eq!(below(0, BEHIND_THE_STAGES), 10);
        assert_eq!(below(5, BEHIND_THE_STAGES), 15);
        assert_eq!(below(15, BEHIND_THE_STAGES), LOWEST);
        assert_eq!(below(-3, 1), 0);
    }

    #[test]
    fn out_of_range_is_refused_without_a_call() {
        assert!(matches!(
            set_current(-1),
            Err(PriorityError::OutOfRange(-1))
        ));
        assert!(matches!(
            set_current(20),
            Err(PriorityError::OutOfRange(20))
        ));
    }

    /// On a thread of its own (a nice value cannot be raised back without
    /// privilege): the thread's value changes, its spawner's does not, and
    /// a thread it spawns falls behind it by ten.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_threads_nice_is_its_own_and_its_writers_fall_behind_it() {
        let before = current().unwrap();
        // Below whatever this test runs at (it may run niced itself).
        let stages = below(before, 3);
        let (stage, writer) = std::thread::spawn(move || {
            set_current(stages).unwrap();
            let writer = std::thread::spawn(|| {
                fall_behind_the_stages();
                current()
            })
            .join()
            .unwrap();
            (current(), writer)
        })
        .join()
        .unwrap();
        assert_eq!(stage, Some(stages));
        assert_eq!(writer, Some(below(stages, BEHIND_THE_STAGES)));
        assert!(stages == LOWEST || writer > stage);
        assert_eq!(current(), Some(before));
    }
}
