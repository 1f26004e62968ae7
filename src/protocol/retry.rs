//! The retry schedule: how long to wait before reconnect attempt `n`.

/// When to retry after a lost connection. Defaults are Meteor's.
///
/// The delay before retry number `count` (0-based: the first retry after a
/// loss has `count == 0`) is `min_timeout_ms` while `count < min_count`, then
/// `min(max_timeout_ms, base_timeout_ms × exponent^count)` multiplied by a
/// fresh random factor in `[1 − fuzz/2, 1 + fuzz/2)` on every attempt, so
/// that clients of a restarted server do not all come back at once.
///
/// ```
/// use ddp_live::RetryPolicy;
/// let p = RetryPolicy::default();
/// assert_eq!(p.delay_ms(0, 0.5), 10.0);
/// assert_eq!(p.delay_ms(2, 0.5).round(), 4840.0); // 1000 · 2.2², jitter factor 1.0
/// assert_eq!(p.delay_ms(30, 0.0), 225_000.0); // capped at 300 s, then −25 %
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries that use `min_timeout_ms` (Meteor: 2).
    pub min_count: u32,
    /// Delay of the first `min_count` retries (Meteor: 10 ms).
    pub min_timeout_ms: f64,
    /// Base of the exponential part (Meteor: 1000 ms).
    pub base_timeout_ms: f64,
    /// Growth factor per retry (Meteor: 2.2).
    pub exponent: f64,
    /// Cap before jitter (Meteor: 300000 ms, five minutes).
    pub max_timeout_ms: f64,
    /// Width of the random factor (Meteor: 0.5, i.e. ±25 %).
    pub fuzz: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { min_count: 2, min_timeout_ms: 10.0, base_timeout_ms: 1000.0, exponent: 2.2, max_timeout_ms: 300_000.0, fuzz: 0.5 }
    }
}

impl RetryPolicy {
    /// The delay before retry `count`, given a random number in `[0, 1)`.
    pub fn delay_ms(&self, count: u32, random: f64) -> f64 {
        if count < self.min_count {
            return self.min_timeout_ms;
        }
        let raw = self.base_timeout_ms * self.exponent.powi(count.min(i32::MAX as u32) as i32);
        let capped = if raw.is_finite() { raw.min(self.max_timeout_ms) } else { self.max_timeout_ms };
        let random = if random.is_finite() { random.clamp(0.0, 1.0) } else { 0.5 };
        (capped * (random * self.fuzz + (1.0 - self.fuzz / 2.0))).max(0.0)
    }

    /// Checks that every field is a sensible number.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("minTimeout", self.min_timeout_ms),
            ("baseTimeout", self.base_timeout_ms),
            ("exponent", self.exponent),
            ("maxTimeout", self.max_timeout_ms),
            ("fuzz", self.fuzz),
        ];
        for (name, v) in fields {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("retry.{name} must be a finite number ≥ 0, got {}", show_number(v)));
            }
        }
        if self.fuzz > 2.0 {
            return Err(format!("retry.fuzz must be at most 2, got {}", show_number(self.fuzz)));
        }
        Ok(())
    }
}

/// A number for an error message, without pulling in Rust's float
/// formatting (serde_json's is already in the binary).
pub(crate) fn show_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        let mut out = String::new();
        match serde_json::Number::from_f64(v) {
            Some(n) => crate::protocol::json::write_number(&n, &mut out),
            None => out.push('0'),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meteor_schedule_before_jitter() {
        let p = RetryPolicy::default();
        // random = 0.5 gives the factor 1.0 exactly.
        let got: Vec<f64> = (0..10).map(|n| p.delay_ms(n, 0.5).round()).collect();
        assert_eq!(got, vec![10.0, 10.0, 4840.0, 10648.0, 23426.0, 51536.0, 113380.0, 249436.0, 300000.0, 300000.0]);
    }

    #[test]
    fn jitter_spans_plus_minus_a_quarter() {
        let p = RetryPolicy::default();
        assert!((p.delay_ms(2, 0.0) - 4840.0 * 0.75).abs() < 1e-6);
        assert!((p.delay_ms(2, 0.999_999) - 4840.0 * 1.25).abs() < 0.01);
    }

    #[test]
    fn huge_counts_and_bad_randoms_stay_finite() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_ms(u32::MAX, 0.5), 300_000.0);
        assert_eq!(p.delay_ms(5, f64::NAN), p.delay_ms(5, 0.5));
    }

    #[test]
    fn validation_rejects_nonsense() {
        assert!(RetryPolicy::default().validate().is_ok());
        assert!(RetryPolicy { exponent: f64::NAN, ..Default::default() }.validate().is_err());
        assert!(RetryPolicy { max_timeout_ms: -1.0, ..Default::default() }.validate().is_err());
        assert!(RetryPolicy { fuzz: 3.0, ..Default::default() }.validate().is_err());
    }
}
