//! Upcasting: older payload versions are turned into the current shape on read, one version step
//! at a time, keyed by (event type, version). Stored events are never rewritten.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Turns a payload of version `n` into version `n + 1`.
pub type Upcaster = fn(serde_json::Value) -> Result<serde_json::Value, String>;

/// A registry of upcasters.
#[derive(Default, Debug, Clone)]
pub struct Upcasters {
    steps: BTreeMap<(String, u16), Upcaster>,
}

impl Upcasters {
    /// The upcasters of this Funnel version. Each step comes with a golden file of the old version
    /// under `crates/codec/tests/golden/` that must keep loading.
    pub fn builtin() -> &'static Upcasters {
        static BUILTIN: OnceLock<Upcasters> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let mut u = Upcasters::default();
            u.register("lead.registered", 1, lead_registered_v1);
            u
        })
    }

    /// Registers the step from `from_version` to `from_version + 1` of `event_type`.
    pub fn register(&mut self, event_type: &str, from_version: u16, step: Upcaster) -> &mut Self {
        self.steps
            .insert((event_type.to_string(), from_version), step);
        self
    }

    /// Applies the steps from `version` up to `target`.
    pub fn upcast(
        &self,
        event_type: &str,
        mut version: u16,
        target: u16,
        mut value: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        while version < target {
            let Some(step) = self.steps.get(&(event_type.to_string(), version)) else {
                return Err(format!(
                    "no upcaster from version {version} of `{event_type}`"
                ));
            };
            value = step(value)?;
            version += 1;
        }
        Ok(value)
    }
}

/// `lead.registered` v1 → v2: every lead registered before v2 has a key made by key rule 1.
fn lead_registered_v1(mut v: serde_json::Value) -> Result<serde_json::Value, String> {
    let obj = v.as_object_mut().ok_or("not an object")?;
    if obj.contains_key("key_version") {
        return Err("`key_version` is not a field of version 1".into());
    }
    obj.insert("key_version".into(), serde_json::json!(1));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split_name(mut v: serde_json::Value) -> Result<serde_json::Value, String> {
        let name = v["name"].as_str().ok_or("no name")?.to_string();
        let (given, family) = name.split_once(' ').unwrap_or((&name, ""));
        v["given_name"] = json!(given);
        v["family_name"] = json!(family);
        v.as_object_mut().ok_or("not an object")?.remove("name");
        Ok(v)
    }

    fn add_reason(mut v: serde_json::Value) -> Result<serde_json::Value, String> {
        v["reason"] = json!("");
        Ok(v)
    }

    #[test]
    fn steps_chain_in_order() {
        let mut u = Upcasters::default();
        u.register("x.happened", 1, split_name)
            .register("x.happened", 2, add_reason);
        let out = u
            .upcast("x.happened", 1, 3, json!({"name": "Li Lei"}))
            .unwrap();
        assert_eq!(
            out,
            json!({"given_name": "Li", "family_name": "Lei", "reason": ""})
        );
        let out = u
            .upcast("x.happened", 2, 3, json!({"given_name": "A"}))
            .unwrap();
        assert_eq!(out, json!({"given_name": "A", "reason": ""}));
    }

    #[test]
    fn a_missing_step_is_an_error_not_a_panic() {
        let u = Upcasters::default();
        assert!(
            u.upcast("x.happened", 1, 2, json!({}))
                .unwrap_err()
                .contains("no upcaster")
        );
        assert_eq!(
            u.upcast("x.happened", 2, 2, json!({"a": 1})).unwrap(),
            json!({"a": 1})
        );
    }
}
