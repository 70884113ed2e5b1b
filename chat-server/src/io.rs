//! Socket halves that hold no buffer while idle. A server with thousands of quiet clients
//! would otherwise keep two 8 KiB framing buffers for each (tokio-util's `FramedRead` and
//! `FramedWrite` allocate theirs up front); here a buffer exists only while bytes are in
//! flight. Framing itself is still `chat_proto::LineCodec`'s.

use std::io;

use bytes::BytesMut;
use chat_proto::{CodecError, LineCodec};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::Decoder;

/// Room made for each read; a read never takes more than this.
const READ_CHUNK_BYTES: usize = 4096;
/// A batch is written out once it holds this much, so one write never grows unbounded.
const WRITE_CHUNK_BYTES: usize = 64 * 1024;

/// Lines from a socket, decoded by [`LineCodec`].
#[derive(Debug)]
pub struct LineReader {
    half: OwnedReadHalf,
    codec: LineCodec,
    /// Bytes read but not yet a whole line; no allocation while empty.
    buf: BytesMut,
    eof: bool,
}

impl LineReader {
    /// Reads lines of at most `max_line_bytes` from `half`.
    pub fn new(half: OwnedReadHalf, max_line_bytes: usize) -> Self {
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
        loop {
            if let Some(line) = self.codec.decode(&mut self.buf).transpose() {
                return Some(line);
            }
            if self.eof {
                return self.codec.decode_eof(&mut self.buf).transpose();
            }
            if self.buf.is_empty() {
                // Nothing pending: give the memory back before waiting, maybe for hours.
                self.buf = BytesMut::new();
            }
            if let Err(e) = self.half.readable().await {
                return Some(Err(e.into()));
            }
            self.buf.reserve(READ_CHUNK_BYTES);
            match self.half.try_read_buf(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
    }

    /// The next line if one is already buffered: never reads, never waits.
    pub fn next_buffered(&mut self) -> Option<Result<String, CodecError>> {
        self.codec.decode(&mut self.buf).transpose()
    }

    /// The socket's read half, for draining before close.
    pub fn into_inner(self) -> OwnedReadHalf {
        self.half
    }
}

/// Writes a batch of encoded lines with as few syscalls as possible: one line is written
/// straight from its shared buffer; several are gathered into one buffer that is freed
/// once written.
pub async fn write_batch<I>(half: &mut OwnedWriteHalf, first: &[u8], rest: I) -> io::Result<()>
where
    I: Iterator,
    I::Item: AsRef<[u8]>,
{
    let mut rest = rest.peekable();
    if rest.peek().is_none() {
        return half.write_all(first).await;
    }
    let mut out = BytesMut::with_capacity(WRITE_CHUNK_BYTES.min(first.len() * 16));
    out.extend_from_slice(first);
    for line in rest {
        out.extend_from_slice(line.as_ref());
        if out.len() >= WRITE_CHUNK_BYTES {
            half.write_all(&out).await?;
            out.clear();
        }
    }
    half.write_all(&out).await
}
