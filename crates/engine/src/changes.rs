//! `--change` / `-c` of `import` and `commit`: Dockerfile instructions applied to an image's
//! `config` object (Docker's Config as JSON: `Cmd`, `Env`, ...). The instructions Docker allows
//! there: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR,
//! STOPSIGNAL. CMD, ENTRYPOINT and VOLUME take the JSON form (`["a","b"]`) or the shell form
//! (`CMD echo hi` → `["/bin/sh","-c","echo hi"]`).

use serde_json::{Map, Value, json};

use crate::error::{EngineError, Result};

fn bad(what: &'static str, change: &str) -> EngineError {
    EngineError::InvalidValue {
        what,
        value: change.to_owned(),
    }
}

/// Applies each instruction of `changes`, in order, to `config`.
///
/// Errors: an unknown instruction, or a value that does not parse (`InvalidArgument`).
pub fn apply_changes(config: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    for change in changes {
        apply(config, change)?;
    }
    Ok(())
}

fn apply(config: &mut Map<String, Value>, change: &str) -> Result<()> {
    let trimmed = change.trim();
    let (word, rest) = trimmed
        .split_once(char::is_whitespace)
        .map_or((trimmed, ""), |(w, r)| (w, r.trim()));
    let instruction = word.to_ascii_uppercase();
    let known = [
        "CMD",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "LABEL",
        "USER",
        "VOLUME",
        "WORKDIR",
        "STOPSIGNAL",
    ];
    if !known.contains(&instruction.as_str()) {
        return Err(bad(
            "change instruction (allowed: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL)",
            change,
        ));
    }
    if rest.is_empty() && instruction != "CMD" && instruction != "ENTRYPOINT" {
        return Err(bad("change (instruction needs a value)", change));
    }
    match instruction.as_str() {
        "CMD" | "ENTRYPOINT" => {
            let args = match json_array(rest) {
                Some(a) => a,
                None if rest.is_empty() => Vec::new(),
                None => vec!["/bin/sh".into(), "-c".into(), rest.to_owned()],
            };
            let key = if instruction == "CMD" {
                "Cmd"
            } else {
                // Docker: a new ENTRYPOINT drops the Cmd inherited from the base.
                config.insert("Cmd".into(), Value::Null);
                "Entrypoint"
            };
            config.insert(key.into(), json!(args));
        }
        "ENV" => {
            let pairs = key_values(rest).ok_or_else(|| bad("change (ENV KEY=value)", change))?;
            let mut env: Vec<String> = config
                .get("Env")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in pairs {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                env.push(format!("{k}={v}"));
            }
            config.insert("Env".into(), json!(env));
        }
        "LABEL" => {
            let pairs = key_values(rest).ok_or_else(|| bad("change (LABEL key=value)", change))?;
            extend_object(
                config,
                "Labels",
                pairs.into_iter().map(|(k, v)| (k, json!(v))),
            );
        }
        "EXPOSE" => {
            let mut ports = Vec::new();
            for p in rest.split_whitespace() {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let proto = proto.to_ascii_lowercase();
                let valid_port = !port.is_empty()
                    && port
                        .split('-')
                        .all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
                if !valid_port || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                    return Err(bad("change (EXPOSE port[/tcp|udp|sctp])", change));
                }
                ports.push(format!("{port}/{proto}"));
            }
            extend_object(
                config,
                "ExposedPorts",
                ports.into_iter().map(|p| (p, json!({}))),
            );
        }
        "VOLUME" => {
            let paths = json_array(rest)
                .unwrap_or_else(|| rest.split_whitespace().map(str::to_owned).collect());
            extend_object(config, "Volumes", paths.into_iter().map(|p| (p, json!({}))));
        }
        "USER" => {
            config.insert("User".into(), json!(rest));
        }
        "WORKDIR" => {
            let dir = if rest.starts_with('/') {
                rest.to_owned()
            } else {
                let base = config
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .filter(|w| !w.is_empty())
                    .unwrap_or("/");
                format!("{}/{rest}", base.trim_end_matches('/'))
            };
            config.insert("WorkingDir".into(), json!(dir));
        }
        _ => {
            config.insert("StopSignal".into(), json!(rest));
        }
    }
    Ok(())
}

/// Adds `entries` (each mapped to `value`) to the object `config[key]`, made if missing.
fn extend_object(
    config: &mut Map<String, Value>,
    key: &str,
    entries: impl IntoIterator<Item = (String, Value)>,
) {
    let mut map = match config.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    map.extend(entries);
    config.insert(key.to_owned(), Value::Object(map));
}

/// The JSON form: an array of strings.
fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str(s).ok()
}

/// `k=v k2="v 2"`, or the legacy single `KEY value` form.
fn key_values(s: &str) -> Option<Vec<(String, String)>> {
    let words = shell_words(s)?;
    let first = words.first()?;
    if !first.contains('=') {
        // `ENV KEY value with spaces`.
        let (k, v) = s.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    words
        .into_iter()
        .map(|w| {
            let (k, v) = w.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Splits on whitespace, honouring double and single quotes and backslash escapes.
fn shell_words(s: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                cur.push(chars.next()?);
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Value {
        let mut c = Map::new();
        let changes: Vec<String> = changes.iter().map(|s| (*s).to_owned()).collect();
        apply_changes(&mut c, &changes).expect("valid changes");
        Value::Object(c)
    }

    #[test]
    fn cmd_and_entrypoint_take_both_forms() {
        let c = applied(&[r#"CMD ["echo","hi"]"#]);
        assert_eq!(c["Cmd"], json!(["echo", "hi"]));
        let c = applied(&["cmd echo hi there"]);
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi there"]));
        let c = applied(&["CMD x", r#"ENTRYPOINT ["/bin/tool"]"#]);
        assert_eq!(c["Entrypoint"], json!(["/bin/tool"]));
        assert_eq!(c["Cmd"], Value::Null);
    }

    #[test]
    fn env_label_expose_volume_accumulate() {
        let c = applied(&[
            "ENV A=1 B=\"two words\"",
            "ENV A=3",
            "ENV LEGACY some value",
            "LABEL a=b 'c d'=e",
            "EXPOSE 80 53/udp",
            r#"VOLUME ["/data"]"#,
            "VOLUME /x /y",
        ]);
        assert_eq!(c["Env"], json!(["B=two words", "A=3", "LEGACY=some value"]));
        assert_eq!(c["Labels"], json!({"a": "b", "c d": "e"}));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/x": {}, "/y": {}}));
    }

    #[test]
    fn user_workdir_stopsignal() {
        let c = applied(&[
            "USER 1000:1000",
            "WORKDIR /app",
            "WORKDIR sub",
            "STOPSIGNAL SIGINT",
        ]);
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(c["WorkingDir"], json!("/app/sub"));
        assert_eq!(c["StopSignal"], json!("SIGINT"));
    }

    #[test]
    fn bad_changes_are_refused() {
        for bad in [
            "RUN echo",
            "FROM x",
            "ENV",
            "EXPOSE http",
            "EXPOSE 80/xyz",
            "LABEL \"a=b",
        ] {
            let mut c = Map::new();
            assert!(
                apply_changes(&mut c, &[bad.to_owned()]).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
