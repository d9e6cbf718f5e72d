//! CPU time (user + system) of processes and of the calling thread, for
//! `cairn bench`'s CPU seconds per GiB. Linux only: elsewhere every reading
//! is `None`.

/// CPU seconds process `pid` has used so far, all its threads (live and
/// exited) counted: fields 14 and 15 of `/proc/<pid>/stat`, in clock ticks.
/// `None` if the process is gone or the file unreadable.
pub fn process_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, system) = parse_stat(&stat)?;
    Some((user + system) as f64 / ticks_per_second()?)
}

/// CPU seconds this process has used so far, all threads counted. Read
/// with `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, the same sum as
/// `/proc/self/stat` but in nanoseconds rather than 10 ms ticks.
pub fn self_seconds() -> Option<f64> {
    let now = cpu_time::ProcessTime::try_now().ok()?;
    Some(now.as_duration().as_secs_f64())
}

/// CPU seconds the calling thread has used so far: what a single-threaded
/// measurement costs, whatever the process's other threads do meanwhile.
pub fn thread_seconds() -> Option<f64> {
    let now = cpu_time::ThreadTime::try_now().ok()?;
    Some(now.as_duration().as_secs_f64())
}

/// `(utime, stime)` in clock ticks from a `/proc/<pid>/stat` line.
///
/// The second field is the command name in parentheses, and it may itself
/// contain spaces and parentheses (a process may name itself `a) (b`), so
/// the fields are counted from the *last* `)`: after it come field 3
/// (state) onwards, which makes utime and stime the 12th and 13th.
pub fn parse_stat(line: &str) -> Option<(u64, u64)> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, through nix's safe
/// wrapper: the workspace denies `unsafe`).
fn ticks_per_second() -> Option<f64> {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => Some(t as f64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_command_name_does_not_shift_the_fields() {
        // comm `a) (b) 1 2 3` — spaces, parentheses and digits inside.
        let line = "4242 (a) (b) 1 2 3) S 1 4242 4242 0 -1 4194560 1234 0 5 0 \
                    777 333 0 0 20 0 4 0 12345 98765432 2100 18446744073709551615";
        assert_eq!(parse_stat(line), Some((777, 333)));
        assert_eq!(parse_stat("12 (x) S 1 2"), None, "too few fields");
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn busy_work_raises_this_process_and_this_thread() {
        let pid = std::process::id();
        let (p0, s0, t0) = (
            process_seconds(pid).unwrap(),
            self_seconds().unwrap(),
            thread_seconds().unwrap(),
        );
        // Spin until the thread clock shows 50 ms (five 10 ms ticks of /proc).
        let mut x = 0u64;
        while thread_seconds().unwrap() - t0 < 0.05 {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
            }
        }
        assert!(self_seconds().unwrap() - s0 >= 0.05);
        assert!(
            process_seconds(pid).unwrap() - p0 >= 0.02,
            "ticks lag a little"
        );
        assert!(thread_seconds().unwrap() - t0 >= 0.05);
    }

    #[test]
    fn a_missing_process_is_none() {
        // pid_max is at most 2^22 on Linux.
        assert_eq!(process_seconds(u32::MAX), None);
    }
}
