//! Naming a member of staff the way people type: by id, by exact name, or by a name written
//! differently (half-width or no brackets, spaces, case, look-alike letters: the folding duplicate
//! customers are detected with), or by a unique beginning of one (`王工` for `王工（SH）` when only
//! one person's name starts so). A miss names the closest names, so a typo is one step from fixed.

use funnel_domain::fold_name;
use funnel_types::StaffId;

/// What a name designates among the staff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(StaffId),
    /// Several people answer to it: their ids and names.
    Ambiguous(Vec<(StaffId, String)>),
    /// No one: the closest names, best first (at most three).
    Missing(Vec<String>),
}

/// Looks `text` up among `staff` (id and name of each, former staff included).
pub fn lookup<'a>(staff: impl IntoIterator<Item = (StaffId, &'a str)>, text: &str) -> Lookup {
    let staff: Vec<(StaffId, &str)> = staff.into_iter().collect();
    let text = text.trim();
    if let Some((id, _)) = staff.iter().find(|(id, _)| id.to_string() == text) {
        return Lookup::Found(*id);
    }
    let key = fold_name(text);
    let keys: Vec<String> = staff.iter().map(|(_, n)| fold_name(n)).collect();
    let levels: [&dyn Fn(usize) -> bool; 3] =
        [&|i| staff[i].1 == text, &|i| keys[i] == key, &|i| {
            !key.is_empty() && keys[i].starts_with(&key)
        }];
    for matches in levels {
        let hits: Vec<usize> = (0..staff.len()).filter(|i| matches(*i)).collect();
        match hits.as_slice() {
            [] => continue,
            [one] => return Lookup::Found(staff[*one].0),
            many => {
                return Lookup::Ambiguous(
                    many.iter()
                        .map(|i| (staff[*i].0, staff[*i].1.to_string()))
                        .collect(),
                );
            }
        }
    }
    let mut ranked: Vec<(f64, &str)> = staff
        .iter()
        .zip(&keys)
        .map(|((_, name), k)| (strsim::normalized_levenshtein(&key, k), *name))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    ranked.dedup_by(|a, b| a.1 == b.1);
    Lookup::Missing(
        ranked
            .into_iter()
            .take(3)
            .map(|(_, n)| n.to_string())
            .collect(),
    )
}

/// The English and Chinese messages of a miss or an ambiguity (`None` when found).
pub fn explain(text: &str, found: &Lookup) -> Option<(String, String)> {
    match found {
        Lookup::Found(_) => None,
        Lookup::Missing(closest) if closest.is_empty() => Some((
            format!("no member of staff `{text}`"),
            format!("没有员工 `{text}`"),
        )),
        Lookup::Missing(closest) => Some((
            format!(
                "no member of staff `{text}`; the closest names: {}",
                closest.join(", ")
            ),
            format!("没有员工 `{text}`；最接近的姓名：{}", closest.join("、")),
        )),
        // People who share the very name: only the id tells them apart.
        Lookup::Ambiguous(hits) if hits.iter().all(|(_, n)| n == text) => {
            let ids = hits
                .iter()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Some((
                format!(
                    "{} members of staff are called `{text}` ({ids}); give the id of the one you mean",
                    hits.len()
                ),
                format!(
                    "有 {} 位员工名为 `{text}`（{ids}）；请给出所指员工的编号",
                    hits.len()
                ),
            ))
        }
        Lookup::Ambiguous(hits) => {
            let list = hits
                .iter()
                .map(|(id, n)| format!("{n} ({id})"))
                .collect::<Vec<_>>()
                .join(", ");
            Some((
                format!(
                    "{} members of staff answer to `{text}`: {list}; give the full name or the id",
                    hits.len()
                ),
                format!(
                    "有 {} 位员工与 `{text}` 相符：{list}；请给出全名或编号",
                    hits.len()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staff() -> Vec<(StaffId, String)> {
        [
            "王工（SH）",
            "王工（BJ）",
            "李工（SH）",
            "陈经理（SH）",
            "销售部·高",
        ]
        .iter()
        .map(|n| (StaffId::derived(n), n.to_string()))
        .collect()
    }

    fn find(text: &str) -> Lookup {
        let s = staff();
        lookup(s.iter().map(|(id, n)| (*id, n.as_str())), text)
    }

    #[test]
    fn names_are_found_however_the_brackets_and_spaces_are_written() {
        let chen = StaffId::derived("陈经理（SH）");
        for text in [
            "陈经理（SH）",
            "陈经理(SH)",
            "陈经理 sh",
            "陈经理SH",
            " 陈经理（ｓｈ） ",
            "陈经理",
        ] {
            assert_eq!(find(text), Lookup::Found(chen), "{text}");
        }
        assert_eq!(find(&chen.to_string()), Lookup::Found(chen));
        assert_eq!(
            find("销售部 高"),
            Lookup::Found(StaffId::derived("销售部·高"))
        );
    }

    #[test]
    fn a_shared_beginning_is_ambiguous_and_says_who() {
        let Lookup::Ambiguous(hits) = find("王工") else {
            panic!("{:?}", find("王工"));
        };
        let names: Vec<&str> = hits.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"王工（SH）") && names.contains(&"王工（BJ）"));
        let (en, zh) = explain("王工", &find("王工")).expect("a message");
        assert!(
            en.contains("王工（BJ）") && zh.contains("请给出全名或编号"),
            "{en} / {zh}"
        );
    }

    #[test]
    fn people_sharing_a_name_are_told_apart_by_id_only() {
        let (a, b) = (StaffId::derived("a"), StaffId::derived("b"));
        let staff = [(a, "王工（SH）"), (b, "王工（SH）")];
        let found = lookup(staff, "王工（SH）");
        assert_eq!(
            found,
            Lookup::Ambiguous(vec![(a, "王工（SH）".into()), (b, "王工（SH）".into())])
        );
        let (en, zh) = explain("王工（SH）", &found).expect("a message");
        assert!(
            en.contains("2 members of staff are called") && en.contains(&a.to_string()),
            "{en}"
        );
        assert!(zh.contains("请给出所指员工的编号"), "{zh}");
    }

    #[test]
    fn a_near_miss_lists_the_closest_names() {
        let found = find("陈经里（SH）");
        let Lookup::Missing(closest) = &found else {
            panic!("{found:?}");
        };
        assert_eq!(closest.first().map(String::as_str), Some("陈经理（SH）"));
        assert!(closest.len() <= 3);
        let (en, zh) = explain("陈经里（SH）", &found).expect("a message");
        assert!(en.contains("the closest names: 陈经理（SH）"), "{en}");
        assert!(zh.contains("最接近的姓名：陈经理（SH）"), "{zh}");
    }
}
