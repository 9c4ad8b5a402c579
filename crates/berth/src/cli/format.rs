//! Docker's `--format` for list verbs: `table` (the default columns), `table TEMPLATE` (a header
//! row from the fields' column names, then rows), `json` (one JSON object per line) or a bare
//! `TEMPLATE` (one line per row). Templates use the subset [`render::template`] knows; `\t` and
//! `\n` written literally on the command line become a tab and a newline, as in Docker.

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use crate::render;

/// Rows (JSON objects with Docker's field names) printed per `format`. `columns` maps each
/// field to its table header, in the default table's order; `default` is the default table's
/// template.
pub(crate) fn print_rows(
    w: &mut dyn Write,
    format: Option<&str>,
    rows: &[Value],
    columns: &[(&str, &str)],
    default: &str,
) -> Result<()> {
    let headers: serde_json::Map<String, Value> = columns
        .iter()
        .map(|(field, header)| ((*field).to_owned(), Value::String((*header).to_owned())))
        .collect();
    let format = match format.unwrap_or("table") {
        f if f.trim() == "table" => format!("table {default}"),
        f => f.to_owned(),
    };
    render::formatted(w, &format, &Value::Object(headers), rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(format: Option<&str>) -> String {
        let rows = vec![
            serde_json::json!({"ID": "abc", "Tag": "latest"}),
            serde_json::json!({"ID": "defghi", "Tag": "1"}),
        ];
        let mut w = Vec::new();
        print_rows(
            &mut w,
            format,
            &rows,
            &[("ID", "IMAGE ID"), ("Tag", "TAG")],
            "{{.ID}}\t{{.Tag}}",
        )
        .expect("format");
        String::from_utf8(w).expect("utf-8")
    }

    #[test]
    fn table_json_and_bare_templates() {
        assert_eq!(
            out(None),
            "IMAGE ID   TAG\nabc        latest\ndefghi     1\n"
        );
        assert_eq!(out(Some("table {{.Tag}}")), "TAG\nlatest\n1\n");
        assert_eq!(out(Some("{{.ID}}:{{.Tag}}")), "abc:latest\ndefghi:1\n");
        assert_eq!(
            out(Some("json")),
            "{\"ID\":\"abc\",\"Tag\":\"latest\"}\n{\"ID\":\"defghi\",\"Tag\":\"1\"}\n"
        );
    }
}
