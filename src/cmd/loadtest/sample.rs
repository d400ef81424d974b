//! CPU and memory of this process from /proc (Linux): whole process, and
//! per thread by name (stage threads are `st-<stage>`, the harness's `lt-…`).

use std::collections::BTreeMap;

/// Clock ticks per second of /proc's utime and stime: USER_HZ, fixed at 100
/// in the kernel's ABI on every architecture Linux exports it for.
const TICKS_PER_S: f64 = 100.0;

/// utime + stime in seconds from a `stat` line (fields after the `comm`).
fn stat_cpu(stat: &str) -> Option<(String, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After ')': state is field 3 of the man page, utime 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_S))
}

/// CPU seconds of the whole process (every thread, live or ended).
pub fn process_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_cpu(&s))
        .map_or(0.0, |(_, cpu)| cpu)
}

/// Nanoseconds on CPU from a `schedstat` file (first field), when the
/// kernel keeps it: finer than `stat`'s 10 ms ticks.
fn schedstat_s(path: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// CPU seconds of the calling thread so far (the clock the stage workers
/// measure themselves with).
pub fn this_thread_cpu_s() -> f64 {
    clearing_pipeline::runtime::thread_cpu_ns() as f64 / 1e9
}

/// CPU seconds of the live threads, summed by thread name.
pub fn threads_cpu_s() -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        if let Some((name, cpu)) = std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|s| stat_cpu(&s))
        {
            let cpu = schedstat_s(&task.path().join("schedstat")).unwrap_or(cpu);
            *by_name.entry(name).or_insert(0.0) += cpu;
        }
    }
    by_name
}

/// Resident set size in bytes (VmRSS).
pub fn rss_bytes() -> u64 {
    status_kb("VmRSS:").map_or(0, |kb| kb * 1024)
}

/// The highest resident set size since the process started or since the
/// last [`reset_peak_rss`] (VmHWM): the true peak, which a sample taken
/// every so often can miss.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kb("VmHWM:").map(|kb| kb * 1024)
}

/// Lowers the high-water mark to the current RSS (Linux 4.0 and later,
/// `/proc/self/clear_refs`); false where the kernel refuses.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn load_avg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [0.0; 3];
    for (slot, field) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = field.parse().unwrap_or(0.0);
    }
    out
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Bytes of the files under a directory (a sled store, a log).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_name_and_cpu() {
        let line = "4242 (st-validation) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9 0";
        let (name, cpu) = stat_cpu(line).unwrap();
        assert_eq!(name, "st-validation");
        assert!((cpu - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_name_with_a_parenthesis_still_parses() {
        let line = "1 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 100 0 0 0";
        assert_eq!(stat_cpu(line).unwrap(), ("a (b) c".to_string(), 1.0));
    }

    #[test]
    fn this_process_has_cpu_and_memory() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(rss_bytes() > 0);
        assert!(process_cpu_s() >= 0.0);
        assert!(!threads_cpu_s().is_empty());
        assert!(this_thread_cpu_s() > 0.0);
    }
}
