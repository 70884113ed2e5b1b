//! The config file (`$XDG_CONFIG_HOME/chat-client/config.toml`, or `--config FILE`) and
//! how it meets the command line: a flag given wins, then the environment, then the file,
//! then the default. Unknown keys are errors, so a typo never silently does nothing.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chat_proto::RoomName;
use chrono::NaiveDateTime;
use serde::Deserialize;

use crate::app::JoinPart;

/// Timestamps look like this unless configured.
pub const DEFAULT_TIME_FORMAT: &str = "%H:%M";

/// Everything the config file can set; every key is optional.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Your name.
    pub name: Option<String>,
    /// The server, `host:port`.
    pub addr: Option<String>,
    /// Connect with TLS.
    pub tls: Option<bool>,
    /// A PEM file of certificates to trust instead of the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// A file whose first line is your password.
    pub password_file: Option<PathBuf>,
    /// Rooms to join at login.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Ring the bell (and set the title) on a mention.
    pub bell: Option<bool>,
    /// Words that make a message a mention, as your name does.
    #[serde(default)]
    pub highlight: Vec<String>,
    /// A chrono format for timestamps, such as `%H:%M:%S`.
    pub timestamp_format: Option<String>,
    /// `fold`, `all` or `hide`.
    pub join_part: Option<JoinPart>,
    /// With `fold`, show only the joins and parts of people who spoke lately.
    pub smart_filter: Option<bool>,
    /// Make URLs OSC 8 hyperlinks (on by default).
    pub hyperlinks: Option<bool>,
    /// Start with mouse wheel scrolling on.
    pub mouse: Option<bool>,
    /// Keep a log per buffer in this directory.
    pub log_dir: Option<PathBuf>,
    /// Entries kept per buffer.
    pub scrollback: Option<usize>,
}

/// Where the config file is looked for when `--config` is not given.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("chat-client").join("config.toml"))
}

/// Reads the config: `explicit` must exist; the default path may be missing. Relative
/// paths inside are taken from the file's directory.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<(FileConfig, Option<PathBuf>)> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => match default_path() {
            Some(path) if path.exists() => path,
            _ => return Ok((FileConfig::default(), None)),
        },
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let mut config =
        parse(&text).with_context(|| format!("in the config file {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    for file in [
        &mut config.ca_file,
        &mut config.password_file,
        &mut config.log_dir,
    ]
    .into_iter()
    .flatten()
    {
        *file = dir.join(&*file);
    }
    Ok((config, Some(path)))
}

/// Parses and checks config text.
pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
    let config: FileConfig = toml::from_str(text)?;
    if let Some(format) = &config.timestamp_format {
        check_time_format(format)?;
    }
    for room in &config.rooms {
        RoomName::parse(room).with_context(|| format!("rooms: {room:?}"))?;
    }
    Ok(config)
}

/// A timestamp format is any chrono format that can print a local date and time (entries
/// carry both): `%H:%M`, `%Y-%m-%d %H:%M`, `%a %H:%M`. Only one that names a time zone
/// (`%Z`, `%z`) fails, as would a typo such as `%Q`.
pub fn check_time_format(format: &str) -> anyhow::Result<()> {
    let mut out = String::new();
    if write!(out, "{}", NaiveDateTime::MIN.format(format)).is_err() {
        bail!(
            "timestamp format {format:?} is not a chrono format for a local date and time (try \"%H:%M:%S\" or \"%Y-%m-%d %H:%M\")"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let config = parse(
            r##"
name = "alice"
addr = "chat.example.org:7000"
tls = true
rooms = ["#rust", "#中文"]
bell = false
timestamp_format = "%H:%M:%S"
join_part = "hide"
mouse = true
scrollback = 500
"##,
        )
        .expect("a valid config");
        assert_eq!(config.name.as_deref(), Some("alice"));
        assert_eq!(config.rooms, ["#rust", "#中文"]);
        assert_eq!(config.join_part, Some(JoinPart::Hide));
        assert_eq!(config.bell, Some(false));
    }

    #[test]
    fn mistakes_are_errors_that_say_where() {
        let unknown = parse("nmae = \"alice\"").unwrap_err();
        assert!(
            format!("{unknown:#}").contains("unknown field `nmae`"),
            "{unknown:#}"
        );
        assert!(parse("rooms = [\"rust\"]").is_err());
        assert!(parse("timestamp_format = \"%z %H:%M\"").is_err());
        assert!(parse("timestamp_format = \"%Q\"").is_err());
        assert!(parse("join_part = \"sometimes\"").is_err());
    }

    #[test]
    fn highlight_words_are_a_list() {
        let config = parse("highlight = [\"rust\", \"deploy\"]").expect("a valid file");
        assert_eq!(config.highlight, ["rust", "deploy"]);
    }

    /// Issue 21, defect 4: a format with a date was refused.
    #[test]
    fn any_chrono_format_with_a_date_is_accepted() {
        for format in ["%Y-%m-%d %H:%M", "%a %H:%M", "%d/%m %T", "%H:%M"] {
            let config = parse(&format!("timestamp_format = \"{format}\""));
            assert!(config.is_ok(), "{format}: {config:?}");
        }
    }

    #[test]
    fn relative_paths_are_from_the_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "password_file = \"secret\"\nlog_dir = \"/var/log/chat\"\n",
        )
        .expect("writing");
        let (config, found) = load(Some(&path)).expect("loading");
        assert_eq!(found.as_deref(), Some(path.as_path()));
        assert_eq!(config.password_file, Some(dir.path().join("secret")));
        assert_eq!(config.log_dir, Some(PathBuf::from("/var/log/chat")));
        assert!(load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
