//! `--config FILE`: a TOML file whose keys are the long flags (`max-per-ip = 20`, or
//! `max_per_ip`), read as if they were given before the command line's own flags, so
//! that a flag overrides the file. The file's values go through the flags' own parsers:
//! one set of rules and one set of messages for both.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// Keys a file may not set: they are about the command line itself.
const NOT_IN_A_FILE: [&str; 3] = ["config", "help", "version"];

/// `cli` (the program name first) with `file`'s settings put before its own flags. A
/// repeatable flag given on the command line replaces the file's list instead of adding
/// to it; a single one overrides it because clap keeps the last value.
pub fn merged_args(
    command: &Command,
    cli: &[OsString],
    cli_matches: &ArgMatches,
    file: &Path,
) -> anyhow::Result<Vec<OsString>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the config file {}", file.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing the config file {}", file.display()))?;
    let mut args = cli[..1].to_vec();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()))
            .filter(|_| !NOT_IN_A_FILE.contains(&flag.as_str()))
        else {
            bail!("unknown key `{key}` in the config file {}", file.display());
        };
        let id = arg.get_id().as_str();
        let action = arg.get_action();
        if matches!(action, ArgAction::Append)
            && cli_matches.value_source(id) == Some(ValueSource::CommandLine)
        {
            continue;
        }
        let problem = |what: &str| {
            anyhow::anyhow!("key `{key}` in the config file {}: {what}", file.display())
        };
        match (action, value) {
            (ArgAction::SetTrue, toml::Value::Boolean(on)) => {
                if *on {
                    args.push(format!("--{flag}").into());
                }
            }
            (ArgAction::SetTrue, _) => return Err(problem("expects true or false")),
            (ArgAction::Count, toml::Value::Integer(n)) => {
                for _ in 0..*n {
                    args.push(format!("--{flag}").into());
                }
            }
            (ArgAction::Append, toml::Value::Array(items)) => {
                for item in items {
                    args.push(format!("--{flag}").into());
                    args.push(scalar(item).ok_or_else(|| problem("expects a list of values"))?);
                }
            }
            (_, value) => {
                args.push(format!("--{flag}").into());
                args.push(scalar(value).ok_or_else(|| problem("expects a value"))?);
            }
        }
    }
    args.extend_from_slice(&cli[1..]);
    Ok(args)
}

/// A string, number or date as the flag's text.
fn scalar(value: &toml::Value) -> Option<OsString> {
    match value {
        toml::Value::String(s) => Some(s.into()),
        toml::Value::Integer(n) => Some(n.to_string().into()),
        toml::Value::Float(x) => Some(x.to_string().into()),
        toml::Value::Datetime(d) => Some(d.to_string().into()),
        toml::Value::Boolean(_) | toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, value_parser};

    fn command() -> Command {
        Command::new("t")
            .args_override_self(true)
            .arg(Arg::new("config").long("config"))
            .arg(
                Arg::new("max_per_ip")
                    .long("max-per-ip")
                    .value_parser(value_parser!(u32)),
            )
            .arg(Arg::new("strict").long("strict").action(ArgAction::SetTrue))
            .arg(Arg::new("oper").long("oper").action(ArgAction::Append))
    }

    fn merged(file: &str, cli: &[&str]) -> anyhow::Result<ArgMatches> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("chat.toml");
        std::fs::write(&path, file)?;
        let cli: Vec<OsString> = std::iter::once("t")
            .chain(cli.iter().copied())
            .map(Into::into)
            .collect();
        let command = command();
        let first = command.clone().try_get_matches_from(&cli)?;
        let args = merged_args(&command, &cli, &first, &path)?;
        Ok(command.try_get_matches_from(args)?)
    }

    #[test]
    fn a_flag_overrides_the_file_and_a_list_on_the_command_line_replaces_the_file_s() {
        let file = "max-per-ip = 5\nstrict = true\noper = [\"root\", \"admin\"]\n";
        let m = merged(file, &[]).expect("merged");
        assert_eq!(m.get_one::<u32>("max_per_ip"), Some(&5));
        assert!(m.get_flag("strict"));
        let opers: Vec<&String> = m.get_many("oper").expect("opers").collect();
        assert_eq!(opers, ["root", "admin"]);
        let m = merged(file, &["--max-per-ip", "7", "--oper", "eve"]).expect("merged");
        assert_eq!(m.get_one::<u32>("max_per_ip"), Some(&7));
        let opers: Vec<&String> = m.get_many("oper").expect("opers").collect();
        assert_eq!(opers, ["eve"]);
        let m = merged("max_per_ip = 9", &[]).expect("snake case works too");
        assert_eq!(m.get_one::<u32>("max_per_ip"), Some(&9));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key_and_the_file() {
        let unknown = merged("max-per-iq = 5", &[]).expect_err("refused");
        let text = format!("{unknown:#}");
        assert!(
            text.contains("unknown key `max-per-iq`") && text.contains("chat.toml"),
            "{text}"
        );
        let wrong = merged("strict = \"yes\"", &[]).expect_err("refused");
        assert!(format!("{wrong:#}").contains("`strict`"), "{wrong:#}");
        let nested = merged("config = \"other.toml\"", &[]).expect_err("refused");
        assert!(
            format!("{nested:#}").contains("unknown key `config`"),
            "{nested:#}"
        );
        let bad = merged("max-per-ip = \"many\"", &[]).expect_err("the flag's parser refuses it");
        assert!(format!("{bad:#}").contains("many"), "{bad:#}");
    }
}
