//! The INI reader: Python-configparser-like syntax, so that an original Syncto `.ini` loads
//! unchanged, and the raw settings it yields, each remembering where it came from (file and
//! line, or environment variable) so that every error can say so.

use std::fmt;

use crate::startup::StartupError;

/// Where a raw value came from, for messages.
#[derive(Debug, Clone)]
pub(super) enum Whence {
    /// File label and 1-based line.
    Line(String, usize),
    /// Environment variable name.
    Env(String),
    /// The settings table's default.
    Builtin,
}

impl fmt::Display for Whence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Whence::Line(file, line) => write!(f, "{file}:{line}"),
            Whence::Env(var) => write!(f, "environment variable {var}"),
            Whence::Builtin => f.write_str("built-in default"),
        }
    }
}

/// One setting as written: key (with any prefix, for messages), unquoted value, origin.
#[derive(Debug, Clone)]
pub(super) struct Raw {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) whence: Whence,
}

impl Raw {
    /// A default of the settings table, as if written in a file.
    pub(super) fn builtin(key: &str, value: &str) -> Raw {
        Raw {
            key: key.to_string(),
            value: value.to_string(),
            whence: Whence::Builtin,
        }
    }

    /// The standard "invalid value" error; `value` is echoed, so never use it for secrets.
    pub(super) fn invalid(&self, expected: &str) -> StartupError {
        StartupError::new(format!(
            "{}: invalid value for `{}`: expected {expected}, got {:?}",
            self.whence, self.key, self.value
        ))
    }

    pub(super) fn number(&self, min: u64, max: u64, what: &str) -> Result<u64, StartupError> {
        let v = self.value.as_str();
        let parsed = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            v.parse::<u64>().ok()
        } else {
            None
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(&format!("{what} between {min} and {max}"))),
        }
    }

    pub(super) fn boolean(&self) -> Result<bool, StartupError> {
        parse_bool(&self.value)
            .ok_or_else(|| self.invalid("true or false (or yes/no, on/off, 1/0)"))
    }

    /// Comma and/or whitespace separated items.
    pub(super) fn list(&self) -> Vec<String> {
        self.value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

/// Lines of the two sections we read, in file order, and the keys of every other section
/// (so that a misspelt section or a key in the wrong place can be named).
#[derive(Default)]
pub(super) struct Ini {
    pub(super) app: Vec<(String, String, usize)>,
    pub(super) server: Vec<(String, String, usize)>,
    pub(super) others: Vec<Other>,
}

/// A section that is not read: its name as written, its header's line, its keys and lines.
pub(super) struct Other {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) keys: Vec<(String, usize)>,
}

/// Python-configparser-like reader: `[section]`, `key = value` / `key: value` (split at the
/// first `=` or `:`), lower-cased keys, `#`/`;` full-line comments, indented continuation
/// lines joined with "\n", no inline comments, no interpolation.
pub(super) fn read_ini(text: &str, file: &str) -> Result<Ini, StartupError> {
    enum Section {
        None,
        App,
        Server,
        Other,
    }
    let mut ini = Ini::default();
    let mut section = Section::None;
    let mut in_value = false; // the previous item line was a key: indented lines continue it
    for (index, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if in_value && line.starts_with([' ', '\t']) {
            let items = match section {
                Section::App => &mut ini.app,
                Section::Server => &mut ini.server,
                _ => continue,
            };
            if let Some((_, value, _)) = items.last_mut() {
                value.push('\n');
                value.push_str(trimmed);
            }
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            section = match name.trim() {
                "app:main" => Section::App,
                "server:main" => Section::Server,
                other => {
                    ini.others.push(Other {
                        name: other.to_string(),
                        line: number,
                        keys: Vec::new(),
                    });
                    Section::Other
                }
            };
            in_value = false;
            continue;
        }
        let Some((key, value)) = trimmed
            .split_once(['=', ':'])
            .filter(|(k, _)| !k.trim().is_empty())
        else {
            return Err(StartupError::new(format!(
                "{file}:{number}: syntax error: expected `[section]`, `key = value`, a comment or an indented continuation line"
            )));
        };
        let key = key.trim().to_lowercase();
        let item = (key, value.trim().to_string(), number);
        match section {
            Section::None => {
                return Err(StartupError::new(format!(
                    "{file}:{number}: `{}` appears before any [section] header",
                    item.0
                )));
            }
            Section::App => ini.app.push(item),
            Section::Server => ini.server.push(item),
            Section::Other => {
                if let Some(other) = ini.others.last_mut() {
                    other.keys.push((item.0, number));
                }
            }
        }
        in_value = true;
    }
    Ok(ini)
}

/// A value wrapped in matching single or double quotes loses them (Python-literal coercion
/// in cliquet is why the original development.ini quotes its secret).
pub(super) fn unquote(value: &str) -> &str {
    let v = value.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// `true/yes/on/1` → true, `false/no/off/0` → false (case-insensitive), anything else → None.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::listen::Listen;
    use std::path::Path;

    fn ini(text: &str) -> Result<Config, StartupError> {
        Config::from_ini(text, Path::new("test.ini"), &[])
    }

    #[test]
    fn booleans() {
        for (word, value) in [("true", true), ("TRUE", true), ("yes", true), ("On", true)] {
            assert_eq!(parse_bool(word), Some(value), "{word}");
        }
        for (word, value) in [("1", true), ("false", false), ("No", false), ("off", false)] {
            assert_eq!(parse_bool(word), Some(value), "{word}");
        }
        assert_eq!(parse_bool("0"), Some(false));
        for word in ["enabled", "", "2", "y"] {
            assert_eq!(parse_bool(word), None, "{word}");
        }
    }

    #[test]
    fn ini_syntax() {
        let text = "\u{feff}# comment\n; another\n[app:main]\n  # indented comment\n\
                    cors_origins = https://a.example,\n  https://b.example\n\thttps://c.example\n\
                    project_name: 'demo'\nstatsd_url = udp://[::1]:8125/\n\
                    [uwsgi]\nworkers = 14\n  continued = here\n\
                    [server:main]\nhost = ::1\nport = 0\nthreads = 4\n";
        let c = ini(text).unwrap();
        let origins = [
            "https://a.example",
            "https://b.example",
            "https://c.example",
        ];
        assert_eq!(c.cors_origins, origins);
        assert_eq!(
            (c.project_name.as_str(), c.statsd_prefix.as_str()),
            ("demo", "demo")
        );
        assert_eq!(c.statsd_url.as_deref(), Some("[::1]:8125"));
        assert_eq!(c.listen, Listen::Tcp("[::1]:0".into()));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let e = ini("[app:main]\nproject_name = x\nthis line is wrong\n")
            .unwrap_err()
            .message;
        assert!(e.starts_with("test.ini:3: syntax error"), "{e}");
        for (text, line) in [
            ("key = value", 1),
            ("[app:main]\n= value", 2),
            ("[broken", 1),
        ] {
            let e = ini(text).unwrap_err().message;
            assert!(e.starts_with(&format!("test.ini:{line}: ")), "{text}: {e}");
        }
    }
}
