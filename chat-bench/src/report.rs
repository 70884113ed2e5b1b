//! Results as one JSON line (stdout, for scripts) and a human summary (stderr).

use std::time::Duration;

use serde_json::{Value, json};

use crate::load::{Fanout, Outcome, Spec};
use crate::procstat::Machine;

/// The JSON record of a load run against `target` (`server` or `raw`).
pub fn load_json(target: &str, spec: &Spec, outcome: &Outcome) -> Value {
    let secs = outcome.elapsed.as_secs_f64();
    let percentile = |q: f64| outcome.latency.value_at_quantile(q);
    let cpu = |before: &crate::procstat::Sample, after: &crate::procstat::Sample| {
        let used = (after.cpu.saturating_sub(before.cpu)).as_secs_f64();
        json!({ "cpu_seconds": used, "cpu_percent": (100.0 * used / secs).round(), "peak_rss_kib": after.hwm_kib })
    };
    json!({
        "scenario": "run",
        "target": target,
        "clients": spec.clients,
        "senders": spec.senders,
        "fanout": match spec.fanout {
            Fanout::Others(k) => json!(k),
            Fanout::Broadcast => json!("*"),
            Fanout::Rooms(r) => json!(format!("{r} rooms")),
        },
        "messages": spec.messages,
        "window": spec.window,
        "rate": spec.rate,
        "payload": spec.payload,
        "irc_share": spec.irc_share,
        "expected": outcome.expected,
        "delivered": outcome.delivered,
        "lost": outcome.lost,
        "duplicated": outcome.duplicated,
        "reordered": outcome.reordered,
        "seconds": secs,
        "deliveries_per_sec": (outcome.delivered as f64 / secs).round(),
        "latency_us": {
            "p50": percentile(0.5),
            "p90": percentile(0.9),
            "p99": percentile(0.99),
            "max": outcome.latency.max(),
        },
        "server": outcome.server.as_ref().map(|(b, a)| cpu(b, a)),
        "attackers": spec.attackers,
        "governed": spec.governed,
        "attack": outcome.attack.map(|(wrong, throttled)| json!({ "wrong_password": wrong, "throttled": throttled })),
        "bench": cpu(&outcome.bench.0, &outcome.bench.1),
        "machine": outcome.machine.as_ref().map(|(before, after)| machine(outcome, before, after)),
    })
}

/// Every CPU's busy and stolen seconds over the run, and what others used: the busy time
/// that was neither the server's nor this tool's.
fn machine(outcome: &Outcome, before: &Machine, after: &Machine) -> Value {
    let delta = |a: &[Duration], b: &[Duration]| -> Vec<f64> {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a.saturating_sub(*b).as_secs_f64() * 100.0).round() / 100.0)
            .collect()
    };
    let busy = delta(&after.busy, &before.busy);
    let ours = outcome
        .server
        .as_ref()
        .map_or(Duration::ZERO, |(b, a)| a.cpu.saturating_sub(b.cpu))
        + outcome.bench.1.cpu.saturating_sub(outcome.bench.0.cpu);
    let others = busy.iter().sum::<f64>() - ours.as_secs_f64();
    json!({
        "busy_cpu_seconds": busy,
        "steal_seconds": delta(&after.steal, &before.steal),
        "others_cpu_seconds": (others.max(0.0) * 100.0).round() / 100.0,
    })
}

/// A few readable lines from a load record.
pub fn load_summary(record: &Value) -> String {
    let l = &record["latency_us"];
    let mut out = format!(
        "{target}: {delivered}/{expected} delivered in {secs:.2} s = {rate} deliveries/s\n\
         lost {lost}, duplicated {dup}, reordered {reo}\n\
         latency µs: p50 {p50}, p90 {p90}, p99 {p99}, max {max}\n",
        target = record["target"],
        delivered = record["delivered"],
        expected = record["expected"],
        secs = record["seconds"].as_f64().unwrap_or(0.0),
        rate = record["deliveries_per_sec"],
        lost = record["lost"],
        dup = record["duplicated"],
        reo = record["reordered"],
        p50 = l["p50"],
        p90 = l["p90"],
        p99 = l["p99"],
        max = l["max"],
    );
    for side in ["server", "bench"] {
        let s = &record[side];
        if !s.is_null() {
            out.push_str(&format!(
                "{side} CPU {}% ({} s), peak RSS {} KiB\n",
                s["cpu_percent"], s["cpu_seconds"], s["peak_rss_kib"]
            ));
        }
    }
    out
}
