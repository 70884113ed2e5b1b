//! Line mode, for when stdin is not a terminal (or `--plain`): stdin lines go to the
//! server, server lines go to stdout unchanged. On stdin EOF the client shuts down its
//! write half and prints everything until the server closes: the a-chat tutorial's
//! client, without losing the last lines. `/quit` (in any case) ends stdin the same way
//! rather than going to the server.

use std::process::ExitCode;

use anyhow::Context;
use chat_proto::{LineCodec, ServerLine, UserName};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

use crate::commands::{self, Typed, UserCommand};
use crate::net::{self, Login, Target};

/// Longest stdin line passed on; the server enforces its own, smaller limit.
const MAX_STDIN_LINE_BYTES: usize = 1024 * 1024;

/// Runs line mode until the server closes. Exit status 1 if the login was refused or
/// not answered at all, or stdin could not be read as lines.
pub async fn run(target: &Target, name: &UserName) -> anyhow::Result<ExitCode> {
    let Login {
        lines: mut server,
        mut sink,
    } = net::connect(target, name)
        .await
        .with_context(|| format!("connecting to {}", target.addr))?;
    let mut stdin = FramedRead::new(tokio::io::stdin(), LineCodec::new(MAX_STDIN_LINE_BYTES));
    let mut stdout = tokio::io::stdout();

    let mut status = ExitCode::SUCCESS;
    let mut first = true;
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = stdin.next(), if stdin_open => match line {
                Some(Ok(line)) if !is_quit(&line) => sink.send(line).await.context("sending to the server")?,
                end => {
                    if let Some(Err(e)) = end {
                        eprintln!("chat-client: stdin: {e}");
                        status = ExitCode::FAILURE;
                    }
                    stdin_open = false;
                    SinkExt::<&str>::close(&mut sink).await.context("closing the connection")?;
                }
            },
            line = server.next() => match line {
                Some(Ok(line)) => {
                    if first {
                        first = false;
                        if let Ok(ServerLine::Error(reason)) = line.parse::<ServerLine>() {
                            eprintln!("chat-client: login refused: {reason}");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                    stdout.write_all(format!("{line}\n").as_bytes()).await.context("writing to stdout")?;
                    stdout.flush().await.context("writing to stdout")?;
                }
                Some(Err(e)) => return Err(e).context("reading from the server"),
                None if first => {
                    // No `welcome` and no `error:`: this was never a session.
                    eprintln!("chat-client: the server closed the connection without answering the login");
                    return Ok(ExitCode::FAILURE);
                }
                None => break,
            },
        }
    }
    Ok(status)
}

/// Whether a stdin line is the client's own `/quit` (or `/exit`), with a message or not.
fn is_quit(line: &str) -> bool {
    matches!(
        commands::parse(line.trim()),
        Ok(Typed::Command(UserCommand::Quit(_)))
    )
}
