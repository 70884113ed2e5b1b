//! [`InputHistory`]: the lines sent, for ↑ and ↓, with the line being typed kept aside
//! while browsing.

use std::collections::VecDeque;

/// Sent lines kept.
const HISTORY_LEN: usize = 500;

/// The lines sent, oldest first, and where ↑/↓ browsing is.
#[derive(Debug, Default)]
pub struct InputHistory {
    lines: VecDeque<String>,
    /// Position while browsing, and the line being typed before that.
    browsing: Option<(usize, String)>,
}

impl InputHistory {
    /// Remembers a sent line (not twice in a row) and stops browsing.
    pub fn remember(&mut self, line: String) {
        self.browsing = None;
        if self.lines.back() != Some(&line) {
            self.lines.push_back(line);
            if self.lines.len() > HISTORY_LEN {
                self.lines.pop_front();
            }
        }
    }

    /// The line before the one shown, given the line being typed now.
    pub fn older(&mut self, typed: &str) -> Option<String> {
        let pos = match &self.browsing {
            None if self.lines.is_empty() => return None,
            None => self.lines.len(),
            Some((pos, _)) => *pos,
        };
        if pos == 0 {
            return None;
        }
        let draft = match self.browsing.take() {
            Some((_, draft)) => draft,
            None => typed.to_owned(),
        };
        self.browsing = Some((pos - 1, draft));
        Some(self.lines[pos - 1].clone())
    }

    /// The newest line before position `before` (all of them with `None`) that holds
    /// `query`, ignoring case, and its position: Ctrl-R's reverse search.
    pub fn search(&self, query: &str, before: Option<usize>) -> Option<(usize, &str)> {
        let end = before.unwrap_or(self.lines.len()).min(self.lines.len());
        (0..end).rev().find_map(|at| {
            let line = &self.lines[at];
            crate::layout::find_ignoring_case(line, query).map(|_| (at, line.as_str()))
        })
    }

    /// The line after the one shown, or the line that was being typed.
    pub fn newer(&mut self) -> Option<String> {
        let (pos, draft) = self.browsing.take()?;
        if pos + 1 < self.lines.len() {
            self.browsing = Some((pos + 1, draft));
            Some(self.lines[pos + 1].clone())
        } else {
            Some(draft)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_back_and_returns_to_the_draft() {
        let mut history = InputHistory::default();
        assert_eq!(history.older("x"), None);
        history.remember("first".into());
        history.remember("second".into());
        history.remember("second".into());
        assert_eq!(history.older("draft").as_deref(), Some("second"));
        assert_eq!(history.older("second").as_deref(), Some("first"));
        assert_eq!(history.older("first"), None);
        assert_eq!(history.newer().as_deref(), Some("second"));
        assert_eq!(history.newer().as_deref(), Some("draft"));
        assert_eq!(history.newer(), None);
    }
}
