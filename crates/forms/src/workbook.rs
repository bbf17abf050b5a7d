//! Many forms as one spreadsheet workbook (`.xlsx`, written with `rust_xlsxwriter`): a sheet per
//! form kind, Chinese headers, one row per record for the forms that are a head of labelled values
//! (1 and 6), and every table row for the others (2 to 5), each prefixed with what it is about.
//!
//! Every cell is written as a string (`write_string`), never as a formula: a customer named
//! `=HYPERLINK(…)` stays text, so no prefix is needed as in CSV ([`crate::csv_cell`]).

use crate::{Form, FormKind};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

/// The name of a kind's sheet: its number and Chinese title, without the characters sheet names
/// may not hold (`/` of form 3's title).
pub fn sheet_name(kind: FormKind) -> String {
    let title: String = kind
        .title_zh()
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '、' } else { c })
        .collect();
    format!("表{} {title}", kind.number())
}

/// The workbook of `forms` (any kinds, any order): a sheet for each of the six forms, in the
/// manual's order, empty but for its header when no record has that form.
pub fn to_xlsx(forms: &[Form]) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    for kind in FormKind::ALL {
        let of_kind: Vec<&Form> = forms.iter().filter(|f| f.kind == kind).collect();
        let sheet = book.add_worksheet();
        sheet.set_name(sheet_name(kind))?;
        // The header: what the row is about, then the form's columns (or its head's labels),
        // then who reviewed and filed it.
        let mut header: Vec<&str> = vec!["对象"];
        let table = of_kind.first().is_some_and(|f| !f.columns.is_empty());
        match of_kind.first() {
            Some(f) if table => header.extend(f.columns.iter().map(|c| c.label_zh)),
            Some(f) => header.extend(f.fields.iter().map(|c| c.label_zh)),
            None => {}
        }
        header.extend(["审核", "存档", "来源"]);
        for (col, h) in header.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, *h, &bold)?;
            sheet.set_column_width(col as u16, 18)?;
        }
        let mut row = 1u32;
        for f in of_kind {
            let sign = [
                f.sign_off.reviewed.clone().unwrap_or_default(),
                f.sign_off.filed.clone().unwrap_or_default(),
                f.source.clone(),
            ];
            let lines: Vec<Vec<String>> = if table {
                f.rows.clone()
            } else {
                vec![f.fields.iter().map(|x| x.value.clone()).collect()]
            };
            for line in lines {
                let cells = std::iter::once(f.subject.clone())
                    .chain(line)
                    .chain(sign.iter().cloned());
                for (col, cell) in cells.enumerate() {
                    sheet.write_string(row, col as u16, cell)?;
                }
                row += 1;
            }
        }
        sheet.set_freeze_panes(1, 0)?;
    }
    book.save_to_buffer()
}
