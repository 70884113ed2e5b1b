//! CPU time of a process from `/proc`, with std only.

use std::time::Duration;

/// User plus system CPU time `pid` has used so far; `None` if it is gone or `/proc` is
/// not Linux's.
pub fn used(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / ticks_per_second()))
}

/// Busy time of every CPU together so far (user, nice, system, irq, softirq), from
/// `/proc/stat`: on a shared machine, to tell how much of a run others took.
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    // The first line, `cpu  user nice system idle iowait irq softirq ...`, sums the CPUs.
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f
        .get(..7)?
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 3 && i != 4);
    let ticks: u64 = ticks.map(|(_, t)| t).sum();
    Some(Duration::from_secs_f64(ticks as f64 / ticks_per_second()))
}

/// The kernel's clock ticks per second (`sysconf(_SC_CLK_TCK)`), which std does not
/// expose: read from the auxiliary vector the kernel gave this process (`AT_CLKTCK`).
fn ticks_per_second() -> f64 {
    const AT_CLKTCK: usize = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        // 100 is USER_HZ on every Linux architecture in common use.
        return 100.0;
    };
    let word = |bytes: &[u8]| {
        let mut w = [0u8; WORD];
        w.copy_from_slice(bytes);
        usize::from_ne_bytes(w)
    };
    auxv.chunks_exact(2 * WORD)
        .map(|pair| (word(&pair[..WORD]), word(&pair[WORD..])))
        .find(|&(key, _)| key == AT_CLKTCK)
        .map_or(100.0, |(_, hz)| hz as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_its_own_cpu_time() {
        assert!(super::used(std::process::id()).is_some());
        assert!(super::ticks_per_second() >= 1.0);
        assert!(super::machine_busy().is_some());
    }
}
