//! Docker-shaped tables.

use std::io::Write;

use anyhow::{Result, bail};
use engine::{Container, Image, Timestamp, human_duration, human_size, status_text};

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

/// `docker ps`.
pub(crate) fn ps(w: &mut dyn Write, list: &[Container], quiet: bool, no_trunc: bool) -> Result<()> {
    let now = Timestamp::now();
    let id = |c: &Container| {
        if no_trunc {
            c.id.to_string()
        } else {
            c.id.short().to_owned()
        }
    };
    if quiet {
        for c in list {
            writeln!(w, "{}", id(c))?;
        }
        return Ok(());
    }
    let rows: Vec<[String; 7]> = list
        .iter()
        .map(|c| {
            let mut cmd = engine::bundle::args(&c.config).join(" ");
            if !no_trunc && cmd.chars().count() > 20 {
                cmd = cmd.chars().take(19).collect::<String>() + "…";
            }
            [
                id(c),
                c.image.clone(),
                format!("\"{cmd}\""),
                format!("{} ago", human_duration(now.secs() - c.created.secs())),
                status_text(c, now),
                String::new(),
                c.name.clone(),
            ]
        })
        .collect();
    table(
        w,
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &rows,
    )
}

/// Columns padded to the widest cell plus three spaces, as Docker's tabwriter does.
fn table<const N: usize>(
    w: &mut dyn Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(w, "{}", line(header.to_vec()))?;
    for r in rows {
        writeln!(w, "{}", line(r.iter().map(String::as_str).collect()))?;
    }
    Ok(())
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
/// (strings bare, other values as JSON, a missing field as `<no value>`) and `{{json .A}}`.
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
        let mut v = Some(value);
        for key in path.split('.').filter(|k| !k.is_empty()) {
            v = v.and_then(|v| v.get(key));
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
    }
}
