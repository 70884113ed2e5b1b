//! The IRCv3 capabilities the listener offers, as a set a connection has enabled.

/// One capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// `away-notify`: `AWAY` when someone sharing a channel goes away or comes back.
    AwayNotify,
    /// `sasl`: log in with `AUTHENTICATE PLAIN` during registration.
    Sasl,
    /// `server-time`: a `time` tag on messages.
    ServerTime,
    /// `message-tags`: a `msgid` tag (the native id) on room messages, and client tags.
    MessageTags,
    /// `echo-message`: the sender gets its own messages back.
    EchoMessage,
    /// `batch`: grouped replies (history, labeled responses).
    Batch,
    /// `labeled-response`: replies carry the `label` of the command they answer.
    LabeledResponse,
    /// `draft/chathistory`: `CHATHISTORY` over the stored history.
    ChatHistory,
    /// `draft/read-marker`: `MARKREAD` over the account's read markers.
    ReadMarker,
    /// `cap-notify`: implied by `CAP LS 302`; nothing ever changes, so nothing to say.
    CapNotify,
    /// `multi-prefix`: every prefix of a member in `NAMES` and `WHO`. The broker gives
    /// each member one role (an op who is also voiced shows as `@`), so it changes
    /// nothing here.
    MultiPrefix,
    /// `userhost-in-names`: `353` lists members as `nick!user@host`.
    UserhostInNames,
}

impl Cap {
    /// Every capability offered, in the order `CAP LS` lists them.
    pub const ALL: [Cap; 12] = [
        Cap::AwayNotify,
        Cap::Batch,
        Cap::CapNotify,
        Cap::ChatHistory,
        Cap::ReadMarker,
        Cap::EchoMessage,
        Cap::LabeledResponse,
        Cap::MessageTags,
        Cap::MultiPrefix,
        Cap::Sasl,
        Cap::ServerTime,
        Cap::UserhostInNames,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Cap::AwayNotify => "away-notify",
            Cap::Sasl => "sasl",
            Cap::ServerTime => "server-time",
            Cap::MessageTags => "message-tags",
            Cap::EchoMessage => "echo-message",
            Cap::Batch => "batch",
            Cap::LabeledResponse => "labeled-response",
            Cap::ChatHistory => "draft/chathistory",
            Cap::ReadMarker => "draft/read-marker",
            Cap::CapNotify => "cap-notify",
            Cap::MultiPrefix => "multi-prefix",
            Cap::UserhostInNames => "userhost-in-names",
        }
    }

    /// The value `CAP LS 302` gives it, if any.
    pub fn value(self) -> Option<&'static str> {
        match self {
            Cap::Sasl => Some("PLAIN"),
            _ => None,
        }
    }

    /// The capability called `name`.
    pub fn from_name(name: &str) -> Option<Cap> {
        Cap::ALL.into_iter().find(|cap| cap.name() == name)
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The capabilities a connection has enabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Caps(u16);

impl Caps {
    /// Whether `cap` is on.
    pub fn has(self, cap: Cap) -> bool {
        self.0 & cap.bit() != 0
    }

    /// Turns `cap` on or off.
    pub fn set(&mut self, cap: Cap, on: bool) {
        if on {
            self.0 |= cap.bit();
        } else {
            self.0 &= !cap.bit();
        }
    }

    /// The enabled ones, space-separated, for `CAP LIST`.
    pub fn names(self) -> String {
        Cap::ALL
            .into_iter()
            .filter(|cap| self.has(*cap))
            .map(Cap::name)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// As text, for the marker that tells the writer (`caps` in [`crate::irc::outgoing`]).
    pub fn bits(self) -> u16 {
        self.0
    }

    /// From [`Caps::bits`].
    pub fn from_bits(bits: u16) -> Caps {
        Caps(bits)
    }
}

/// What `CAP LS` lists: every capability, with its value for version 302.
pub fn list(v302: bool) -> String {
    Cap::ALL
        .into_iter()
        .map(|cap| match (v302, cap.value()) {
            (true, Some(value)) => format!("{}={value}", cap.name()),
            _ => cap.name().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sets_hold_them() {
        let mut caps = Caps::default();
        for cap in Cap::ALL {
            assert_eq!(Cap::from_name(cap.name()), Some(cap));
            caps.set(cap, true);
        }
        assert_eq!(caps.names().split(' ').count(), Cap::ALL.len());
        caps.set(Cap::Batch, false);
        assert!(!caps.has(Cap::Batch) && caps.has(Cap::Sasl));
        assert_eq!(Caps::from_bits(caps.bits()), caps);
        assert!(list(true).contains("sasl=PLAIN"));
        assert!(!list(false).contains('='));
    }
}
