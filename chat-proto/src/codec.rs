//! [`LineCodec`]: `\n`-terminated UTF-8 lines with a hard length limit.
//!
//! Unlike `tokio_util::codec::LinesCodec` with a maximum length, which skips an over-long
//! line and goes on, this codec fails on it, because the protocol closes such a connection.
//! It also decides the details the protocol fixes: the limit counts the line without its
//! `\r\n`, only one `\r` before the `\n` is dropped, and an unterminated fragment at end of
//! stream is discarded rather than returned.

use std::fmt::{self, Write};

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{CodecError, DEFAULT_MAX_LINE_BYTES};

/// Decodes lines into `String`s and encodes anything string-like as one line.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_line_bytes: usize,
    /// Where to resume the search for `\n`, so a line arriving in many reads is scanned once.
    next_index: usize,
}

impl LineCodec {
    /// A codec refusing lines longer than `max_line_bytes` (without the line ending).
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes,
            next_index: 0,
        }
    }

    /// The longest line this codec accepts, in bytes.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Whether `pending` bytes without a `\n` already make a line longer than the limit.
    /// `max + 1` bytes may still be a line of `max` bytes plus the `\r` of its `\r\n`.
    fn overflows(&self, pending: &[u8]) -> bool {
        let max = self.max_line_bytes;
        pending.len() > max + 1 || (pending.len() == max + 1 && pending.last() != Some(&b'\r'))
    }
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE_BYTES)
    }
}

impl Decoder for LineCodec {
    type Item = String;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<String>, CodecError> {
        let Some(offset) = buf[self.next_index..].iter().position(|&b| b == b'\n') else {
            if self.overflows(buf) {
                return Err(CodecError::LineTooLong);
            }
            self.next_index = buf.len();
            return Ok(None);
        };
        let newline = self.next_index + offset;
        self.next_index = 0;
        let mut line = buf.split_to(newline + 1);
        line.truncate(newline);
        if line.last() == Some(&b'\r') {
            line.truncate(newline - 1);
        }
        if line.len() > self.max_line_bytes {
            return Err(CodecError::LineTooLong);
        }
        String::from_utf8(line.into())
            .map(Some)
            .map_err(|_| CodecError::InvalidUtf8)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<String>, CodecError> {
        match self.decode(buf)? {
            Some(line) => Ok(Some(line)),
            None => {
                // A fragment without its `\n` was never a line: drop it, never deliver it.
                buf.clear();
                self.next_index = 0;
                Ok(None)
            }
        }
    }
}

impl<T: AsRef<str>> Encoder<T> for LineCodec {
    type Error = CodecError;

    fn encode(&mut self, line: T, buf: &mut BytesMut) -> Result<(), CodecError> {
        let line = line.as_ref();
        if line.contains('\n') {
            return Err(CodecError::NewlineInLine);
        }
        buf.reserve(line.len() + 1);
        buf.put_slice(line.as_bytes());
        buf.put_u8(b'\n');
        Ok(())
    }
}

/// Formats `line` once into its wire form, `\n` included: bytes a server can hand to many
/// writers without formatting or copying again.
pub fn encode_line(line: impl fmt::Display) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    // Writing to a BytesMut cannot fail; the typed lines never contain a newline.
    let _ = write!(buf, "{line}");
    debug_assert!(!buf.contains(&b'\n'), "a line with a newline: {buf:?}");
    buf.put_u8(b'\n');
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `chunks` one after another, then ends the stream, collecting every result.
    fn decode_chunks(codec: &mut LineCodec, chunks: &[&[u8]]) -> Vec<Result<String, String>> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(line)) => out.push(Ok(line)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e.to_string()));
                        return out;
                    }
                }
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).transpose() {
            out.push(line.map_err(|e| e.to_string()));
        }
        out
    }

    fn decode_all(max: usize, bytes: &[u8]) -> Vec<Result<String, String>> {
        decode_chunks(&mut LineCodec::new(max), &[bytes])
    }

    fn ok(lines: &[&str]) -> Vec<Result<String, String>> {
        lines.iter().map(|l| Ok(l.to_string())).collect()
    }

    #[test]
    fn splits_lines_and_drops_one_carriage_return() {
        assert_eq!(
            decode_all(100, b"a\nb\r\n\nc\r\r\n"),
            ok(&["a", "b", "", "c\r"])
        );
    }

    #[test]
    fn limit_counts_the_line_without_its_ending() {
        let max = 8;
        let exact = "x".repeat(max);
        assert_eq!(
            decode_all(max, format!("{exact}\n").as_bytes()),
            ok(&[&exact])
        );
        assert_eq!(
            decode_all(max, format!("{exact}\r\n").as_bytes()),
            ok(&[&exact])
        );
        let over = "x".repeat(max + 1);
        let too_long = vec![Err("line too long".to_string())];
        assert_eq!(decode_all(max, format!("{over}\n").as_bytes()), too_long);
        assert_eq!(decode_all(max, format!("{over}\r\n").as_bytes()), too_long);
    }

    #[test]
    fn the_real_default_limit_is_4096() {
        let exact = "x".repeat(4096);
        let mut codec = LineCodec::default();
        assert_eq!(codec.max_line_bytes(), 4096);
        assert_eq!(
            decode_chunks(&mut codec, &[format!("{exact}\r\n").as_bytes()]),
            ok(&[&exact])
        );
        let over = format!("{exact}y\n");
        assert_eq!(
            decode_all(4096, over.as_bytes()),
            vec![Err("line too long".to_string())]
        );
    }

    #[test]
    fn an_endless_line_fails_before_the_buffer_grows_past_the_limit() {
        let mut codec = LineCodec::new(16);
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let failed = loop {
            buf.extend_from_slice(b"abc");
            fed += 3;
            match codec.decode(&mut buf) {
                Ok(None) => assert!(fed < 1_000_000, "no error after {fed} bytes"),
                Ok(Some(line)) => panic!("unexpected line {line:?}"),
                Err(e) => break e,
            }
        };
        assert!(matches!(failed, CodecError::LineTooLong));
        assert!(buf.len() <= 16 + 3, "buffer held {} bytes", buf.len());
    }

    #[test]
    fn a_carriage_return_at_the_limit_waits_for_its_newline() {
        let mut codec = LineCodec::new(4);
        assert_eq!(
            decode_chunks(&mut codec, &[b"abcd\r", b"\n"]),
            ok(&["abcd"])
        );
        assert_eq!(
            decode_all(4, b"abcde"),
            vec![Err("line too long".to_string())]
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        assert_eq!(
            decode_all(100, b"ok\n\xff\xfe\n"),
            vec![Ok("ok".into()), Err("invalid UTF-8".into())]
        );
    }

    #[test]
    fn an_unterminated_fragment_at_eof_is_dropped() {
        assert_eq!(decode_all(100, b"one\ntwo"), ok(&["one"]));
    }

    #[test]
    fn multibyte_characters_split_across_reads_come_out_whole() {
        let line = "张三: 你好 😀\n".as_bytes();
        for split in 0..=line.len() {
            let (a, b) = line.split_at(split);
            assert_eq!(
                decode_chunks(&mut LineCodec::new(100), &[a, b]),
                ok(&["张三: 你好 😀"])
            );
        }
    }

    #[test]
    fn encodes_one_line_and_refuses_embedded_newlines() {
        let mut buf = BytesMut::new();
        let mut codec = LineCodec::default();
        codec.encode("from 张三: hi", &mut buf).unwrap();
        assert_eq!(&buf[..], "from 张三: hi\n".as_bytes());
        assert!(matches!(
            codec.encode("a\nb", &mut buf),
            Err(CodecError::NewlineInLine)
        ));
    }

    #[test]
    fn encode_line_formats_once_with_the_newline() {
        assert_eq!(
            &encode_line(crate::ServerLine::Left(
                crate::UserName::parse("张三").unwrap()
            ))[..],
            "left 张三\n".as_bytes()
        );
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_lines_as_whole(
            bytes in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>(), Just(b'a')], 0..200),
            mut cuts in prop::collection::vec(0usize..200, 0..8),
            max in 1usize..40,
        ) {
            let whole = decode_all(max, &bytes);
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.iter_mut().for_each(|c| *c = (*c).min(bytes.len()));
            cuts.sort_unstable();
            let chunks: Vec<&[u8]> = cuts.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
            prop_assert_eq!(decode_chunks(&mut LineCodec::new(max), &chunks), whole);
        }

        #[test]
        fn encoded_lines_decode_to_themselves(lines in prop::collection::vec("[^\\n]{0,50}", 0..10)) {
            let mut codec = LineCodec::new(1024);
            let mut buf = BytesMut::new();
            for line in &lines {
                codec.encode(line, &mut buf).unwrap();
            }
            let want: Vec<_> = lines.iter().map(|l| Ok(l.strip_suffix('\r').unwrap_or(l).to_string())).collect();
            prop_assert_eq!(decode_all(1024, &buf), want);
        }
    }
}
