//! Text tables: columns padded by display width, so Chinese names (two columns a character on a
//! terminal) line up with Latin text.

use unicode_width::UnicodeWidthStr;

/// `s` followed by spaces up to `columns` terminal columns (never cut).
pub fn left(s: &str, columns: usize) -> String {
    format!("{s}{}", " ".repeat(columns.saturating_sub(s.width())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_text_takes_two_columns_a_character() {
        assert_eq!(left("王工（SH）", 12), "王工（SH）  ");
        assert_eq!(left("abc", 5), "abc  ");
        // Too long: kept whole.
        assert_eq!(left("上海办事处", 4), "上海办事处");
        // Rows of mixed scripts end at the same column.
        let rows = [
            left("王工（SH）", 16),
            left("Wang (SH)", 16),
            left("销售部·高", 16),
        ];
        assert!(rows.iter().all(|r| r.width() == 16), "{rows:?}");
    }
}
