//! Docker-shaped tables.

use std::io::Write;

use anyhow::{Result, bail};
use engine::{Image, Timestamp, human_duration, human_size};

/// `docker images`: one row per name, `<none>` for an unnamed image.
pub(crate) fn images(w: &mut dyn Write, list: &[Image], quiet: bool) -> Result<()> {
    let now = Timestamp::now();
    let mut rows = Vec::new();
    for img in list {
        let id = img
            .config_digest
            .hex()
            .get(..12)
            .unwrap_or_default()
            .to_owned();
        if quiet {
            writeln!(w, "{id}")?;
            continue;
        }
        let created = img.created.map_or("N/A".to_owned(), |t| {
            format!("{} ago", human_duration(now.secs() - t.secs()))
        });
        let size = human_size(img.size);
        let names: Vec<(String, String)> = if img.names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            img.names.iter().map(|n| split_reference(n)).collect()
        };
        for (repo, tag) in names {
            rows.push([repo, tag, id.clone(), created.clone(), size.clone()]);
        }
    }
    if !quiet {
        table(
            w,
            &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
            &rows,
        )?;
    }
    Ok(())
}

fn split_reference(name: &str) -> (String, String) {
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].rfind(':') {
        Some(i) => (name[..last + i].to_owned(), name[last + i + 1..].to_owned()),
        None => (name.to_owned(), "<none>".to_owned()),
    }
}

/// Columns padded to the widest cell plus three spaces, as Docker's tabwriter does.
fn table<const N: usize>(
    w: &mut dyn Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> Result<()> {
    let mut all = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    all.extend(rows.iter().map(|r| r.to_vec()));
    tabwrite(w, &all)
}

/// Docker's tabwriter (minimum cell width 10, padding 3, the last cell unpadded): rows of
/// cells, each line trimmed at the end.
pub(crate) fn tabwrite(w: &mut dyn Write, rows: &[Vec<String>]) -> Result<()> {
    tabwrite_min(w, rows, 10)
}

/// [`tabwrite`] with another minimum cell width (`docker top` uses 20).
pub(crate) fn tabwrite_min(w: &mut dyn Write, rows: &[Vec<String>], min: usize) -> Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for r in rows {
        // A cell is padded only when another follows it on its line.
        for (i, cell) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            widths[i] = widths[i].max((cell.chars().count() + 3).max(min));
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i].saturating_sub(cell.chars().count())));
            }
        }
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Docker's `--format` for lists: `table TEMPLATE` (a header row made by rendering the
/// template over `headers`, then tab-aligned rows), `json` (one JSON object a line), or a bare
/// template (one line per row, no header). `\t` in the format is a tab.
pub(crate) fn formatted(
    w: &mut dyn Write,
    format: &str,
    headers: &serde_json::Value,
    rows: &[serde_json::Value],
) -> Result<()> {
    let format = format.replace("\\t", "\t");
    if format.trim() == "json" {
        for r in rows {
            writeln!(w, "{r}")?;
        }
        return Ok(());
    }
    if let Some(t) = format.trim_start().strip_prefix("table") {
        let t = t.trim_start();
        let mut lines = vec![split_tabs(&template(t, headers)?)];
        for r in rows {
            lines.push(split_tabs(&template(t, r)?));
        }
        return tabwrite(w, &lines);
    }
    for r in rows {
        writeln!(w, "{}", template(&format, r)?)?;
    }
    Ok(())
}

fn split_tabs(line: &str) -> Vec<String> {
    line.split('\t').map(str::to_owned).collect()
}

/// A signal by name (`TERM`, `SIGTERM`) or number.
pub(crate) fn signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Ok(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        _ => bail!("invalid signal: {s}"),
    })
}

/// Pretty JSON with a trailing newline, as `docker inspect` prints it.
pub(crate) fn json(out: &mut dyn Write, value: &[serde_json::Value]) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A subset of Go's text/template as `docker inspect -f` uses it: literal text, `{{.A.B}}`
/// (strings bare, other values as JSON, a missing field as `<no value>`), `{{json .A}}`,
/// `{{json .}}`, and Docker's `{{.Label "key"}}`: the key's value in the field `Labels` (a
/// map, or Docker's `k=v,k=v` text).
pub(crate) fn template(format: &str, value: &serde_json::Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("template: unclosed action in {format:?}");
        };
        let action = after[..end].trim();
        rest = &after[end + 2..];
        let (json, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        let Some(path) = path.strip_prefix('.') else {
            bail!("template: unsupported action {{{{{action}}}}}");
        };
        if let Some((method, arg)) = path.split_once(' ') {
            let arg = arg.trim().trim_matches('"');
            if method != "Label" {
                bail!("template: unsupported action {{{{{action}}}}}");
            }
            out.push_str(&label(value.get("Labels"), arg));
            continue;
        }
        let mut v = Some(value);
        for key in path.split('.').filter(|k| !k.is_empty()) {
            v = v.and_then(|v| field(v, key));
        }
        match (v, json) {
            (None, false) => out.push_str("<no value>"),
            (None, true) => out.push_str("null"),
            (Some(serde_json::Value::String(s)), false) => out.push_str(s),
            (Some(v), _) => out.push_str(&v.to_string()),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A field by its JSON name, else by its Go name (`{{.ID}}` for `"id"`, `{{.TimeNano}}` for
/// `"timeNano"`: Docker's templates see Go struct fields whose JSON names differ in case).
fn field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    v.get(key).or_else(|| {
        v.as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, x)| x)
    })
}

/// One label's value from a `Labels` field: a JSON map, or Docker's `k=v,k=v` text.
fn label(labels: Option<&serde_json::Value>, key: &str) -> String {
    match labels {
        Some(serde_json::Value::Object(m)) => m
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned(),
        Some(serde_json::Value::String(s)) => s
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag() {
        assert_eq!(
            split_reference("busybox:latest"),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            split_reference("localhost:5000/x:1"),
            ("localhost:5000/x".into(), "1".into())
        );
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal("SIGTERM").ok(), Some(15));
        assert_eq!(signal("kill").ok(), Some(9));
        assert_eq!(signal("3").ok(), Some(3));
        assert!(signal("BOGUS").is_err());
    }

    #[test]
    fn templates_like_docker_inspect_f() {
        let v = serde_json::json!({"Name": "/web", "State": {"Pid": 42, "Running": true}});
        assert_eq!(
            template("{{.Name}} {{.State.Pid}} {{ .State.Running }}", &v).expect("ok"),
            "/web 42 true"
        );
        assert_eq!(
            template("{{json .State}}", &v).expect("ok"),
            r#"{"Pid":42,"Running":true}"#
        );
        assert_eq!(template("{{.Nope}}", &v).expect("ok"), "<no value>");
        assert!(template("{{.Name", &v).is_err());
        assert!(template("{{range .X}}", &v).is_err());
        let ev = serde_json::json!({"id": "abc", "timeNano": 5});
        assert_eq!(template("{{.ID}} {{.TimeNano}}", &ev).expect("ok"), "abc 5");
        let row = serde_json::json!({"Labels": "a=1,b=2"});
        assert_eq!(template(r#"{{.Label "b"}}"#, &row).expect("ok"), "2");
        assert_eq!(
            template("{{json .}}", &row).expect("ok"),
            r#"{"Labels":"a=1,b=2"}"#
        );
    }

    #[test]
    fn tables_align_like_docker_tabwriter() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["CONTAINER ID".to_owned(), "NAMES".to_owned()],
            vec!["abc".to_owned(), "web".to_owned()],
        ];
        tabwrite(&mut out, &rows).expect("ok");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "CONTAINER ID   NAMES\nabc            web\n"
        );
        let mut out = Vec::new();
        let headers = serde_json::json!({"ID": "CONTAINER ID", "Image": "IMAGE"});
        let row = serde_json::json!({"ID": "abc", "Image": "busybox"});
        formatted(&mut out, "table {{.ID}}\\t{{.Image}}", &headers, &[row]).expect("ok");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "CONTAINER ID   IMAGE\nabc            busybox\n"
        );
    }
}
