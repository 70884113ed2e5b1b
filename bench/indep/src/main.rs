//! `indep-load`: a second load generator for chat-server's rooms scenario, written to
//! check `chat-bench`'s figures without sharing its code, its runtime or its protocol
//! crate (std only: no tokio, no chat-proto, no chat-bench).
//!
//! Design:
//! - N clients `i0..i<N>` log in over blocking `std::net::TcpStream`s, at most 128 logins
//!   under way at once; client `i` joins `#r<i % R>`. Each client has one OS thread that
//!   only reads: 64 KiB at a time, lines found eight bytes at a time, so a thread that was
//!   not scheduled for a while catches up in few system calls.
//! - Clients `0..S` also send, from a thread of their own on a clone of the socket:
//!   `#r<room>: <seq> xxx...` (`--payload` bytes of text), `seq` from 0 to M - 1.
//! - Window: a message counts as acknowledged once every other member of the room has
//!   received it, as the protocol's room semantics say they all must; a sender has at
//!   most W unacknowledged messages. Each sender has W counters, message `seq` counted
//!   in `seq % W`; the reader whose delivery completes a message wakes that sender
//!   (`Thread::unpark`, at most once per read). A sender reuses a counter only once its
//!   previous message is complete, so no reader can still be counting into it. Bounding
//!   by every recipient, not one designated one, also keeps every client's queue in the
//!   server bounded, so no slow reader is cut off for its send queue.
//! - Every delivery is checked: per (receiver, sender), sequence numbers must arrive in
//!   order, without gap or duplicate (a gap followed by the missing message is counted as
//!   reordered); the room must be the receiver's own, the text as long as sent, and the
//!   room's ids strictly increasing. Presence and other lines are skipped.
//! - Reported: one JSON line on stdout (deliveries expected = Σ over messages of room
//!   members − 1; lost, duplicated, reordered, wall seconds from the first send to the
//!   last owed delivery, deliveries/s, the server's CPU seconds over that time from
//!   `/proc/<pid>/stat` with `--server-pid`, this tool's own, and what others used of
//!   the machine meanwhile). Exit status 1 if
//!   anything was lost, duplicated, reordered or unexpected; 2 on a usage error or a
//!   failure before the load (a refused login, a timeout while joining).
//!
//! A thousand clients need over a thousand file descriptors on each side: run
//! `ulimit -n 65536` (or the hard limit) in the shell first; std cannot raise it.

mod check;
mod cpu;
mod load;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use load::{Outcome, Plan};

const USAGE: &str = "\
usage: indep-load [--addr 127.0.0.1:8080] [--clients 1000] [--rooms 10] [--senders 50]
                  [--messages 3000] [--window 64] [--payload 32] [--server-pid PID]
                  [--timeout 120]

N clients i0..iN join #r(i % R); clients 0..S each send M messages to their room, at
most W of them not yet delivered to every other member. Every delivery is checked.
One JSON line on stdout; exit 1 if anything was lost, duplicated or reordered.
Run `ulimit -n 65536` first: each client is a file descriptor here and in the server.";

fn main() -> ExitCode {
    let plan = match parse(std::env::args().skip(1)) {
        Ok(Some(plan)) => plan,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("indep-load: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = match load::run(&plan) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("indep-load: {e}");
            return ExitCode::from(2);
        }
    };
    let lost = outcome.expected.saturating_sub(outcome.delivered);
    println!("{}", json(&plan, &outcome));
    eprintln!(
        "indep-load: {}/{} delivered in {:.2} s = {:.0}/s; lost {lost}, duplicated {}, \
         reordered {}, unexpected {}, ids not increasing {}",
        outcome.delivered,
        outcome.expected,
        outcome.seconds,
        rate(&outcome),
        outcome.duplicated,
        outcome.reordered,
        outcome.unexpected,
        outcome.ids_not_increasing,
    );
    if let Some(problem) = &outcome.first_problem {
        eprintln!("indep-load: first problem: {problem}");
    }
    let failed = lost > 0
        || outcome.duplicated > 0
        || outcome.reordered > 0
        || outcome.unexpected > 0
        || outcome.ids_not_increasing > 0;
    // The client threads are blocked in reads; leaving main ends them with the process.
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The plan from the command line; `None` for `--help`.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Plan>, String> {
    let mut plan = Plan {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        clients: 1000,
        rooms: 10,
        senders: 50,
        messages: 3000,
        window: 64,
        payload: 32,
        server_pid: None,
        timeout: Duration::from_secs(120),
    };
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), value.to_owned()),
            None => {
                let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
                (arg, value)
            }
        };
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => plan.addr = value.parse().map_err(|e| bad(&e))?,
            "--clients" => plan.clients = value.parse().map_err(|e| bad(&e))?,
            "--rooms" => plan.rooms = value.parse().map_err(|e| bad(&e))?,
            "--senders" => plan.senders = value.parse().map_err(|e| bad(&e))?,
            "--messages" => plan.messages = value.parse().map_err(|e| bad(&e))?,
            "--window" => plan.window = value.parse().map_err(|e| bad(&e))?,
            "--payload" => plan.payload = value.parse().map_err(|e| bad(&e))?,
            "--server-pid" => plan.server_pid = Some(value.parse().map_err(|e| bad(&e))?),
            "--timeout" => {
                let secs: f64 = value.parse().map_err(|e| bad(&e))?;
                plan.timeout = Duration::try_from_secs_f64(secs).map_err(|e| bad(&e))?;
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    plan.check()?;
    Ok(Some(plan))
}

fn rate(outcome: &Outcome) -> f64 {
    if outcome.seconds > 0.0 {
        outcome.delivered as f64 / outcome.seconds
    } else {
        0.0
    }
}

/// The record, formatted by hand: every value is a number, a boolean, null or a string
/// this tool made, except the problem text, which is escaped.
fn json(plan: &Plan, o: &Outcome) -> String {
    let cpu = |used: Option<Duration>| match used {
        Some(used) => format!(
            "{{\"cpu_seconds\":{:.3},\"cpu_percent\":{:.0}}}",
            used.as_secs_f64(),
            if o.seconds > 0.0 {
                100.0 * used.as_secs_f64() / o.seconds
            } else {
                0.0
            }
        ),
        None => "null".to_owned(),
    };
    let problem = o
        .first_problem
        .as_deref()
        .map_or("null".to_owned(), |p| format!("\"{}\"", escape(p)));
    format!(
        "{{\"tool\":\"indep-load\",\"addr\":\"{addr}\",\"clients\":{clients},\"rooms\":{rooms},\
         \"senders\":{senders},\"messages\":{messages},\"window\":{window},\"payload\":{payload},\
         \"expected\":{expected},\"delivered\":{delivered},\"lost\":{lost},\
         \"duplicated\":{duplicated},\"reordered\":{reordered},\"unexpected\":{unexpected},\
         \"ids_not_increasing\":{ids},\"disconnected\":{disconnected},\"timed_out\":{timed_out},\
         \"seconds\":{seconds:.4},\"deliveries_per_sec\":{rate:.0},\"server\":{server},\
         \"load\":{load},\"others_cpu_seconds\":{others},\"first_problem\":{problem}}}",
        addr = plan.addr,
        clients = plan.clients,
        rooms = plan.rooms,
        senders = plan.senders,
        messages = plan.messages,
        window = plan.window,
        payload = plan.payload,
        expected = o.expected,
        delivered = o.delivered,
        lost = o.expected.saturating_sub(o.delivered),
        duplicated = o.duplicated,
        reordered = o.reordered,
        unexpected = o.unexpected,
        ids = o.ids_not_increasing,
        disconnected = o.disconnected,
        timed_out = o.timed_out,
        seconds = o.seconds,
        rate = rate(o),
        server = cpu(o.server_cpu),
        load = cpu(o.own_cpu),
        others = o
            .others_cpu
            .map_or("null".to_owned(), |d| format!("{:.2}", d.as_secs_f64())),
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_json_needs_escaped() {
        assert_eq!(escape("a \"b\" \\ \n"), "a \\\"b\\\" \\\\ \\u000a");
    }

    #[test]
    fn parses_options_both_ways() {
        let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let plan = parse(args("--clients=20 --rooms 2 --senders 4 --timeout 1.5").into_iter())
            .ok()
            .flatten();
        let plan = plan
            .as_ref()
            .map(|p| (p.clients, p.rooms, p.senders, p.timeout));
        assert_eq!(plan, Some((20, 2, 4, Duration::from_millis(1500))));
        assert!(parse(args("--clients 3 --rooms 2").into_iter()).is_err());
        assert!(parse(args("--bogus 1").into_iter()).is_err());
        assert!(parse(args("--clients").into_iter()).is_err());
    }
}
