//! Reading claims the JWT scheme and token introspection both carry: NumericDates
//! (`exp`, `nbf`) and space-separated or listed strings (`scope`, `scp`, `roles`).

use serde_json::Value;

/// A NumericDate (RFC 7519): a non-negative number of seconds, a fractional one floored.
pub(crate) fn numeric_date(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// Strings from a claim that is a space-separated string or an array of strings.
pub(crate) fn strings(v: Option<&Value>) -> impl Iterator<Item = String> + '_ {
    let (one, many) = match v {
        Some(Value::String(s)) => (Some(s.split_whitespace()), None),
        Some(Value::Array(a)) => (None, Some(a.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter()
        .flatten()
        .chain(many.into_iter().flatten())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(&json!(10)), Some(10));
        assert_eq!(numeric_date(&json!(10.9)), Some(10));
        assert_eq!(numeric_date(&json!(-1)), None);
        assert_eq!(numeric_date(&json!("10")), None);
        assert_eq!(numeric_date(&json!(1e300)), Some(u64::MAX));
    }

    #[test]
    fn strings_from_a_string_or_a_list() {
        let v = json!("a  b");
        assert_eq!(strings(Some(&v)).collect::<Vec<_>>(), ["a", "b"]);
        let v = json!(["a b", 1, "c"]);
        assert_eq!(strings(Some(&v)).collect::<Vec<_>>(), ["a b", "c"]);
        assert_eq!(strings(None).count(), 0);
    }
}
