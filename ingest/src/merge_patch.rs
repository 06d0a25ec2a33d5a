//! JSON Merge Patch (RFC 7396) for `PATCH /v1/actions/{id}`, with one rule of Herald's: a
//! handler patch that changes the handler's type, or names a new secret, replaces what it
//! would otherwise merge into (old URL fields must not leak into a new handler type, and a
//! new `secret` replaces the signing secrets rather than joining them).

use serde_json::Value;

/// Applies `patch` to `target` as RFC 7396 says: objects merge key by key, `null` removes a
/// key, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(fields) = target else {
        return;
    };
    for (key, change) in changes {
        if change.is_null() {
            fields.remove(key);
        } else {
            merge(fields.entry(key.clone()).or_insert(Value::Null), change);
        }
    }
}

/// Applies a patch to an action's JSON.
pub fn patch_action(action: &mut Value, patch: &Value) {
    if let (Some(handler), Some(change)) = (action.get_mut("handler"), patch.get("handler")) {
        let changes_type = change
            .get("type")
            .is_some_and(|kind| Some(kind) != handler.get("type"));
        let new_secret = change.get("secret").is_some() || change.get("secrets").is_some();
        if changes_type {
            *handler = Value::Object(Default::default());
        } else if new_secret && let Some(fields) = handler.as_object_mut() {
            fields.remove("secrets");
            fields.remove("secret");
        }
    }
    merge(action, patch);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merges_as_rfc_7396_says() {
        // The examples of RFC 7396, appendix A.
        let table = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, expected) in table {
            let mut merged = target.clone();
            merge(&mut merged, &patch);
            assert_eq!(merged, expected, "{target} + {patch}");
        }
    }

    #[test]
    fn a_handler_patch_keeps_secrets_unless_it_names_one_or_changes_type() {
        let action = json!({"name": "a", "handler": {"type": "webhook", "url": "https://a",
            "secrets": ["whsec_old"], "timeout_ms": 1000}});
        let table = [
            (
                json!({"handler": {"url": "https://b"}}),
                json!({"type": "webhook", "url": "https://b", "secrets": ["whsec_old"],
                    "timeout_ms": 1000}),
            ),
            (
                json!({"handler": {"secret": "whsec_new"}}),
                json!({"type": "webhook", "url": "https://a", "secret": "whsec_new",
                    "timeout_ms": 1000}),
            ),
            (json!({"handler": {"type": "log"}}), json!({"type": "log"})),
            (
                json!({"handler": {"type": "webhook", "timeout_ms": 5}}),
                json!({"type": "webhook", "url": "https://a", "secrets": ["whsec_old"],
                    "timeout_ms": 5}),
            ),
        ];
        for (patch, handler) in table {
            let mut patched = action.clone();
            patch_action(&mut patched, &patch);
            assert_eq!(patched["handler"], handler, "{patch}");
            assert_eq!(patched["name"], "a");
        }
    }
}
