//! CPU time as the benchmarks count it (`examples/token_load.rs`, `examples/auth_cost.rs`): the
//! work a process or a thread did, which time stolen by the hypervisor or other processes on
//! this shared machine does not inflate the way wall time is.

/// CPU seconds this process has used so far (all its threads).
pub fn process_seconds() -> f64 {
    seconds(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU seconds the calling thread has used so far.
pub fn thread_seconds() -> f64 {
    seconds(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn seconds(clock: libc::clockid_t) -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}
