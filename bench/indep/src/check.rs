//! The pure part: finding lines in what was read, recognising this tool's room messages
//! among the server's lines, and checking each sender's sequence numbers as they arrive.

use std::collections::BTreeSet;

/// One of this tool's room messages as a member receives it:
/// `from i<sender> <room> <id>: <seq> xxx...`.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// `k` of the sender's name `i<k>`.
    pub sender: usize,
    /// The room, `#` included.
    pub room: &'a [u8],
    /// The server's message id.
    pub id: u64,
    /// The sender's sequence number, the first word of the text.
    pub seq: u64,
    /// The whole text, to check its length against what was sent.
    pub text: &'a [u8],
}

/// What a line from the server is, to this tool.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A room message in this tool's format.
    Delivery(Delivery<'a>),
    /// A `from` line that is not: someone else's message, or a mangled one.
    Foreign,
    /// Anything else (presence, `names`, `roles`, ...): not a message, skipped.
    Other,
}

/// Classifies one line, without its `\n`.
pub fn classify(line: &[u8]) -> Line<'_> {
    match line.strip_prefix(b"from ") {
        Some(rest) => parse_delivery(rest).map_or(Line::Foreign, Line::Delivery),
        None => Line::Other,
    }
}

fn parse_delivery(rest: &[u8]) -> Option<Delivery<'_>> {
    let (sender, rest) = number(rest.strip_prefix(b"i")?)?;
    let rest = rest.strip_prefix(b" ")?;
    if !rest.starts_with(b"#") {
        return None;
    }
    let space = rest.iter().position(|&b| b == b' ')?;
    let (room, rest) = (&rest[..space], &rest[space + 1..]);
    let (id, rest) = number(rest)?;
    let text = rest.strip_prefix(b": ")?;
    let (seq, after) = number(text)?;
    if !after.starts_with(b" ") {
        return None;
    }
    Some(Delivery {
        sender: usize::try_from(sender).ok()?,
        room,
        id,
        seq,
        text,
    })
}

/// A decimal number at the start of `s`, and what follows it; `None` without digits or
/// on overflow (a mangled line must not panic the reader).
fn number(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let n = s[..digits].iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some((n, &s[digits..]))
}

/// The index of the first `\n` in `s`. Eight bytes at a time: the readers scan every
/// byte the server sends, and a byte-by-byte loop was the largest cost of this tool's
/// one core, the core that must not be the bottleneck.
pub fn find_newline(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let mut chunks = s.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ NEWLINES;
        // Non-zero exactly when some byte of x is zero, i.e. that byte was `\n`; the
        // lowest set high bit is the first such byte (borrows only run upwards).
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(offset + found.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| offset + p)
}

/// How one delivery of one sender's message compares with what came before it.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The next one expected.
    InOrder,
    /// Later than the next expected: the ones between are missing, for now.
    Gap,
    /// One of the missing ones, arriving after a later one: reordered.
    Late,
    /// Received before.
    Duplicate,
    /// A sequence number this run never sends.
    OutOfRange,
}

/// One receiver's view of one sender's sequence numbers, `0..limit`.
#[derive(Debug)]
pub struct Sequence {
    next: u64,
    limit: u64,
    /// Skipped by a gap and not arrived since: lost unless they turn up late. Almost
    /// always empty, so a set costs nothing on the usual path.
    missing: BTreeSet<u64>,
}

impl Sequence {
    pub fn new(limit: u64) -> Self {
        Self {
            next: 0,
            limit,
            missing: BTreeSet::new(),
        }
    }

    pub fn accept(&mut self, seq: u64) -> Verdict {
        if seq >= self.limit {
            // Checked first, so a mangled number cannot make the gap below huge.
            Verdict::OutOfRange
        } else if seq == self.next {
            self.next += 1;
            Verdict::InOrder
        } else if seq > self.next {
            self.missing.extend(self.next..seq);
            self.next = seq + 1;
            Verdict::Gap
        } else if self.missing.remove(&seq) {
            Verdict::Late
        } else {
            Verdict::Duplicate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_deliveries_and_skips_the_rest() {
        assert_eq!(
            classify(b"from i12 #r2 1795888800123456: 345 xxxx"),
            Line::Delivery(Delivery {
                sender: 12,
                room: b"#r2",
                id: 1_795_888_800_123_456,
                seq: 345,
                text: b"345 xxxx",
            })
        );
        for other in [
            &b"joined i3"[..],
            b"left i3",
            b"joined #r1 i3",
            b"names #r1 i1,i11",
            b"roles #r1 @i1",
            b"welcome i3",
            b"error: not a member of #r1",
        ] {
            assert_eq!(
                classify(other),
                Line::Other,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        for foreign in [
            &b"from alice #r1 5: hello"[..],
            b"from i3: 4 xx",
            b"from i3 *: 4 xx",
            b"from i3 #r1 5: x",
            b"from i3 #r1 5: 4",
            b"from i3 #r1 x: 4 xx",
            b"from i99999999999999999999 #r1 5: 4 xx",
        ] {
            assert_eq!(
                classify(foreign),
                Line::Foreign,
                "{}",
                String::from_utf8_lossy(foreign)
            );
        }
    }

    #[test]
    fn finds_newlines_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                let mut s = vec![b'a'; len];
                s[at] = b'\n';
                if at + 3 < len {
                    s[at + 3] = b'\n';
                }
                assert_eq!(find_newline(&s), Some(at), "len {len}, at {at}");
            }
            assert_eq!(find_newline(&vec![b'a'; len]), None);
        }
        // Bytes with the high bit set next to a newline must not fool the word test.
        assert_eq!(find_newline(b"\x80\x8a\xff\x0b\x09\n\x80\x0a"), Some(5));
    }

    #[test]
    fn sorts_deliveries_into_in_order_late_duplicate() {
        let mut s = Sequence::new(10);
        assert_eq!(s.accept(0), Verdict::InOrder);
        assert_eq!(s.accept(1), Verdict::InOrder);
        assert_eq!(s.accept(1), Verdict::Duplicate);
        assert_eq!(s.accept(4), Verdict::Gap);
        assert_eq!(s.accept(3), Verdict::Late);
        assert_eq!(s.accept(3), Verdict::Duplicate);
        assert_eq!(s.accept(5), Verdict::InOrder);
        assert_eq!(s.accept(2), Verdict::Late);
        assert_eq!(s.accept(10), Verdict::OutOfRange);
        assert_eq!(s.accept(u64::MAX), Verdict::OutOfRange);
        assert!(s.missing.is_empty());
    }
}
