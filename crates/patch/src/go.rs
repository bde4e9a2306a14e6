//! The bits of Go's behaviour that Kubernetes' patch code leaks into its results and messages:
//! `fmt`'s `%v` of decoded JSON, `reflect.TypeOf` names, and `sort.SliceStable` (whose result is
//! observable because strategicpatch sorts with a comparator that is not a strict order).

use serde_json::{Map, Value};

/// `fmt.Sprintf("%v", v)` of a value decoded by Kubernetes' JSON decoder (integers as `int64`,
/// other numbers as `float64`, objects as `map[string]interface{}`, printed with sorted keys).
pub fn v(value: &Value) -> String {
    let mut out = String::new();
    write_v(&mut out, value);
    out
}

/// The length of Go's `json.Marshal` of `value` (as evanphx/json-patch measures a copied
/// value), counted without building it: strings escaped as Go does (`<`, `>`, `&`, U+2028,
/// U+2029 and control characters as `\u00XX` except `\b \f \n \r \t`, as Go 1.22 on), numbers as
/// serde_json writes them.
pub fn marshal_len(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Number(n) => n.to_string().len(),
        Value::String(s) => string_len(s),
        Value::Array(list) => {
            2 + list.len().saturating_sub(1) + list.iter().map(marshal_len).sum::<usize>()
        }
        Value::Object(map) => {
            2 + map.len().saturating_sub(1)
                + map
                    .iter()
                    .map(|(k, v)| string_len(k) + 1 + marshal_len(v))
                    .sum::<usize>()
        }
    }
}

/// The length of a string as Go's `encoding/json` writes it (HTML-safe, quotes included).
fn string_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => 6,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// `%v` of a `map[string]interface{}`.
pub fn v_map(map: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_map(&mut out, map);
    out
}

/// `%v` of a `[]interface{}`.
pub fn v_list(list: &[Value]) -> String {
    let mut out = String::from("[");
    for (i, item) in list.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(&mut out, item);
    }
    out.push(']');
    out
}

fn write_v(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(s),
        Value::Array(list) => out.push_str(&v_list(list)),
        Value::Object(map) => write_map(out, map),
    }
}

fn write_map(out: &mut String, map: &Map<String, Value>) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push_str("map[");
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push(':');
        write_v(out, &map[k]);
    }
    out.push(']');
}

/// `%s` of an `interface{}`: strings as they are, anything else as Go's `%!s(type=value)`.
pub fn s(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "%!s(<nil>)".to_string(),
        Value::Array(_) | Value::Object(_) => v(value),
        other => format!("%!s({}={})", type_name(other), v(other)),
    }
}

/// `reflect.TypeOf(v)` printed with `%s`.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The JSON type name encoding/json uses in `cannot unmarshal X into Go value of type ...`.
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `sort.SliceStable`, step for step: insertion sort on blocks of 20, then `symMerge`.
/// Unlike Rust's sorts it accepts any `less`, even one that is not a strict weak order, and
/// gives the same result as Go for it.
pub fn sort_slice_stable<T>(data: &mut [T], less: impl Fn(&T, &T) -> bool) {
    let n = data.len();
    let less_at = |data: &[T], i: usize, j: usize| less(&data[i], &data[j]);
    let mut block = 20;
    let (mut a, mut b) = (0, block);
    while b <= n {
        insertion_sort(data, a, b, &less_at);
        a = b;
        b += block;
    }
    insertion_sort(data, a, n, &less_at);
    while block < n {
        let (mut a, mut b) = (0, 2 * block);
        while b <= n {
            sym_merge(data, a, a + block, b, &less_at);
            a = b;
            b += 2 * block;
        }
        let m = a + block;
        if m < n {
            sym_merge(data, a, m, n, &less_at);
        }
        block *= 2;
    }
}

fn insertion_sort<T>(
    data: &mut [T],
    a: usize,
    b: usize,
    less: &impl Fn(&[T], usize, usize) -> bool,
) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && less(data, j, j - 1) {
            data.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn sym_merge<T>(
    data: &mut [T],
    a: usize,
    m: usize,
    b: usize,
    less: &impl Fn(&[T], usize, usize) -> bool,
) {
    if m - a == 1 {
        let (mut i, mut j) = (m, b);
        while i < j {
            let h = (i + j) / 2;
            if less(data, h, a) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        for k in a..i - 1 {
            data.swap(k, k + 1);
        }
        return;
    }
    if b - m == 1 {
        let (mut i, mut j) = (a, m);
        while i < j {
            let h = (i + j) / 2;
            if !less(data, m, h) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = m;
        while k > i {
            data.swap(k, k - 1);
            k -= 1;
        }
        return;
    }
    let mid = (a + b) / 2;
    let n = mid + m;
    let (mut start, mut r) = if m > mid { (n - b, mid) } else { (a, m) };
    let p = n - 1;
    while start < r {
        let c = (start + r) / 2;
        if !less(data, p - c, c) {
            start = c + 1;
        } else {
            r = c;
        }
    }
    let end = n - start;
    if start < m && m < end {
        rotate(data, start, m, end);
    }
    if a < start && start < mid {
        sym_merge(data, a, start, mid, less);
    }
    if mid < end && end < b {
        sym_merge(data, mid, end, b, less);
    }
}

fn rotate<T>(data: &mut [T], a: usize, m: usize, b: usize) {
    let (mut i, mut j) = (m - a, b - m);
    while i != j {
        if i > j {
            swap_range(data, m - i, m, j);
            i -= j;
        } else {
            swap_range(data, m - i, m + j - i, i);
            j -= i;
        }
    }
    swap_range(data, m - i, m, i);
}

fn swap_range<T>(data: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        data.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_like_go() {
        assert_eq!(
            v(&json!({"b": [1, "x", null], "a": {"c": true}, "f": 1.5})),
            "map[a:map[c:true] b:[1 x <nil>] f:1.5]"
        );
        assert_eq!(s(&json!("delete")), "delete");
        assert_eq!(s(&json!(5)), "%!s(int64=5)");
        assert_eq!(type_name(&json!([])), "[]interface {}");
        assert_eq!(type_name(&json!({})), "map[string]interface {}");
    }

    #[test]
    fn stable_sort_matches_a_stable_sort_for_strict_orders() {
        // Long enough to exercise symMerge.
        let mut data: Vec<(u32, usize)> = (0..200).map(|i| ((i * 7919) % 13, i as usize)).collect();
        let mut want = data.clone();
        want.sort_by_key(|x| x.0);
        sort_slice_stable(&mut data, |a, b| a.0 < b.0);
        assert_eq!(data, want);
    }

    #[test]
    fn stable_sort_tolerates_inconsistent_comparators() {
        // strategicpatch's "less" is true whenever either side is unknown.
        let order = [3, 1, 2];
        let pos = |x: &i32| order.iter().position(|o| o == x);
        let mut data = vec![1, 9, 2, 3, 8];
        sort_slice_stable(&mut data, |a, b| match (pos(a), pos(b)) {
            (Some(x), Some(y)) => x < y,
            _ => true,
        });
        // Go's insertion sort gives this exact sequence.
        let mut go = vec![1, 9, 2, 3, 8];
        for i in 1..go.len() {
            let mut j = i;
            while j > 0
                && match (pos(&go[j]), pos(&go[j - 1])) {
                    (Some(x), Some(y)) => x < y,
                    _ => true,
                }
            {
                go.swap(j, j - 1);
                j -= 1;
            }
        }
        assert_eq!(data, go);
    }
}
