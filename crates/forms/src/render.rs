//! Forms as a spreadsheet (CSV) and as a printable page (HTML).

use crate::Form;

fn heading(form: &Form) -> String {
    format!(
        "表{} {} / {}",
        form.kind.number(),
        form.kind.title_zh(),
        form.kind.title_en()
    )
}

/// The form as CSV: a byte-order mark (spreadsheet programs then read UTF-8), the title, the head
/// as label/value pairs, then the table with one header row. Fields are quoted as RFC 4180 says.
pub fn to_csv(form: &Form) -> String {
    let mut out = String::from("\u{feff}");
    // An empty cell list is a blank line (a writer would write a lone `""` for it).
    let mut row = |cells: &[&str]| {
        if !cells.is_empty() {
            out.push_str(&record(cells));
        } else {
            out.push_str("\r\n");
        }
    };
    row(&[&heading(form), &form.subject]);
    row(&[]);
    for f in &form.fields {
        row(&[&format!("{} {}", f.label_zh, f.label_en), &f.value]);
    }
    if !form.columns.is_empty() {
        row(&[]);
        let header: Vec<String> = form
            .columns
            .iter()
            .map(|c| format!("{} {}", c.label_zh, c.label_en))
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        row(&header);
        for r in &form.rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            row(&cells);
        }
    }
    row(&[]);
    row(&["来源 Source", &form.source]);
    let (reviewed, filed) = sign_lines(form);
    row(&["审核 Reviewed", &reviewed]);
    row(&["存档 Filed", &filed]);
    if let Some(day) = form.printed {
        row(&["打印日期 Printed", &day.to_string()]);
    }
    out
}

/// The review and filing lines: who and when from the record, or a blank to sign on paper.
fn sign_lines(form: &Form) -> (String, String) {
    let blank = || "____________".to_string();
    (
        form.sign_off.reviewed.clone().unwrap_or_else(blank),
        form.sign_off.filed.clone().unwrap_or_else(blank),
    )
}

/// A cell as it can be put in a spreadsheet safely: a value beginning with `=`, `+`, `-`, `@`, a
/// tab or a carriage return would be read as a formula (`=HYPERLINK(…)` runs when the sheet is
/// opened), so it gets a leading single quote, as OWASP recommends for CSV injection; the value
/// stays readable. A plain number (`-12`, `+3.5`) is left as it is, so sums still work: it cannot
/// be a formula. Funnel itself writes no negative numbers (amounts are never below zero).
pub fn csv_cell(value: &str) -> std::borrow::Cow<'_, str> {
    let risky = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(value) {
        std::borrow::Cow::Owned(format!("'{value}"))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// An optional sign, digits, and at most one decimal point between digits.
fn is_plain_number(value: &str) -> bool {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// One CSV record with its line end, quoted as RFC 4180 says, every cell neutralised
/// ([`csv_cell`]).
fn record(cells: &[&str]) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = w.write_record(cells.iter().map(|c| csv_cell(c).into_owned()));
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// The form as a standalone HTML page laid out for A4 paper: every value escaped, no script, no
/// external resources.
pub fn to_html(form: &Form) -> String {
    let mut body = String::new();
    body.push_str(&format!(
        "<h1>{}<small>{}</small></h1>\n<p class=\"subject\">{}</p>\n<table class=\"head\">\n",
        escape(form.kind.title_zh()),
        escape(&format!(
            "表{} · {}",
            form.kind.number(),
            form.kind.title_en()
        )),
        escape(&form.subject)
    ));
    for f in &form.fields {
        body.push_str(&format!(
            "<tr><th>{}<small>{}</small></th><td>{}</td></tr>\n",
            escape(f.label_zh),
            escape(f.label_en),
            escape(&f.value)
        ));
    }
    body.push_str("</table>\n");
    if !form.columns.is_empty() {
        body.push_str("<table class=\"rows\">\n<thead><tr>");
        for c in &form.columns {
            body.push_str(&format!(
                "<th>{}<small>{}</small></th>",
                escape(c.label_zh),
                escape(c.label_en)
            ));
        }
        body.push_str("</tr></thead>\n<tbody>\n");
        if form.rows.is_empty() {
            body.push_str(&format!(
                "<tr><td colspan=\"{}\" class=\"empty\">（无 none）</td></tr>\n",
                form.columns.len()
            ));
        }
        for r in &form.rows {
            body.push_str("<tr>");
            for cell in r {
                body.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</tbody>\n</table>\n");
    }
    let (reviewed, filed) = sign_lines(form);
    let printed = form
        .printed
        .map(|d| format!("　　打印日期 Printed: {d}"))
        .unwrap_or_default();
    body.push_str(&format!(
        "<p class=\"source\">来源 Source: {}{}</p>\n<p class=\"sign\">审核 Reviewed: {}　　存档 Filed: {}</p>\n",
        escape(&form.source),
        escape(&printed),
        escape(&reviewed),
        escape(&filed)
    ));
    format!(
        r#"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
@page {{ size: A4; margin: 15mm; }}
body {{ font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; font-size: 10.5pt; color: #000; }}
h1 {{ font-size: 16pt; text-align: center; margin: 0 0 2mm; }}
h1 small, th small {{ display: block; font-size: 8pt; font-weight: normal; color: #444; }}
.subject {{ text-align: center; margin: 0 0 4mm; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 5mm; }}
th, td {{ border: 0.3mm solid #000; padding: 1.5mm 2mm; vertical-align: top; text-align: left; }}
table.head th {{ width: 30%; background: #f2f2f2; }}
table.rows thead th {{ background: #f2f2f2; }}
table.rows tr {{ page-break-inside: avoid; }}
.empty {{ text-align: center; color: #666; }}
.source {{ font-size: 8pt; color: #444; }}
.sign {{ margin-top: 8mm; }}
</style>
</head>
<body>
{body}</body>
</html>
"#,
        title = escape(&format!("{} {}", heading(form), form.subject)),
        body = body
    )
}
