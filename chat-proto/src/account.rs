//! Accounts on the wire: [`Password`] and [`LoginLine`], the first line a client sends.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::{ParseError, UserName};

/// Fewest bytes a new password may have.
pub const MIN_PASSWORD_BYTES: usize = 8;

/// A password as the client sent it. Its memory is wiped when it is dropped, and its
/// `Debug` shows nothing, so it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps `password`: non-empty, and free of control characters.
    pub fn parse(password: &str) -> Result<Self, ParseError> {
        if password.is_empty() {
            return Err(ParseError::EmptyPassword);
        }
        if password.chars().any(char::is_control) {
            return Err(ParseError::ControlCharacter);
        }
        Ok(Self(Zeroizing::new(password.to_owned())))
    }

    /// Like [`Password::parse`], and at least [`MIN_PASSWORD_BYTES`] long: for a new one.
    pub fn parse_new(password: &str) -> Result<Self, ParseError> {
        let password = Self::parse(password)?;
        if password.0.len() < MIN_PASSWORD_BYTES {
            return Err(ParseError::WeakPassword);
        }
        Ok(password)
    }

    /// The password's bytes, for hashing.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Writes the password itself: only a client sending it to the server should.
impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first line: `<name>`, or `<name> <password>` for a registered name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLine {
    /// Who logs in.
    pub name: UserName,
    /// Everything after the first space, if there is one.
    pub password: Option<Password>,
}

impl FromStr for LoginLine {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let (name, password) = match line.split_once(' ') {
            Some((name, password)) => (name, Some(Password::parse(password)?)),
            None => (line, None),
        };
        Ok(Self {
            name: UserName::parse(name)?,
            password,
        })
    }
}

impl fmt::Display for LoginLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.password {
            Some(password) => write!(f, "{} {password}", self.name),
            None => self.name.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NameError;

    #[test]
    fn everything_after_the_first_space_is_the_password() {
        let login: LoginLine = "bob correct horse battery".parse().unwrap();
        assert_eq!(login.name.as_str(), "bob");
        assert_eq!(
            login.password.as_ref().map(Password::expose),
            Some(&b"correct horse battery"[..])
        );
        assert_eq!(login.to_string(), "bob correct horse battery");
        let plain: LoginLine = "bob".parse().unwrap();
        assert_eq!(plain.password, None);
        assert_eq!("bob ".parse::<LoginLine>(), Err(ParseError::EmptyPassword));
        assert_eq!(
            "b b b".parse::<LoginLine>().map(|l| l.name),
            Ok(UserName::parse("b").unwrap())
        );
        assert_eq!(
            "bo,b pw".parse::<LoginLine>(),
            Err(ParseError::Name(NameError::InvalidChar(',')))
        );
    }

    #[test]
    fn a_password_never_shows_in_debug_or_errors() {
        let login: LoginLine = "bob hunter2hunter2".parse().unwrap();
        assert!(!format!("{login:?}").contains("hunter2"));
        assert_eq!(Password::parse_new("short"), Err(ParseError::WeakPassword));
        assert!(!ParseError::WeakPassword.to_string().contains("short"));
        assert!(Password::parse_new("12345678").is_ok());
    }
}
