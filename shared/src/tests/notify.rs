//! Unit tests of `notify`.

use super::*;
use serde_json::json;

#[test]
fn long_lists_are_cut_with_a_count() {
    let v = json!({"deleted": (0..120).collect::<Vec<_>>(), "inner": {"x": [1, 2, 3]}, "n": 1});
    let t = truncate_lists(&v, 50);
    assert_eq!(t["deleted"].as_array().unwrap().len(), 50);
    assert_eq!(t["deleted_omitted"], 70);
    assert_eq!(t["inner"]["x"], json!([1, 2, 3]));
    assert_eq!(t["n"], 1);
}

#[test]
fn subjects_are_sns_safe() {
    let s = clean_subject(&format!("purge: é\n{}", "x".repeat(200)));
    assert_eq!(s.len(), 100);
    assert!(s.starts_with("purge: ??x"));
}
