//! [`LineReader`]: a socket's lines, holding no buffer while idle. A server with
//! thousands of quiet clients would otherwise keep an 8 KiB framing buffer for each
//! (tokio-util's `FramedRead` allocates its own up front); here a buffer exists only
//! while bytes are in flight. Framing itself is still `chat_proto::LineCodec`'s.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use chat_proto::{CodecError, LineCodec};
use tokio_util::codec::Decoder;
use tokio_util::either::Either;
use tokio_util::io::poll_read_buf;

use crate::tls::ReadHalf;

/// Room made for each read; a read never takes more than this.
const READ_CHUNK_BYTES: usize = 4096;

/// Lines read together, and how reading ended if it did.
#[derive(Debug, Default)]
pub struct Batch {
    /// Whole lines, in order.
    pub lines: Vec<String>,
    /// `Some(None)`: EOF; `Some(Some(e))`: the error that ends the stream (after `lines`).
    pub end: Option<Option<CodecError>>,
}

/// Lines from a socket, decoded by [`LineCodec`].
#[derive(Debug)]
pub struct LineReader {
    half: ReadHalf,
    codec: LineCodec,
    /// Bytes read but not yet a whole line; no allocation while empty.
    buf: BytesMut,
    eof: bool,
}

impl LineReader {
    /// Reads lines of at most `max_line_bytes` from `half`.
    pub fn new(half: ReadHalf, max_line_bytes: usize) -> Self {
        Self {
            half,
            codec: LineCodec::new(max_line_bytes),
            buf: BytesMut::new(),
            eof: false,
        }
    }

    /// The next line, `None` at EOF (an unterminated fragment is dropped), or the error
    /// that ends the stream. Cancel safe: a partial line stays buffered.
    pub async fn next_line(&mut self) -> Option<Result<String, CodecError>> {
        let Batch { mut lines, end } = poll_fn(|cx| self.poll_batch(cx, 1)).await;
        match lines.pop() {
            Some(line) => Some(Ok(line)),
            None => end.flatten().map(Err),
        }
    }

    /// Waits for a line, then takes up to `most` in all of those already buffered, so one
    /// read's worth of lines travels on together. A poll function rather than an `async
    /// fn` because its future would live in every idle client's task; this way the
    /// task holds no state for it but `self`. Cancel safe: a partial line stays
    /// buffered.
    pub fn poll_batch(&mut self, cx: &mut Context<'_>, most: usize) -> Poll<Batch> {
        let mut batch = Batch::default();
        loop {
            while batch.lines.len() < most {
                match self.codec.decode(&mut self.buf) {
                    Ok(Some(line)) => batch.lines.push(line),
                    Ok(None) => break,
                    Err(e) => {
                        batch.end = Some(Some(e));
                        return Poll::Ready(batch);
                    }
                }
            }
            if !batch.lines.is_empty() {
                return Poll::Ready(batch);
            }
            if self.eof {
                batch.end = match self.codec.decode_eof(&mut self.buf) {
                    Ok(line) => {
                        batch.lines.extend(line);
                        Some(None)
                    }
                    Err(e) => Some(Some(e)),
                };
                return Poll::Ready(batch);
            }
            match ready!(self.poll_read(cx)) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => {
                    batch.end = Some(Some(e.into()));
                    return Poll::Ready(batch);
                }
            }
        }
    }

    /// Reads and drops whatever the client sends; `false` once it closed or the socket
    /// broke. For the wait before closing, when nothing read matters any more.
    pub async fn discard(&mut self) -> bool {
        if self.eof {
            return false;
        }
        self.buf.clear();
        let open = matches!(poll_fn(|cx| self.poll_read(cx)).await, Ok(1..));
        self.buf.clear();
        self.eof = !open;
        open
    }

    /// One read into `buf`; `Ok(0)` at EOF.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            if self.buf.is_empty() {
                // Nothing pending: give the memory back before waiting, maybe for hours.
                self.buf = BytesMut::new();
            }
            let read = match &mut self.half {
                Either::Left(tcp) => {
                    // Wait for bytes with no buffer, then make room for exactly this read.
                    ready!(tcp.as_ref().poll_read_ready(cx))?;
                    self.buf.reserve(READ_CHUNK_BYTES);
                    tcp.try_read_buf(&mut self.buf)
                }
                // A TLS session cannot say "readable" before decrypting: it reads into
                // room made first, so a TLS client holds a buffer while idle.
                Either::Right(tls) => {
                    self.buf.reserve(READ_CHUNK_BYTES);
                    ready!(poll_read_buf(Pin::new(tls), cx, &mut self.buf))
                }
            };
            match read {
                // A false readiness; trying cleared it, so the next poll waits.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                read => return Poll::Ready(read),
            }
        }
    }
}
