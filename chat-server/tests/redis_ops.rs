//! Redis as operators deploy it (issue 17), against a real `redis-server`: a password in
//! the URL never reaches a log or an error, `rediss://` with a private CA, a node's name
//! in `CLIENT LIST`, and an outage noticed within 2 s.

use std::path::Path;
use std::time::{Duration, Instant};

use chat_server::{ClusterConfig, cluster};
use chat_tests::{DEADLINE, RedisServer, ServerProcess, TestCa, run_server_to_exit};
use nix::sys::signal::Signal;
use redis::aio::ConnectionManager;

const PASSWORD: &str = "correct-horse-battery";
const WRONG: &str = "wrong-staple-7f3a";

/// Node `a`'s connection to `url`, as the node's backend makes it.
async fn connect(url: &str, ca_file: Option<&Path>) -> anyhow::Result<ConnectionManager> {
    cluster::connect_node(&ClusterConfig {
        url: url.to_owned(),
        node: "a".to_owned(),
        ca_file: ca_file.map(Path::to_path_buf),
    })
    .await
}

async fn ping(conn: &mut ConnectionManager) -> String {
    redis::cmd("PING").query_async(conn).await.expect("PING")
}

#[tokio::test]
async fn a_wrong_password_is_an_error_that_does_not_show_it() {
    let redis = RedisServer::start_with_password(PASSWORD);
    for url in [
        format!("redis://:{WRONG}@{}", redis.addr),
        format!("redis://default:{WRONG}@{}", redis.addr),
    ] {
        let error = connect(&url, None).await.expect_err("a wrong password");
        let text = format!("{error:#} {error:?}");
        assert!(!text.contains(WRONG), "{text}");
        assert!(text.contains("***"), "{text}");
    }
}

#[tokio::test]
async fn an_unreachable_redis_does_not_show_the_password() {
    let mut redis = RedisServer::start_with_password(PASSWORD);
    let url = redis.url();
    redis.kill();
    let error = connect(&url, None).await.expect_err("nothing listens");
    let text = format!("{error:#} {error:?}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(
        text.starts_with(&format!(
            "cannot reach Redis at redis://:***@{}",
            redis.addr
        )),
        "{text}"
    );
}

#[tokio::test]
async fn the_right_password_works() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let mut conn = connect(&redis.url(), None).await.expect("connecting");
    assert_eq!(ping(&mut conn).await, "PONG");
}

#[tokio::test]
async fn the_server_never_writes_the_password_to_stderr() {
    let mut redis = RedisServer::start_with_password(PASSWORD);
    let wrong = format!("redis://:{WRONG}@{}", redis.addr);
    let (status, stderr) = run_server_to_exit(&["--cluster", &wrong, "-vv"]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(":***@"), "{stderr}");
    assert!(!stderr.contains(WRONG), "{stderr}");

    let url = redis.url();
    redis.kill();
    let (status, stderr) = run_server_to_exit(&["--cluster", &url, "-vv"]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach Redis at redis://:***@"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");

    let unparsable = format!("redis://:{PASSWORD}@127.0.0.1:port");
    let (status, stderr) = run_server_to_exit(&["--cluster", &unparsable, "-vv"]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}

#[tokio::test]
async fn a_running_node_never_logs_the_password() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let server =
        ServerProcess::start(&["--cluster", &redis.url(), "--node-name", "a", "-vv"]).await;
    let mut alice = server.login("alice").await;
    alice.send("/who").await;
    alice.expect("users alice").await;
    let log = server.log_text();
    assert!(log.contains("joined the cluster"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test]
async fn rediss_with_the_ca_file_works() {
    let redis = RedisServer::start_tls();
    let mut conn = connect(&redis.url(), Some(redis.ca_file()))
        .await
        .expect("connecting over TLS");
    assert_eq!(ping(&mut conn).await, "PONG");
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_clearly() {
    let redis = RedisServer::start_tls();
    let other = TestCa::new();
    let shown = format!("cannot reach Redis at {}", redis.url());
    // Another CA, then the built-in public roots: neither signed the test certificate.
    for ca_file in [Some(other.ca_file()), None] {
        let error = connect(&redis.url(), ca_file)
            .await
            .expect_err("an untrusted certificate");
        let text = format!("{error:#}");
        assert!(text.starts_with(&shown), "{text}");
        assert!(text.contains("certificate"), "{text}");
    }
}

#[tokio::test]
async fn a_ca_file_must_be_a_certificate_for_a_rediss_url() {
    let plain = RedisServer::start();
    let tls = RedisServer::start_tls();
    let error = connect(&plain.url(), Some(tls.ca_file()))
        .await
        .expect_err("a CA file with redis://");
    assert!(format!("{error:#}").contains("rediss://"), "{error:#}");

    let missing = Path::new("/nonexistent/ca.pem");
    let error = connect(&tls.url(), Some(missing))
        .await
        .expect_err("no such file");
    let text = format!("{error:#}");
    assert!(
        text.starts_with("reading the CA file /nonexistent/ca.pem"),
        "{text}"
    );

    let dir = tempfile::tempdir().expect("a temp dir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("writing");
    let error = connect(&tls.url(), Some(&empty))
        .await
        .expect_err("no certificate");
    assert!(format!("{error:#}").contains("no certificate"), "{error:#}");
}

#[tokio::test]
async fn a_nodes_connection_is_named_in_client_list() {
    let redis = RedisServer::start();
    let mut kept = Vec::new();
    for node in ["ops-a", "zürich"] {
        let cluster = ClusterConfig {
            url: redis.url(),
            node: node.to_owned(),
            ca_file: None,
        };
        kept.push(cluster::connect_node(&cluster).await.expect("connecting"));
    }
    let list = redis.command("CLIENT LIST");
    assert!(list.contains(" name=chat-node:ops-a "), "{list}");
    // Redis takes printable ASCII only in a name.
    assert!(list.contains(" name=chat-node:z?rich "), "{list}");
}

#[tokio::test]
async fn losing_redis_is_an_error_within_two_seconds() {
    let mut redis = RedisServer::start();
    let mut conn = connect(&redis.url(), None).await.expect("connecting");
    let within = Duration::from_secs(2);
    // Paused: the connection stays open and nothing answers.
    redis.signal(Signal::SIGSTOP);
    let started = Instant::now();
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .expect_err("a paused Redis");
    assert!(started.elapsed() < within, "{:?}", started.elapsed());
    redis.signal(Signal::SIGCONT);
    assert_eq!(ping(&mut conn).await, "PONG");

    // Gone: the call in flight fails, and so do those made while the manager reconnects.
    let addr = redis.addr;
    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .expect_err("no Redis");
        assert!(started.elapsed() < within, "{:?}", started.elapsed());
    }
    // Back: the manager reconnects by itself.
    let _redis = RedisServer::start_at(addr);
    let deadline = Instant::now() + DEADLINE;
    while redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "no reconnection");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_chat_over_rediss_with_a_private_ca() {
    let redis = RedisServer::start_tls();
    let ca = redis.ca_file().to_str().expect("a UTF-8 path").to_owned();
    let url = redis.url();
    let args = |name| {
        [
            "--cluster",
            &url,
            "--cluster-ca-file",
            &ca,
            "--node-name",
            name,
        ]
    };
    let a = ServerProcess::start(&args("a")).await;
    let b = ServerProcess::start(&args("b")).await;
    let mut alice = a.login("alice").await;
    let mut bob = b.login("bob").await;
    alice.skip_until("joined bob").await;
    alice.send("bob: over TLS").await;
    bob.skip_until("from alice: over TLS").await;
}
