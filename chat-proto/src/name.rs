//! [`UserName`]: who a user is on the server, validated when it is made.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::{MAX_NAME_CHARS, NameError};

/// A valid login name: 1 to 32 letters (any script), digits, `_`, `-` or `.`.
/// Cloning is cheap (a reference count), as servers keep a name in many places.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(Arc<str>);

impl UserName {
    /// Checks `name` against the naming rules and wraps it.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if let Some(c) = name.chars().find(|&c| !is_name_char(c)) {
            return Err(NameError::InvalidChar(c));
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong);
        }
        Ok(Self(name.into()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's identity for uniqueness: Unicode compatibility caseless matching
    /// (NFKC and full case folding, UAX #15 and Unicode 3.13 D146), so `Bob` and the
    /// full-width `ｂｏｂ` both fold to `bob`.
    pub fn folded(&self) -> String {
        fold(&self.0)
    }

    /// The name's confusable skeleton (Unicode TR39): two names that could be mistaken for
    /// each other, such as `paypal` and `pаypаl` with Cyrillic `а`, have the same one.
    pub fn skeleton(&self) -> String {
        unicode_security::confusable_detection::skeleton(&self.0).collect()
    }
}

/// Folds `s` for compatibility caseless comparison: NFKD(fold(NFKD(fold(NFD(s))))).
pub fn fold(s: &str) -> String {
    use caseless::Caseless;
    use unicode_normalization::UnicodeNormalization;
    s.nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkd()
        .collect()
}

/// Whether `c` may appear in a name. Some code points are letters to Unicode yet render as
/// nothing (U+3164 HANGUL FILLER and friends); they are refused so that two names that look
/// identical are identical.
fn is_name_char(c: char) -> bool {
    (c.is_alphanumeric() || matches!(c, '_' | '-' | '.')) && !is_default_ignorable(c)
}

/// Unicode's Default_Ignorable_Code_Point set (DerivedCoreProperties.txt): code points a
/// renderer shows as nothing, among them zero-width characters, bidi controls and fillers.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UserName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_names_in_any_script() {
        for name in [
            "alice",
            "Bob_2",
            "a.b-c",
            "张三",
            "Ørjan",
            "Дмитрий",
            "x",
            &"a".repeat(32),
            &"张".repeat(32),
        ] {
            assert_eq!(
                UserName::parse(name).map(|n| n.to_string()),
                Ok(name.to_owned())
            );
        }
    }

    #[test]
    fn refuses_invalid_names() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            (&"a".repeat(33), NameError::TooLong),
            (&"张".repeat(33), NameError::TooLong),
            ("al ice", NameError::InvalidChar(' ')),
            ("a,b", NameError::InvalidChar(',')),
            ("a:b", NameError::InvalidChar(':')),
            ("*", NameError::InvalidChar('*')),
            ("/who", NameError::InvalidChar('/')),
            ("tab\there", NameError::InvalidChar('\t')),
            ("esc\x1b", NameError::InvalidChar('\x1b')),
            ("del\x7f", NameError::InvalidChar('\x7f')),
            ("c1\u{85}", NameError::InvalidChar('\u{85}')),
            ("zero\u{200B}width", NameError::InvalidChar('\u{200B}')),
            ("\u{3164}", NameError::InvalidChar('\u{3164}')),
            ("bob\u{202E}", NameError::InvalidChar('\u{202E}')),
            ("joiner\u{2060}", NameError::InvalidChar('\u{2060}')),
            ("bom\u{FEFF}", NameError::InvalidChar('\u{FEFF}')),
            ("emoji😀", NameError::InvalidChar('😀')),
        ];
        for (name, want) in cases {
            assert_eq!(UserName::parse(name).as_ref(), Err(want), "{name:?}");
        }
    }

    #[test]
    fn reasons_read_well_on_the_wire() {
        assert_eq!(
            NameError::InvalidChar('\u{200B}').to_string(),
            "name may not contain '\\u{200b}'"
        );
        assert_eq!(
            NameError::TooLong.to_string(),
            "name is longer than 32 characters"
        );
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let skeleton = |s: &str| UserName::parse(s).unwrap().skeleton();
        assert_eq!(skeleton("paypal"), skeleton("p\u{430}yp\u{430}l"));
        assert_eq!(skeleton("alice"), skeleton("\u{430}lice"));
        assert_eq!(skeleton("l0gan"), skeleton("lOgan"));
        assert_ne!(skeleton("alice"), skeleton("bob"));
    }

    #[test]
    fn case_and_width_variants_fold_together() {
        let folded = |s: &str| UserName::parse(s).unwrap().folded();
        assert_eq!(folded("Bob"), folded("bob"));
        assert_eq!(
            folded("\u{ff42}\u{ff4f}\u{ff42}"),
            folded("bob"),
            "full-width"
        );
        assert_eq!(
            folded("STRASSE"),
            folded("stra\u{df}e"),
            "full case folding"
        );
        assert_eq!(folded("Ω"), folded("ω"));
        assert_ne!(folded("bob"), folded("bob2"));
        assert_eq!(
            UserName::parse("Bob").unwrap().as_str(),
            "Bob",
            "shown as typed"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_keeps_what_it_accepts(s in "\\PC{0,40}") {
            if let Ok(name) = UserName::parse(&s) {
                prop_assert_eq!(name.as_str(), s.as_str());
                prop_assert!(!name.as_str().contains([' ', ',', ':', '*', '/']));
            }
        }
    }
}
