//! The settings table against what ships beside the binary: `man/syncto.ini.5` and
//! `etc/syncto.ini` must name every setting, in its section, with its default and its range,
//! so that neither can drift from the table (as `etc/syncto.ini` once claimed a `workers`
//! default that was not the real one).

use super::table::{DefaultValue, SETTINGS, Section};

const MAN: &str = include_str!("../../man/syncto.ini.5");
const SAMPLE: &str = include_str!("../../etc/syncto.ini");

/// roff text to plain text: font macros lose their name (alternating ones join their
/// arguments), other requests vanish, escapes become what they print.
fn plain(roff: &str) -> String {
    let mut out = String::new();
    for line in roff.lines() {
        let text = match line.strip_prefix('.') {
            None => line.to_string(),
            Some(request) => {
                let (name, args) = request.split_once(' ').unwrap_or((request, ""));
                let args = roff_args(args);
                match name {
                    "B" | "I" => args.join(" "),
                    "BR" | "RB" | "BI" | "IB" | "IR" | "RI" => args.concat(),
                    _ => String::new(),
                }
            }
        };
        out.push_str(&text);
        out.push(' ');
    }
    for (escape, text) in [
        ("\\(en", "-"),
        ("\\(em", "-"),
        ("\\-", "-"),
        ("\\&", ""),
        ("\\fB", ""),
        ("\\fI", ""),
        ("\\fR", ""),
        ("\\fP", ""),
    ] {
        out = out.replace(escape, text);
    }
    out
}

/// A roff request's arguments: split at spaces, `"..."` kept whole.
fn roff_args(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push(quoted[..end].to_string());
            rest = quoted.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    out
}

/// The paragraph of the man page that documents `name`: from its `.TP`/`.B name` to the
/// next `.TP`, `.SS` or `.SH`, as plain text.
fn man_entry(name: &str) -> Option<String> {
    let lines: Vec<&str> = MAN.lines().collect();
    let tag = format!(".B {name}");
    let start = lines
        .windows(2)
        .position(|w| w[0] == ".TP" && w[1] == tag)?;
    let body: Vec<&str> = lines[start + 2..]
        .iter()
        .take_while(|l| !l.starts_with(".TP") && !l.starts_with(".SS") && !l.starts_with(".SH"))
        .copied()
        .collect();
    Some(plain(&body.join("\n")))
}

/// The line of the sample file that shows `name` (commented out or not): its section and
/// value, and the comment block just above it.
fn sample_entry(name: &str) -> Option<(Option<Section>, String, String)> {
    let mut section = None;
    let mut comment = String::new();
    for line in SAMPLE.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = match trimmed {
                "[app:main]" => Some(Section::App),
                "[server:main]" => Some(Section::Server),
                _ => None,
            };
            comment.clear();
            continue;
        }
        let uncommented = trimmed.trim_start_matches('#').trim();
        if let Some((key, value)) = uncommented.split_once('=') {
            if key.trim() == name {
                return Some((section, value.trim().to_string(), comment));
            }
        }
        if trimmed.is_empty() {
            comment.clear();
        } else {
            comment.push_str(uncommented);
            comment.push(' ');
        }
    }
    None
}

#[test]
fn the_man_page_documents_every_setting_with_its_default_and_range() {
    let mut missing = Vec::new();
    for s in SETTINGS {
        let Some(entry) = man_entry(s.name) else {
            missing.push(format!("{}: no `.TP` / `.B {}` entry", s.name, s.name));
            continue;
        };
        let lower = entry.to_lowercase();
        match s.default {
            DefaultValue::Value(v) if !lower.contains(&format!("default {}", v.to_lowercase())) => {
                missing.push(format!("{}: does not say `default {v}`: {entry}", s.name))
            }
            _ if !lower.contains("default") => {
                missing.push(format!("{}: says nothing of its default: {entry}", s.name))
            }
            _ => {}
        }
        let range = s.range().map(|(min, max)| format!("{min}-{max}"));
        if let Some(range) = range.filter(|r| !entry.contains(r)) {
            missing.push(format!("{}: does not give the range {range}", s.name));
        }
    }
    assert!(
        missing.is_empty(),
        "man/syncto.ini.5:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_sample_file_shows_every_setting_in_its_section_with_its_default() {
    let mut missing = Vec::new();
    for s in SETTINGS {
        let Some((section, value, comment)) = sample_entry(s.name) else {
            missing.push(format!("{}: no `# {} = ...` line", s.name, s.name));
            continue;
        };
        if section != Some(s.section) {
            missing.push(format!("{}: not under {}", s.name, s.section.header()));
        }
        match s.default {
            DefaultValue::Value(v) if value != v => {
                missing.push(format!("{}: shows {value:?}, the default is {v:?}", s.name))
            }
            // An empty value means the computed default; any other would claim one.
            DefaultValue::Computed(_) if !value.is_empty() => missing.push(format!(
                "{}: shows {value:?} where an empty value (the computed default) belongs",
                s.name
            )),
            _ => {}
        }
        let range = s.range().map(|(min, max)| format!("{min}-{max}"));
        if let Some(range) = range.filter(|r| !comment.contains(r)) {
            missing.push(format!(
                "{}: the comment above does not give the range {range}",
                s.name
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "etc/syncto.ini:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_default_in_the_table_is_a_valid_value_of_its_setting() {
    for s in SETTINGS {
        if let DefaultValue::Value(v) = s.default {
            let mut c = super::Config::default();
            let raw = super::ini::Raw::builtin(s.name, v);
            match s.section {
                Section::App => s.apply(&mut c, &raw).unwrap(),
                // The listen address is checked by the reader, as a file's would be.
                Section::Server => {
                    let text = format!("[server:main]\n{} = {v}\n", s.name);
                    super::settings::read(&text, "t.ini", None, &[]).unwrap();
                }
            }
        }
        // A computed default is what an empty value gives, so it must accept one.
        if let DefaultValue::Computed(_) = s.default {
            assert!(
                s.unset.is_some(),
                "{}: computed default but no empty value",
                s.name
            );
        }
        assert!(!s.doc.is_empty(), "{}", s.name);
    }
}
