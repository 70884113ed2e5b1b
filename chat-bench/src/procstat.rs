//! Readings from `/proc`: CPU time and memory of a process (the server, or this tool).

use std::time::Duration;

/// CPU time and memory of one process at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident memory now, in KiB.
    pub rss_kib: u64,
    /// Peak resident memory so far, in KiB.
    pub hwm_kib: u64,
}

/// Reads `pid`'s CPU time and memory; `None` if the process is gone.
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after `comm`.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(Sample {
        cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()),
        rss_kib: kib("VmRSS")?,
        hwm_kib: kib("VmHWM")?,
    })
}

fn clock_ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// What each CPU of the machine did so far, from `/proc/stat`: to tell how much of a run's
/// time others took (other processes, or the hypervisor on a VM).
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Per CPU: time running anything (user, nice, system, irq, softirq).
    pub busy: Vec<Duration>,
    /// Per CPU: time the hypervisor ran someone else while this CPU had work.
    pub steal: Vec<Duration>,
}

/// Reads every CPU's busy and stolen time; `None` without `/proc/stat`.
pub fn machine() -> Option<Machine> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks = |t: u64| Duration::from_secs_f64(t as f64 / clock_ticks_per_second());
    let mut machine = Machine::default();
    for line in stat.lines() {
        // `cpu0 user nice system idle iowait irq softirq steal ...`; `cpu ` is the sum.
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let field = |i: usize| f.get(i).copied().unwrap_or(0);
        machine
            .busy
            .push(ticks(field(0) + field(1) + field(2) + field(5) + field(6)));
        machine.steal.push(ticks(field(7)));
    }
    Some(machine)
}
