//! `chat-bench` itself: small runs against the real server and its own forwarder, checking
//! that it counts every delivery and reports what docs/performance.md relies on.

use chat_tests::{ServerProcess, bin_path};
use serde_json::Value;

/// Runs chat-bench, which must succeed, and returns its JSON record.
async fn bench(args: &[&str]) -> Value {
    let output = tokio::process::Command::new(bin_path("chat-bench"))
        .args(args)
        .output()
        .await
        .expect("running chat-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no JSON; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(last).expect("a JSON record")
}

#[tokio::test]
async fn run_checks_every_delivery_against_the_server() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let pid = server.pid().to_string();
    let r = bench(&[
        "run",
        "--addr",
        &addr,
        "--clients",
        "6",
        "--senders",
        "4",
        "--fanout",
        "3",
        "--messages",
        "200",
        "--window",
        "8",
        "--server-pid",
        &pid,
    ])
    .await;
    assert_eq!(r["expected"], 4 * 3 * 200);
    assert_eq!(r["delivered"], r["expected"]);
    assert_eq!(
        (
            r["lost"].as_u64(),
            r["duplicated"].as_u64(),
            r["reordered"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert!(r["latency_us"]["p99"].as_u64().is_some());
    assert!(
        r["server"]["peak_rss_kib"]
            .as_u64()
            .is_some_and(|kib| kib > 0)
    );
}

#[tokio::test]
async fn broadcast_and_raw_baseline() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let r = bench(&[
        "run",
        "--addr",
        &addr,
        "--clients",
        "5",
        "--senders",
        "2",
        "--broadcast",
        "--messages",
        "100",
    ])
    .await;
    assert_eq!(r["delivered"], 2 * 4 * 100);
    let r = bench(&[
        "raw",
        "--clients",
        "5",
        "--senders",
        "5",
        "--fanout",
        "1",
        "--messages",
        "100",
    ])
    .await;
    assert_eq!(
        (r["target"].as_str(), r["delivered"].as_u64()),
        (Some("raw"), Some(500))
    );
}

#[tokio::test]
async fn a_login_storm_read_line_by_line_counts_every_joined() {
    for (presence, joined) in [("all", 50 * 49 / 2), ("rooms", 0)] {
        let server = ServerProcess::start(&["--presence", presence]).await;
        let r = bench(&[
            "logins",
            "--read-presence",
            "--presence",
            presence,
            "--addr",
            &server.addr.to_string(),
            "--clients",
            "50",
        ])
        .await;
        assert_eq!(r["joined_lines"], joined, "--presence {presence}");
        assert!(r["seconds"].as_f64() >= r["welcomed_seconds"].as_f64());
    }
}

#[tokio::test]
async fn drain_logins_and_idle() {
    let server = ServerProcess::start(&["--sendq", "64MiB"]).await;
    let addr = server.addr.to_string();
    let pid = server.pid().to_string();
    let r = bench(&[
        "logins",
        "--addr",
        &addr,
        "--clients",
        "50",
        "--server-pid",
        &pid,
    ])
    .await;
    assert_eq!(r["clients"], 50);
    let r = bench(&[
        "idle",
        "--addr",
        &addr,
        "--clients",
        "20",
        "--hold",
        "0",
        "--server-pid",
        &pid,
    ])
    .await;
    assert!(r["bytes_per_connection"].as_f64().is_some());
    let r = bench(&[
        "drain",
        "--addr",
        &addr,
        "--messages",
        "10000",
        "--server-pid",
        &pid,
    ])
    .await;
    assert_eq!(
        (r["received"].as_u64(), r["bye"].as_bool()),
        (Some(10000), Some(true))
    );
}

#[tokio::test]
async fn only_loopback_addresses_are_accepted() {
    let output = tokio::process::Command::new(bin_path("chat-bench"))
        .args(["run", "--addr", "192.0.2.1:8080"])
        .output()
        .await
        .expect("running chat-bench");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a loopback address"));
}

#[tokio::test]
async fn rooms_against_the_server_and_the_forwarder() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    // 9 clients in 2 rooms: #r0 has 0,2,4,6,8 and #r1 has 1,3,5,7.
    let args = [
        "--clients",
        "9",
        "--senders",
        "4",
        "--rooms",
        "2",
        "--messages",
        "50",
    ];
    let expected = 50 * (4 + 3 + 4 + 3);
    let mut run = vec!["run", "--addr", &addr];
    run.extend(args);
    let r = bench(&run).await;
    assert_eq!(r["delivered"], expected);
    assert_eq!(r["fanout"], "2 rooms");
    let mut raw = vec!["raw"];
    raw.extend(args);
    let r = bench(&raw).await;
    assert_eq!(r["delivered"], expected);
}

#[tokio::test]
async fn history_reads_at_once() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let r = bench(&[
        "history",
        "--addr",
        &addr,
        "--clients",
        "10",
        "--messages",
        "300",
        "--lines",
        "200",
    ])
    .await;
    assert_eq!(r["lost"], 0, "every reply had its 200 lines");
    assert!(r["reply_ms"]["p99"].as_f64().is_some_and(|ms| ms > 0.0));
}

#[tokio::test]
async fn password_logins_and_a_wrong_password_attack() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let server = ServerProcess::start(&["--db", db.to_str().expect("UTF-8")]).await;
    let addr = server.addr.to_string();
    let r = bench(&["accounts", "--addr", &addr, "--clients", "12"]).await;
    assert!(r["logins_per_sec"].as_f64().is_some_and(|rate| rate > 0.0));
    let server =
        ServerProcess::start(&["--db", dir.path().join("b.db").to_str().expect("UTF-8")]).await;
    let addr = server.addr.to_string();
    let r = bench(&[
        "run",
        "--addr",
        &addr,
        "--clients",
        "4",
        "--senders",
        "4",
        "--fanout",
        "1",
        "--messages",
        "300",
        "--rate",
        "1000",
        "--attackers",
        "20",
    ])
    .await;
    assert_eq!(r["lost"], 0);
    let attack = &r["attack"];
    let (wrong, throttled) = (
        attack["wrong_password"].as_u64(),
        attack["throttled"].as_u64(),
    );
    assert!(
        wrong.is_some_and(|w| w <= 10) && throttled.is_some_and(|t| t > 0),
        "the throttle lets at most ten checks through per address: {attack}"
    );
}
