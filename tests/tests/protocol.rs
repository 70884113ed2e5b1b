//! What of protocol v1 needs the real `chat-server` process: its listen backlog and its
//! sockets' keepalive as the kernel reports them (`ss`), and its peak memory (`/proc`)
//! under a line that never ends. Every other rule of docs/protocol.md is tested in
//! process, on one server and on a cluster: `chat-server/tests/protocol.rs`.

use chat_tests::ServerProcess;

#[tokio::test]
async fn a_megabyte_without_newline_is_refused_and_memory_stays_bounded() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut flood = server.login("flood").await;
    bob.expect("joined flood").await;
    let peak_before = server.sample().hwm_kib;

    // 8 MiB, so that buffering it would show clearly. The server reads and discards what
    // follows the first 4097 bytes, so these writes complete; it may also close first.
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..128 {
        if flood.try_send_raw(&chunk).await.is_err() {
            break;
        }
    }
    flood.expect("error: line too long").await;
    flood.expect_eof().await;
    bob.expect("left flood").await;

    let grown = server.sample().hwm_kib.saturating_sub(peak_before);
    assert!(grown < 1024, "server peak memory grew by {grown} KiB");
    let (_, names) = bob.sync().await;
    assert_eq!(names, ["bob"]);
}

#[tokio::test]
async fn the_accept_queue_holds_a_login_storm() {
    let server = ServerProcess::start(&[]).await;
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("( sport = :{} )", server.addr.port())])
        .output()
        .expect("running ss (iproute2)");
    let out = String::from_utf8_lossy(&out.stdout);
    // For a listening socket, ss shows the backlog as Send-Q (the third column).
    let backlog: u32 = out
        .split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket in:\n{out}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("reading somaxconn")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(backlog, somaxconn.min(4096), "not the default of 128");
}

#[tokio::test]
async fn accepted_sockets_have_tcp_keepalive() {
    let server = ServerProcess::start(&[]).await;
    let _alice = server.login("alice").await;
    let out = std::process::Command::new("ss")
        .args([
            "-tno",
            "state",
            "established",
            &format!("( sport = :{} )", server.addr.port()),
        ])
        .output()
        .expect("running ss (iproute2)");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("timer:(keepalive"),
        "no keepalive timer on the server socket:\n{out}"
    );
}
