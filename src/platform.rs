//! Number conversions the platform supplies, injected into the protocol
//! core like its clock and its randomness.
//!
//! In the browser they are JavaScript's own: `parseFloat` (correctly
//! rounded) and `String(x)` (the shortest text that reads back to the same
//! double, laid out as `JSON.stringify` does). The wasm then carries no
//! float parsing or printing code of its own (Rust's needs ~20 KB for its
//! tables and algorithms). Natively, for the tests of the layers above,
//! Rust's own algorithms give the same results, laid out the JavaScript way
//! by [`js_layout`] (tested against node).
//!
//! Only the uncommon cases reach here: the JSON reader and writer handle
//! integers, and decimals that need no rounding, themselves.

#[cfg(target_arch = "wasm32")]
mod js {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_name = parseFloat)]
        pub fn parse_float(text: &str) -> f64;
        #[wasm_bindgen(js_name = String)]
        pub fn number_to_string(x: f64) -> String;
    }
}

/// The double nearest to `text`, a JSON number (already checked as one).
pub fn parse_f64(text: &str) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return js::parse_float(text);
    #[cfg(not(target_arch = "wasm32"))]
    return text.parse().unwrap_or(f64::NAN);
}

/// Appends the shortest text that reads back as `x` (finite), as
/// JavaScript's `String(x)` writes it: `0.1`, `1e+21`, `5e-324`, `-0` as `0`.
pub fn write_f64(x: f64, out: &mut String) {
    #[cfg(target_arch = "wasm32")]
    out.push_str(&js::number_to_string(x));
    #[cfg(not(target_arch = "wasm32"))]
    {
        // `{:e}` gives the shortest round-trip digits: "1.2345e3".
        let e = format!("{:e}", x.abs());
        let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let exp: i32 = exp.parse().unwrap_or(0);
        if x < 0.0 {
            out.push('-');
        }
        js_layout(&digits, exp + 1, out);
    }
}

/// Lays out the decimal `0.d₁d₂…dₖ × 10ⁿ` (`digits` without leading or
/// trailing zeros, `n` the position of the point) as ECMAScript's
/// Number::toString does.
#[cfg(not(target_arch = "wasm32"))]
pub fn js_layout(digits: &str, n: i32, out: &mut String) {
    let k = digits.len() as i32;
    if digits == "0" || digits.is_empty() {
        out.push('0');
    } else if k <= n && n <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n - 1 < 0 { '-' } else { '+' });
        out.push_str(&(n - 1).unsigned_abs().to_string());
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    fn show(x: f64) -> String {
        let mut s = String::new();
        write_f64(x, &mut s);
        s
    }

    #[test]
    fn javascript_layout() {
        for (x, js) in [
            (0.1, "0.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-2.5, "-2.5"),
            (-0.0, "0"),
            (3.0, "3"),
            (1234.5678, "1234.5678"),
        ] {
            assert_eq!(show(x), js, "{x:e}");
            assert_eq!(show(x).parse::<f64>().unwrap(), x);
        }
    }

    /// The layout equals node's `String(x)` for doubles of every magnitude
    /// (when node is on the machine).
    #[test]
    fn equals_node_for_random_doubles() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut xs: Vec<f64> = (0..3000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                f64::from_bits(seed)
            })
            .filter(|x| x.is_finite())
            .collect();
        xs.extend((0..400).map(|i| (i as f64 - 200.0) * 0.37e-5 * 10f64.powi(i % 40 - 10)));
        let input = xs.iter().map(|x| format!("{:e}", x)).collect::<Vec<_>>().join(",");
        let Ok(out) = std::process::Command::new("node")
            .arg("-e")
            .arg("process.stdout.write(process.argv[1].split(',').map(t => String(Number(t))).join(','))")
            .arg(&input)
            .output()
        else {
            println!("skipped: no node to compare with");
            return;
        };
        assert!(out.status.success());
        let node = String::from_utf8(out.stdout).unwrap();
        for (x, js) in xs.iter().zip(node.split(',')) {
            // Where two shortest texts exist, Rust's digits may differ from
            // V8's in the last place (the wasm uses V8's own); both read
            // back to x, with the same layout.
            let ours = show(*x);
            assert_eq!(ours.parse::<f64>().unwrap(), *x, "{x:e}");
            assert_eq!(js.parse::<f64>().unwrap(), *x, "{x:e}");
            let shape = |s: &str| s.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect::<String>();
            assert_eq!(shape(&ours), shape(js), "{x:e}");
        }
    }
}
