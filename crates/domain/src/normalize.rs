//! The normalised customer key used to detect duplicate registrations (§5.2).
//!
//! Two names are the same customer when they are equal after: Unicode compatibility normalisation
//! (NFKC: full-width letters, digits and brackets become their half-width forms), lower-casing, and
//! removing every character that is neither a letter nor a digit (spaces, punctuation, symbols such as
//! `·`, `（`, `-`). So `万科·城市花园（二期）` and `万科 城市花园(二期)` collide.

use unicode_normalization::UnicodeNormalization;

/// Normalises one name.
///
/// One pass (NFKC, lower-case, keep letters and digits) is not always a fixed point: dropping a
/// space or a symbol can leave two combining marks that count as letters out of canonical order
/// (`"\u{730} \u{5b0}"`) or next to a base they compose with, and lower-casing can itself yield
/// a sequence that NFKC changes. So the pass is repeated until the
/// key no longer changes: a key is its own key, which the duplicate check relies on.
pub fn normalise_name(name: &str) -> String {
    let mut key = normalise_once(name);
    // Each further pass can only reorder, compose or drop what the previous one left; in practice
    // the second pass is already the fixed point. The bound keeps a pathological input finite.
    for _ in 0..8 {
        let next = normalise_once(&key);
        if next == key {
            break;
        }
        key = next;
    }
    key
}

fn normalise_once(name: &str) -> String {
    name.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// The key of a customer project: normalised customer name and project name, joined by `/`.
/// Either part may be empty (a company-level lead has no project).
pub fn customer_key(customer_name: &str, project_name: &str) -> String {
    format!(
        "{}/{}",
        normalise_name(customer_name),
        normalise_name(project_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn full_width_spacing_and_punctuation_collide() {
        assert_eq!(
            normalise_name("万科·城市花园（二期）"),
            normalise_name("万科 城市花园(二期)")
        );
        assert_eq!(normalise_name("万科·城市花园（二期）"), "万科城市花园二期");
        assert_eq!(
            normalise_name("ＧＥＭＤＡＬＥ　Ｐａｒｋ"),
            normalise_name("gemdale park")
        );
        assert_eq!(normalise_name("Vanke-Park, Phase ２"), "vankeparkphase2");
    }

    #[test]
    fn different_projects_do_not_collide() {
        assert_ne!(
            customer_key("万科", "城市花园一期"),
            customer_key("万科", "城市花园二期")
        );
        assert_ne!(customer_key("ab", "c"), customer_key("a", "bc"));
    }

    #[test]
    fn removed_separators_do_not_leave_unnormalised_marks() {
        // Two combining marks, canonical classes 230 (U+0730) and 10 (U+05B0), split by a space.
        let key = normalise_name("\u{730} \u{5b0}");
        assert_eq!(key, "\u{5b0}\u{730}");
        assert_eq!(normalise_name(&key), key);
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(s in "\\PC{0,40}") {
            let once = normalise_name(&s);
            prop_assert_eq!(normalise_name(&once), once.clone());
            prop_assert!(once.chars().all(char::is_alphanumeric));
        }

        #[test]
        fn inserted_spaces_and_punctuation_do_not_matter(s in "[a-z万科花园0-9]{1,20}", p in prop::sample::select(vec![" ", "·", "（", "）", "-", "　", ",", "。"])) {
            let mid = s.chars().count() / 2;
            let with: String = s.chars().take(mid).chain(p.chars()).chain(s.chars().skip(mid)).collect();
            prop_assert_eq!(normalise_name(&with), normalise_name(&s));
        }
    }
}
