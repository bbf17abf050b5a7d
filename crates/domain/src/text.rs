//! Checks on the names of people and customers in new commands: no control characters, no
//! bidirectional overrides, isolates or marks (which make a name read differently from how it is
//! stored), and not only invisible characters (which make a name no one can tell apart). Events
//! already in a log are never checked again, so a log written before still replays.

use crate::refusal::{RefusalCode, Rejected, refuse};

/// Bidirectional formatting characters: LRM, RLM, ALM, the embeddings and overrides
/// (U+202A–U+202E) and the isolates (U+2066–U+2069).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Unicode's `Default_Ignorable_Code_Point` property (DerivedCoreProperties.txt, stable since
/// Unicode 5.0): code points that render as nothing when not supported.
pub fn is_default_ignorable(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}'..='\u{1160}' | '\u{17B4}'..='\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// A mainland China mobile number in field `field`, written any common way (`138 0013 8000`,
/// `138-0013-8000`, `+86 13800138000`, full-width digits), as its 11 digits: what chat robots
/// @-mention a person by.
pub fn mobile(field: &str, value: &str) -> Result<String, Rejected> {
    let mut digits = String::new();
    for c in value.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            '０'..='９' => digits.push(char::from(b'0' + (c as u32 - '０' as u32) as u8)),
            ' ' | '-' | '(' | ')' | '\u{3000}' | '－' | '（' | '）' => {}
            '+' | '＋' if digits.is_empty() => {}
            _ => {
                return refuse(
                    RefusalCode::InvalidValue,
                    format!("{field}: `{c}` is not part of a phone number"),
                    format!("{field}：「{c}」不是电话号码中的字符"),
                );
            }
        }
    }
    let national = match digits.strip_prefix("86") {
        Some(rest) if rest.len() == 11 => rest.to_string(),
        _ => digits,
    };
    if national.len() != 11 || !national.starts_with('1') || national.as_bytes()[1] < b'3' {
        return refuse(
            RefusalCode::InvalidValue,
            format!("{field}: a mobile number has 11 digits starting 13 to 19, e.g. 138 0013 8000"),
            format!("{field}：手机号码应为 11 位、以 13 至 19 开头，例如 138 0013 8000"),
        );
    }
    Ok(national)
}

/// A name of a person or customer in field `field`. An empty name passes (whether one is required
/// is the caller's check); anything else must be free of control and bidirectional formatting
/// characters and show at least one visible character.
pub fn name(field: &str, value: &str) -> Result<(), Rejected> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return refuse(
            RefusalCode::ControlCharacter,
            format!(
                "`{field}` contains the control character U+{:04X}; names are plain text on one line",
                u32::from(c)
            ),
            format!(
                "`{field}` 含有控制字符 U+{:04X}；名称须为单行纯文本",
                u32::from(c)
            ),
        );
    }
    if let Some(c) = value.chars().find(|c| is_bidi_control(*c)) {
        return refuse(
            RefusalCode::BidiControl,
            format!(
                "`{field}` contains the bidirectional formatting character U+{:04X}, which makes a name read differently from how it is stored",
                u32::from(c)
            ),
            format!(
                "`{field}` 含有双向文本控制字符 U+{:04X}，会使名称的显示与实际内容不一致",
                u32::from(c)
            ),
        );
    }
    if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_whitespace() || is_default_ignorable(c))
    {
        return refuse(
            RefusalCode::InvisibleName,
            format!("`{field}` has no visible character"),
            format!("`{field}` 没有任何可见字符"),
        );
    }
    Ok(())
}

/// [`name`] for several fields at once, in order.
pub fn names(fields: &[(&str, &str)]) -> Result<(), Rejected> {
    fields
        .iter()
        .try_for_each(|(field, value)| name(field, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(value: &str) -> Option<RefusalCode> {
        name("name", value).err().map(|r| r.refusal.code)
    }

    #[test]
    fn ordinary_names_pass_and_tricks_are_refused() {
        for ok in ["王伟", "Zhang Wei", "O'Brien-Smith", "", "👩‍💻 Li"] {
            assert_eq!(code(ok), None, "{ok:?}");
        }
        assert_eq!(code("Wang\u{0007}"), Some(RefusalCode::ControlCharacter));
        assert_eq!(code("Wang\nLi"), Some(RefusalCode::ControlCharacter));
        for c in [
            '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            assert_eq!(
                code(&format!("ab{c}cd")),
                Some(RefusalCode::BidiControl),
                "{c:?}"
            );
        }
        for invisible in [
            " ",
            "\u{200B}",
            "\u{3000}\u{200D}",
            "\u{FEFF}\u{00AD}",
            "\u{3164}",
        ] {
            assert_eq!(
                code(invisible),
                Some(RefusalCode::InvisibleName),
                "{invisible:?}"
            );
        }
    }
}
