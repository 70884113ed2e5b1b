//! Redis as operators deploy it (issue 17), against a real `redis-server`: a password in
//! the URL never reaches a log or an error.

use chat_server::cluster;
use chat_tests::{RedisServer, ServerProcess, run_server_to_exit};

const PASSWORD: &str = "correct-horse-battery";
const WRONG: &str = "wrong-staple-7f3a";

#[tokio::test]
async fn a_wrong_password_is_an_error_that_does_not_show_it() {
    let redis = RedisServer::start_with_password(PASSWORD);
    for url in [
        format!("redis://:{WRONG}@{}", redis.addr),
        format!("redis://default:{WRONG}@{}", redis.addr),
    ] {
        let error = cluster::connect(&url).await.expect_err("a wrong password");
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
    let error = cluster::connect(&url).await.expect_err("nothing listens");
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
    let mut conn = cluster::connect(&redis.url()).await.expect("connecting");
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
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
#[ignore = "until Server::join_cluster logs cluster::redacted(&cluster.url) (lib.rs)"]
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
