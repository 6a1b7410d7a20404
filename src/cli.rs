//! Command-line flags: raw arguments only, parsed with lexopt. Validation of the settings
//! themselves happens in [`crate::config`]; this module only checks the shape of each flag.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::listen::Listen;
use crate::logging::LogFormat;

/// `--help` text. Keep in step with `man/syncto.1`.
pub const HELP: &str = concat!(
    "syncto ",
    env!("CARGO_PKG_VERSION"),
    " — the Kinto HTTP API in front of Firefox Sync

USAGE:
    syncto [OPTIONS]

OPTIONS:
    -c, --config PATH         Read settings from the INI file PATH.
        --bind ADDR           Listen on ADDR instead of [server:main] host/port:
                              HOST:PORT, [IPV6]:PORT or unix:/PATH.
        --check-config        Load and validate the configuration, print a summary
                              and exit (status 0 if valid, 1 otherwise).
        --strict              Configuration warnings are errors: exit with status 2
                              after logging them (with --check-config or not).
        --list-settings       Print every setting with its section, default, range
                              and what it does, and exit.
        --log-format FORMAT   Log as `text` or `json` (MozLog); overrides the
                              logging_renderer and log_format settings.
    -h, --help                Print this help and exit.
    -V, --version             Print the version and exit.

CONFIGURATION FILE:
    The first of these is read:
      1. the file given with --config;
      2. the file named by the SYNCTO_INI environment variable;
      3. /etc/syncto/syncto.ini, if it exists;
      4. none: built-in defaults (listen on 127.0.0.1:8000, writes disabled).
    Settings come from [app:main], where each key may be bare or prefixed with
    `syncto.` or `cliquet.`; the listen address from [server:main] host and port.
    Other sections are ignored, so an original Syncto .ini loads unchanged; a
    section that looks like a misspelt [app:main] or [server:main], and a key in
    the wrong one of the two, are named in a warning.

ENVIRONMENT:
    SYNCTO_<SETTING> overrides a setting of the file: the name upper-cased, with
    `.` and `-` replaced by `_`, e.g. SYNCTO_CACHE_CREDENTIALS_TTL_SECONDS=600 or
    SYNCTO_RECORD_TABS_PUT_ENABLED=true (write switches: for any collection, the
    collection being in the variable's name). SYNCTO_HOST and SYNCTO_PORT
    override [server:main]. Any other SYNCTO_* variable is named in a warning.
    Precedence: flags, then environment, then file, then defaults.

See syncto(1) and syncto.ini(5).
"
);

/// What the process should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Serve (the default).
    Run,
    /// `--check-config`: validate, print [`crate::config::Config::summary`], exit.
    CheckConfig,
    /// `--help`: print [`HELP`], exit 0.
    Help,
    /// `--list-settings`: print the settings table, exit 0.
    ListSettings,
    /// `--version`: print the version, exit 0.
    Version,
}

/// The raw command line, before it is merged into a [`crate::config::Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// What to do.
    pub action: Action,
    /// `--config PATH` / `-c PATH`.
    pub config: Option<PathBuf>,
    /// `--bind ADDR`: `host:port`, `[v6]:port` or `unix:/path`.
    pub bind: Option<Listen>,
    /// `--log-format text|json`.
    pub log_format: Option<LogFormat>,
    /// `--strict`: a configuration warning stops the process (status 2).
    pub strict: bool,
}

/// Parses the arguments WITHOUT `argv[0]`. `--help` and `--version` win over everything after
/// them, so `syncto --help --whatever` still prints help. A repeated flag: the last one wins.
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut out = Args {
        action: Action::Run,
        config: None,
        bind: None,
        log_format: None,
        strict: false,
    };
    let mut parser = lexopt::Parser::from_args(args);
    let hint = |e: lexopt::Error| format!("{e} (see syncto --help)");
    while let Some(arg) = parser.next().map_err(hint)? {
        match arg {
            Short('h') | Long("help") => {
                return Ok(Args {
                    action: Action::Help,
                    ..out
                });
            }
            Short('V') | Long("version") => {
                return Ok(Args {
                    action: Action::Version,
                    ..out
                });
            }
            Short('c') | Long("config") => {
                let path = parser.value().map_err(hint)?;
                if path.is_empty() {
                    return Err("--config: expected a file path, got an empty value".into());
                }
                out.config = Some(PathBuf::from(path));
            }
            Long("bind") => {
                let bind = parser.value().map_err(hint)?.string().map_err(hint)?;
                out.bind = Some(bind.parse().map_err(|e| format!("--bind: {e}"))?);
            }
            Long("check-config") => out.action = Action::CheckConfig,
            Long("strict") => out.strict = true,
            Long("list-settings") => out.action = Action::ListSettings,
            Long("log-format") => {
                let value = parser.value().map_err(hint)?.string().map_err(hint)?;
                let format = LogFormat::from_name(&value)
                    .ok_or_else(|| format!("--log-format: expected text or json, got {value:?}"))?;
                out.log_format = Some(format);
            }
            other => return Err(hint(other.unexpected())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn no_flags_means_run_with_nothing_set() {
        let args = run(&[]).unwrap();
        assert_eq!(
            args,
            Args {
                action: Action::Run,
                config: None,
                bind: None,
                log_format: None,
                strict: false
            }
        );
    }

    #[test]
    fn each_flag() {
        assert_eq!(
            run(&["--config", "/etc/a.ini"]).unwrap().config,
            Some(PathBuf::from("/etc/a.ini"))
        );
        assert_eq!(
            run(&["-c", "b.ini"]).unwrap().config,
            Some(PathBuf::from("b.ini"))
        );
        assert_eq!(
            run(&["--config=c.ini"]).unwrap().config,
            Some(PathBuf::from("c.ini"))
        );
        assert_eq!(
            run(&["--bind", "0.0.0.0:9000"]).unwrap().bind,
            Some(Listen::Tcp("0.0.0.0:9000".into()))
        );
        assert_eq!(
            run(&["--bind", "[::1]:0"]).unwrap().bind,
            Some(Listen::Tcp("[::1]:0".into()))
        );
        assert_eq!(
            run(&["--check-config"]).unwrap().action,
            Action::CheckConfig
        );
        assert_eq!(
            run(&["--log-format", "json"]).unwrap().log_format,
            Some(LogFormat::Json)
        );
        assert_eq!(
            run(&["--log-format", "text"]).unwrap().log_format,
            Some(LogFormat::Text)
        );
        assert!(run(&["--strict"]).unwrap().strict);
        assert_eq!(
            run(&["--list-settings"]).unwrap().action,
            Action::ListSettings
        );
        assert_eq!(run(&["--version"]).unwrap().action, Action::Version);
        assert_eq!(run(&["-V"]).unwrap().action, Action::Version);
        assert_eq!(run(&["--help"]).unwrap().action, Action::Help);
        assert_eq!(run(&["-h", "--bogus"]).unwrap().action, Action::Help);
        let all = run(&[
            "-c",
            "x.ini",
            "--bind",
            "unix:/run/syncto.sock",
            "--check-config",
        ])
        .unwrap();
        assert_eq!(all.action, Action::CheckConfig);
        assert_eq!(all.config, Some(PathBuf::from("x.ini")));
    }

    #[test]
    fn bind_unix_socket() {
        let args = run(&["--bind", "unix:/run/syncto/syncto.sock"]).unwrap();
        assert_eq!(
            args.bind,
            Some(Listen::Unix(PathBuf::from("/run/syncto/syncto.sock")))
        );
    }

    #[test]
    fn errors_are_clear() {
        let err = run(&["--bogus"]).unwrap_err();
        assert!(err.contains("--bogus") && err.contains("--help"), "{err}");
        let err = run(&["--config"]).unwrap_err();
        assert!(
            err.contains("missing argument") && err.contains("--config"),
            "{err}"
        );
        let err = run(&["--bind"]).unwrap_err();
        assert!(err.contains("--bind"), "{err}");
        let err = run(&["stray"]).unwrap_err();
        assert!(err.contains("stray"), "{err}");
        for bad in [
            "8000",
            "host:port",
            "unix:",
            "::1:80",
            "a b:80",
            "[::1]:99999",
            ":80",
        ] {
            let err = run(&["--bind", bad]).unwrap_err();
            assert!(err.starts_with("--bind:"), "{bad}: {err}");
        }
        let err = run(&["--log-format", "xml"]).unwrap_err();
        assert!(
            err.contains("--log-format") && err.contains("\"xml\""),
            "{err}"
        );
        assert!(run(&["--config", ""]).is_err());
    }

    #[test]
    fn help_documents_every_flag_and_the_search_order() {
        for needle in [
            "--config",
            "-c,",
            "--bind",
            "unix:",
            "--check-config",
            "--log-format",
            "--version",
            "-V,",
            "--help",
            "-h,",
            "SYNCTO_INI",
            "/etc/syncto/syncto.ini",
            "SYNCTO_<SETTING>",
            "SYNCTO_HOST",
        ] {
            assert!(HELP.contains(needle), "help lacks {needle}");
        }
    }
}
