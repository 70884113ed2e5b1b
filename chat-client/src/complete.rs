//! Tab completion of names, `#rooms` and `/commands` for the word before the cursor,
//! anywhere in the line. A repeated Tab cycles through the candidates in place (Shift-Tab
//! goes back); nothing is written to the messages.

/// A completion in progress: the candidates, which one is shown, and where it was put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Byte offset where the completed word starts.
    pub start: usize,
    /// The candidates, as inserted (with any suffix).
    pub candidates: Vec<String>,
    /// Which candidate is in the line.
    pub index: usize,
}

impl Completion {
    /// Starts completing the word that ends at `cursor` in `line`, from `names` and
    /// `rooms`; `commands` complete a `/word` at the start of the line. `None` when
    /// nothing matches.
    pub fn start<'a>(
        line: &str,
        cursor: usize,
        names: impl IntoIterator<Item = &'a str>,
        rooms: impl IntoIterator<Item = &'a str>,
        commands: impl IntoIterator<Item = &'a str>,
    ) -> Option<Self> {
        let before = &line[..cursor];
        let start = before
            .rfind(|c: char| c.is_whitespace() || c == ',')
            .map_or(0, |i| {
                i + before[i..].chars().next().map_or(1, char::len_utf8)
            });
        let word = &before[start..];
        let lower = word.to_lowercase();
        let at_start = line[..start].trim().is_empty();
        let followed = line[cursor..].starts_with([' ', ':']);
        let mut candidates: Vec<String> = if let Some(command) = lower.strip_prefix('/') {
            if !at_start {
                return None;
            }
            commands
                .into_iter()
                .filter(|c| c.starts_with(command))
                .map(|c| format!("/{c}{}", if followed { "" } else { " " }))
                .collect()
        } else if lower.starts_with('#') {
            rooms
                .into_iter()
                .filter(|r| r.to_lowercase().starts_with(&lower))
                .map(|r| format!("{r}{}", if followed { "" } else { " " }))
                .collect()
        } else {
            let suffix = match (at_start, followed) {
                (_, true) => "",
                (true, false) => ": ",
                (false, false) => " ",
            };
            names
                .into_iter()
                .filter(|n| n.to_lowercase().starts_with(&lower))
                .map(|n| format!("{n}{suffix}"))
                .collect()
        };
        candidates.sort_by_key(|c| c.to_lowercase());
        candidates.dedup();
        (!candidates.is_empty()).then_some(Self {
            start,
            candidates,
            index: 0,
        })
    }

    /// The candidate in the line now.
    pub fn current(&self) -> &str {
        &self.candidates[self.index]
    }

    /// Moves to the next (or previous) candidate.
    pub fn cycle(&mut self, forward: bool) {
        let n = self.candidates.len();
        self.index = if forward {
            (self.index + 1) % n
        } else {
            (self.index + n - 1) % n
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 4] = ["bob", "carol", "caroline", "张三"];
    const ROOMS: [&str; 2] = ["#rust", "#rustaceans"];
    const COMMANDS: [&str; 3] = ["join", "part", "query"];

    fn complete(line: &str) -> Option<Completion> {
        Completion::start(line, line.len(), NAMES, ROOMS, COMMANDS)
    }

    #[test]
    fn a_name_at_the_start_gets_a_colon_elsewhere_a_space() {
        assert_eq!(complete("b").unwrap().candidates, ["bob: "]);
        assert_eq!(complete("hi b").unwrap().candidates, ["bob "]);
        assert_eq!(complete("hi 张").unwrap().candidates, ["张三 "]);
        assert_eq!(complete("x").map(|c| c.candidates), None);
    }

    #[test]
    fn rooms_and_commands() {
        let c = complete("see #ru").unwrap();
        assert_eq!(c.candidates, ["#rust ", "#rustaceans "]);
        assert_eq!(complete("/j").unwrap().candidates, ["/join "]);
        assert!(complete("x /j").is_none(), "a command only at the start");
    }

    #[test]
    fn repeated_tab_cycles_both_ways() {
        let mut c = complete("ca").unwrap();
        assert_eq!(c.current(), "carol: ");
        c.cycle(true);
        assert_eq!(c.current(), "caroline: ");
        c.cycle(true);
        assert_eq!(c.current(), "carol: ");
        c.cycle(false);
        assert_eq!(c.current(), "caroline: ");
        assert_eq!(c.start, 0);
    }
}
