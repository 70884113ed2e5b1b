//! [`ScrollView`]: the messages pane as a component: the buffers, the screen size and look
//! their entries are laid out with, how far the shown buffer is scrolled, the `/search` in
//! it, and how far the user list is scrolled. Scrolling needs every entry's height at the
//! current width, so the buffers, the size and the look live together here. It knows no
//! connection and no App: the app calls it and acts on what it answers (a mention seen, a
//! search that found nothing). Data flows one way, app → view.

use ratatui::layout::{Position, Rect, Size};

use crate::buffers::{Buffers, Measure};
use crate::layout::{self, Look, Widths};

/// A `/search` in the shown buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// What is searched for.
    pub query: String,
    /// The entry shown as the current match.
    pub at: Option<u64>,
}

/// The buffers and how they are scrolled on a screen of a given size.
#[derive(Debug)]
pub struct ScrollView {
    buffers: Buffers,
    look: Look,
    size: Size,
    search: Option<Search>,
    nick_scroll: usize,
}

impl ScrollView {
    /// `buffers` on a terminal of `size`, drawn with `look`, scrolled to the bottom.
    pub fn new(buffers: Buffers, look: Look, size: Size) -> Self {
        Self {
            buffers,
            look,
            size,
            search: None,
            nick_scroll: 0,
        }
    }

    /// The buffers.
    pub fn buffers(&self) -> &Buffers {
        &self.buffers
    }

    /// The buffers, to change.
    pub fn buffers_mut(&mut self) -> &mut Buffers {
        &mut self.buffers
    }

    /// The buffers with the measure their entries are laid out with: what a change that
    /// adds or reshapes entries needs, so that scrolling stays in step.
    pub fn measured(&mut self) -> (&mut Buffers, Measure<'_>) {
        let width = self.message_width();
        let measure = Measure {
            look: &self.look,
            width,
        };
        (&mut self.buffers, measure)
    }

    /// How entries are drawn.
    pub fn look(&self) -> &Look {
        &self.look
    }

    /// The terminal's size.
    pub fn size(&self) -> Size {
        self.size
    }

    /// The terminal changed size: every height is measured again, and no buffer stays
    /// scrolled past its top.
    pub fn resize(&mut self, size: Size) {
        self.size = size;
        let rows = self.view_rows(false);
        let (buffers, measure) = self.measured();
        buffers.remeasure(&measure, rows);
        for index in 0..self.buffers.all().len() {
            if self.buffers.all()[index].scroll > 0 {
                let max = self.max_scroll(index);
                let buffer = self.buffers.get_mut(index);
                buffer.scroll = buffer.scroll.min(max);
            }
        }
    }

    /// Scrolls the shown buffer by `rows` (up when positive). Returns whether it is at
    /// the bottom now, where its unseen messages and mention count as seen.
    pub fn scroll_by(&mut self, rows: isize) -> bool {
        let max = self.max_scroll(self.buffers.current_index());
        let buffer = self.buffers.current_mut();
        buffer.scroll = buffer.scroll.saturating_add_signed(rows).min(max);
        if buffer.scroll == 0 {
            buffer.unseen = 0;
            // A mention that came while scrolled up is seen now.
            buffer.mentioned = false;
            return true;
        }
        false
    }

    /// The furthest buffer `index` can scroll up: with the bottom row given to the scroll
    /// indicator, until its first row is at the top.
    pub fn max_scroll(&mut self, index: usize) -> usize {
        let height = self.view_rows(false);
        let scrolled = self.view_rows(true);
        let (buffers, measure) = self.measured();
        let total = buffers.get_mut(index).total_rows(&measure);
        if total <= height { 0 } else { total - scrolled }
    }

    /// Rows a page scrolls: the rows shown while scrolled, less one kept for context.
    pub fn page(&self) -> usize {
        self.view_rows(true).saturating_sub(1).max(1)
    }

    /// Shows buffer `index`, ending the search and the user list's scroll. Returns
    /// whether it was another buffer than the one shown.
    pub fn switch(&mut self, index: usize) -> bool {
        if index < self.buffers.all().len() && index != self.buffers.current_index() {
            self.buffers.switch(index);
            self.search = None;
            self.nick_scroll = 0;
            return true;
        }
        false
    }

    /// The search, if one is on.
    pub fn search(&self) -> Option<&Search> {
        self.search.as_ref()
    }

    /// Starts searching the shown buffer for `query`, from its newest entry.
    pub fn start_search(&mut self, query: String) {
        self.search = Some(Search { query, at: None });
    }

    /// Ends the search, if one is on.
    pub fn end_search(&mut self) {
        self.search = None;
    }

    /// Moves the search to the next match, older or newer than the current one, and
    /// scrolls it to the middle of the pane; or says why it cannot.
    pub fn search_step(&mut self, older: bool) -> Result<(), String> {
        let Some(search) = &self.search else {
            return Err("no search; /search text starts one".to_owned());
        };
        let matches = |text: Option<&str>| {
            text.is_some_and(|t| layout::find_ignoring_case(t, &search.query).is_some())
        };
        let entries = self.buffers.current().entries();
        let position = search
            .at
            .and_then(|seq| entries.iter().position(|e| e.seq == seq));
        let found = if older {
            let end = position.unwrap_or(entries.len());
            entries.range(..end).rev().find(|e| matches(e.kind.text()))
        } else {
            let start = position.map_or(entries.len(), |p| p + 1);
            entries.range(start..).find(|e| matches(e.kind.text()))
        };
        let Some(seq) = found.map(|e| e.seq) else {
            let query = &search.query;
            let which = if older { "older" } else { "newer" };
            return Err(match search.at {
                None => format!("no match for {query:?}"),
                Some(_) => format!("no {which} match for {query:?}"),
            });
        };
        let index = self.buffers.current_index();
        let view = self.view_rows(true);
        let (buffers, measure) = self.measured();
        let rows_below = buffers
            .get_mut(index)
            .rows_below(seq, &measure)
            .unwrap_or(0);
        let max = self.max_scroll(index);
        let scroll = rows_below.saturating_sub(view / 2).min(max);
        let buffer = self.buffers.current_mut();
        buffer.scroll = scroll;
        if scroll == 0 {
            buffer.unseen = 0;
        }
        if let Some(search) = &mut self.search {
            search.at = Some(seq);
        }
        Ok(())
    }

    /// How far the user list is scrolled.
    pub fn nick_scroll(&self) -> usize {
        self.nick_scroll
    }

    /// Scrolls the user list a row up or down.
    pub fn scroll_nicks(&mut self, up: bool) {
        if up {
            self.nick_scroll = self.nick_scroll.saturating_sub(1);
        } else {
            self.nick_scroll += 1;
        }
    }

    /// Message rows on screen: one fewer while scrolled, for the indicator.
    fn view_rows(&self, scrolled: bool) -> usize {
        let height = usize::from(self.messages_area().height);
        if scrolled {
            height.saturating_sub(1).max(1)
        } else {
            height.max(1)
        }
    }

    fn messages_area(&self) -> Rect {
        layout::panes(Rect::from((Position::ORIGIN, self.size)))
            .map_or(Rect::default(), |p| p.messages)
    }

    fn message_width(&self) -> Widths {
        let pane = usize::from(self.messages_area().width).max(1);
        Widths {
            pane,
            screen: usize::from(self.size.width).max(pane),
        }
    }
}

#[cfg(test)]
mod tests {
    use chat_proto::{RoomName, UserName};

    use super::*;
    use crate::buffers::BufferId;

    fn view() -> ScrollView {
        let look = Look {
            me: UserName::parse("alice").expect("a valid name"),
            time_format: "%H:%M".to_owned(),
        };
        ScrollView::new(Buffers::new(100), look, Size::new(80, 24))
    }

    #[test]
    fn switching_buffers_ends_the_search_and_the_user_list_scroll() {
        let mut view = view();
        let room = RoomName::parse("#rust").expect("a valid room");
        let index = view.buffers_mut().open(BufferId::Room(room));
        view.start_search("hello".to_owned());
        view.scroll_nicks(false);
        assert!(
            !view.switch(view.buffers().current_index()),
            "the same buffer"
        );
        assert!(view.search().is_some());
        assert!(view.switch(index));
        assert_eq!(view.search(), None);
        assert_eq!(view.nick_scroll(), 0);
    }

    #[test]
    fn a_search_step_says_why_it_did_not_move() {
        let mut view = view();
        assert_eq!(
            view.search_step(true),
            Err("no search; /search text starts one".to_owned())
        );
        view.start_search("hello".to_owned());
        assert_eq!(
            view.search_step(true),
            Err("no match for \"hello\"".to_owned())
        );
        assert!(view.scroll_by(5), "nothing to scroll: still at the bottom");
    }
}
