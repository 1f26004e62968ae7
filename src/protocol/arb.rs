//! Random JSON for the property tests (native only).

use proptest::prelude::*;
use serde_json::Value;

/// JSON values built from `leaf` values, nested up to `depth` levels deep
/// in arrays and objects of fewer than `width` entries each, object keys
/// drawn from `key`. Each test gives the leaves and keys that matter to
/// the code under test (message fields, query operators).
pub fn arb_json(leaf: BoxedStrategy<Value>, key: BoxedStrategy<String>, depth: u32, width: usize) -> impl Strategy<Value = Value> {
    leaf.prop_recursive(depth, depth * 8, width as u32, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..width).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..width).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
