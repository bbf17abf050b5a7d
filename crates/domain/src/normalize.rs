//! The normalised customer key used to detect duplicate registrations (§5.2).
//!
//! Two names are the same customer when they are equal after: Unicode compatibility normalisation
//! (NFKC: full-width letters, digits and brackets become their half-width forms), lower-casing, and
//! removing every character that is neither a letter nor a digit (spaces, punctuation, symbols such as
//! `·`, `（`, `-`). So `万科·城市花园（二期）` and `万科 城市花园(二期)` collide. That is key version 1.
//!
//! Key version 2 (every registration since) also folds look-alikes: each character of a version-1
//! key that is not a Han ideograph is replaced by its prototype in the Unicode confusables table
//! (the UTS #39 skeleton, from `unicode-security`), so a Cyrillic `а` or a Greek `ο` in a Latin name
//! gives the key of the Latin name. Han ideographs are kept as they are: the table maps ordinary
//! simplified characters to variants or to other scripts (`一` to Katakana `ー`, `市` to `巿`, `丿`
//! to `/`, `士` to `土`), which would merge different Chinese customers and make keys unreadable.
//! Because a version-2 key is a fixed point of version 1 too, and the lead id is derived from the
//! key text alone, a version-1 key that folding leaves unchanged (every Chinese name, most Latin
//! ones) names the same lead under both versions.

use unicode_normalization::UnicodeNormalization;
use unicode_script::{Script, UnicodeScript};
use unicode_security::confusable_detection::skeleton;

/// The key version of new registrations.
pub const KEY_VERSION: u8 = 2;

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

/// Folds look-alikes in one name: its version-1 normalisation, then each character that is not a
/// Han ideograph replaced by its UTS #39 prototype and normalised again, repeated until the result
/// no longer changes (a folded name is its own folding).
pub fn fold_name(name: &str) -> String {
    let mut key = normalise_name(name);
    for _ in 0..8 {
        let next = normalise_name(&fold_once(&key));
        if next == key {
            break;
        }
        key = next;
    }
    key
}

fn fold_once(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut rest = String::new();
    for c in key.chars() {
        if c.script() == Script::Han {
            out.extend(skeleton(&rest));
            rest.clear();
            out.push(c);
        } else {
            rest.push(c);
        }
    }
    out.extend(skeleton(&rest));
    out
}

/// The key of a customer project under key version 1: normalised customer name and project name,
/// joined by `/`. Either part may be empty (a company-level lead has no project). The leads
/// registered before key version 2 carry this key; it must never change.
pub fn customer_key_v1(customer_name: &str, project_name: &str) -> String {
    format!(
        "{}/{}",
        normalise_name(customer_name),
        normalise_name(project_name)
    )
}

/// The key of a customer project under the current key version ([`KEY_VERSION`]): folded customer
/// name and project name, joined by `/`.
pub fn customer_key(customer_name: &str, project_name: &str) -> String {
    format!("{}/{}", fold_name(customer_name), fold_name(project_name))
}

/// The current-version key of a customer whose version-1 key is `v1_key` (a recorded
/// `customer_key`): the same as [`customer_key`] of the names it came from.
pub fn upgrade_key(v1_key: &str) -> String {
    let (customer, project) = v1_key.split_once('/').unwrap_or((v1_key, ""));
    format!("{}/{}", fold_name(customer), fold_name(project))
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

    /// (customer, project) → key and lead id under key version 1 and key version 2. The version-1
    /// columns are the keys and ids of leads already in logs: they must never change. The
    /// version-2 columns are those of every registration since; changing them would split a
    /// customer registered later from the same customer registered earlier.
    const GOLDEN: &[(&str, &str, &str, &str, &str, &str)] = &[
        (
            "万科",
            "城市花园二期",
            "万科/城市花园二期",
            "043f74dc-5f9c-5c62-ac56-90cc79079d06",
            "万科/城市花园二期",
            "043f74dc-5f9c-5c62-ac56-90cc79079d06",
        ),
        (
            "万科·城市花园（二期）",
            "",
            "万科城市花园二期/",
            "bc8965d1-f1ca-5937-86d9-29e49a568760",
            "万科城市花园二期/",
            "bc8965d1-f1ca-5937-86d9-29e49a568760",
        ),
        (
            "ＧＥＭＤＡＬＥ　Ｐａｒｋ",
            "Phase ２",
            "gemdalepark/phase2",
            "07c1bc59-0d8f-54f0-b650-0f2c57f49768",
            "gerndalepark/phase2",
            "9c89422d-5505-5fcb-852d-1767fd8dfbdb",
        ),
        (
            "Vanke",
            "",
            "vanke/",
            "8cc5415a-0dd3-5af0-a050-ad4fc63787aa",
            "vanke/",
            "8cc5415a-0dd3-5af0-a050-ad4fc63787aa",
        ),
        (
            "V\u{430}nke",
            "",
            "v\u{430}nke/",
            "137fd633-64ea-530a-ac43-5915852bf4cd",
            "vanke/",
            "8cc5415a-0dd3-5af0-a050-ad4fc63787aa",
        ),
        (
            "Modern Homes",
            "Block 10",
            "modernhomes/block10",
            "15f596e7-b855-5fec-9ac7-131b003b1856",
            "rnodernhornes/blocklo",
            "97bcce69-c1f9-5734-bfb4-889838903a70",
        ),
        (
            "长城物业",
            "一期",
            "长城物业/一期",
            "4655252a-ee50-5f5d-800e-46dc266fa507",
            "长城物业/一期",
            "4655252a-ee50-5f5d-800e-46dc266fa507",
        ),
    ];

    #[test]
    fn golden_keys_and_lead_ids_of_both_versions() {
        use funnel_types::LeadId;
        for (customer, project, v1, id1, v2, id2) in GOLDEN {
            assert_eq!(customer_key_v1(customer, project), *v1, "{customer}");
            assert_eq!(LeadId::derived(v1).to_string(), *id1, "{customer}");
            assert_eq!(customer_key(customer, project), *v2, "{customer}");
            assert_eq!(LeadId::derived(v2).to_string(), *id2, "{customer}");
            assert_eq!(upgrade_key(v1), *v2, "{customer}");
        }
    }

    #[test]
    fn look_alikes_from_other_scripts_collide() {
        // Cyrillic а and е, Greek ο and Α (NFKC already folds mathematical and full-width letters).
        for look_alike in [
            "V\u{430}nke",
            "Vank\u{435}",
            "G\u{435}md\u{430}le",
            "Vanke P\u{3bf}rk",
            "\u{391}CME",
        ] {
            let plain = look_alike
                .replace('\u{430}', "a")
                .replace('\u{435}', "e")
                .replace('\u{3bf}', "o")
                .replace('\u{391}', "A");
            assert_ne!(normalise_name(look_alike), normalise_name(&plain));
            assert_eq!(fold_name(look_alike), fold_name(&plain), "{look_alike}");
        }
        assert_ne!(fold_name("Vanke"), fold_name("Gemdale"));
    }

    #[test]
    fn chinese_names_keep_their_key() {
        assert_eq!(
            customer_key("万科·城市花园（二期）", ""),
            customer_key("万科 城市花园(二期)", "")
        );
        assert_eq!(fold_name("万科·城市花园（二期）"), "万科城市花园二期");
        // Every CJK unified ideograph (and extension A) is its own folding, so a Chinese name's
        // key is the same under both versions: full-width forms are folded by NFKC already.
        for c in ('\u{3400}'..='\u{4dbf}').chain('\u{4e00}'..='\u{9fff}') {
            let s = c.to_string();
            if normalise_name(&s) == s {
                assert_eq!(fold_name(&s), s, "U+{:04X}", u32::from(c));
            }
        }
        assert_eq!(fold_name("ＡＢＣ１２３"), fold_name("abc123"));
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(s in "\\PC{0,40}") {
            let once = normalise_name(&s);
            prop_assert_eq!(normalise_name(&once), once.clone());
            prop_assert!(once.chars().all(char::is_alphanumeric));
        }

        #[test]
        fn folding_is_idempotent(s in "\\PC{0,40}") {
            let once = fold_name(&s);
            prop_assert_eq!(fold_name(&once), once.clone());
            prop_assert_eq!(normalise_name(&once), once.clone());
            prop_assert!(once.chars().all(char::is_alphanumeric));
        }

        #[test]
        fn upgrading_a_recorded_key_gives_the_current_key(c in "\\PC{0,20}", p in "\\PC{0,20}") {
            let key = customer_key(&c, &p);
            prop_assert_eq!(upgrade_key(&customer_key_v1(&c, &p)), key.clone());
            prop_assert_eq!(upgrade_key(&key), key);
        }

        #[test]
        fn inserted_spaces_and_punctuation_do_not_matter(s in "[a-z万科花园0-9]{1,20}", p in prop::sample::select(vec![" ", "·", "（", "）", "-", "　", ",", "。"])) {
            let mid = s.chars().count() / 2;
            let with: String = s.chars().take(mid).chain(p.chars()).chain(s.chars().skip(mid)).collect();
            prop_assert_eq!(normalise_name(&with), normalise_name(&s));
            prop_assert_eq!(fold_name(&with), fold_name(&s));
        }
    }
}
