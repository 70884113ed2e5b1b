//! LineCodec on any bytes, split at any points: never panics, never buffers past the
//! limit, and gives the same lines (or the same error) as when fed whole.
#![no_main]

use bytes::BytesMut;
use chat_proto::LineCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const MAX: usize = 64;

fn decode(chunks: &[&[u8]]) -> Vec<Result<String, String>> {
    let mut codec = LineCodec::new(MAX);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(line)) => {
                    assert!(line.len() <= MAX);
                    out.push(Ok(line));
                }
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
            assert!(buf.len() <= MAX + 1 + chunk.len());
        }
        assert!(buf.len() <= MAX + 1, "buffered {} bytes without a line", buf.len());
    }
    while let Some(line) = codec.decode_eof(&mut buf).transpose() {
        out.push(line.map_err(|e| e.to_string()));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the split points: every `step` bytes.
    let Some((&step, rest)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let chunks: Vec<&[u8]> = rest.chunks(step).collect();
    assert_eq!(decode(&chunks), decode(&[rest]));
});
