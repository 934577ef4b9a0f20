//! Conditions on a metric value, as written in Prometheus checks (`< 0.05`, `>= 1`, `== 0`).

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

/// A parsed condition: operator and bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    /// The operator.
    pub op: Op,
    /// The bound the value is compared with.
    pub bound: f64,
}

impl Threshold {
    /// Parses `OP NUMBER`, e.g. `< 0.05` or `>=1`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let ops = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];
        let hint = "write an operator (<, <=, >, >=, ==, !=) and a number, e.g. `< 0.05`";
        let Some((op, rest)) = ops.iter().find_map(|(p, op)| s.strip_prefix(p).map(|rest| (*op, rest))) else {
            return Err(format!("`{s}` has no comparison operator; {hint}"));
        };
        let bound: f64 = rest.trim().parse().map_err(|_| format!("`{}` is not a number; {hint}", rest.trim()))?;
        if !bound.is_finite() {
            return Err(format!("`{}` is not a finite number; {hint}", rest.trim()));
        }
        Ok(Self { op, bound })
    }

    /// Whether `value` satisfies the condition (NaN never does).
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            Op::Lt => value < self.bound,
            Op::Le => value <= self.bound,
            Op::Gt => value > self.bound,
            Op::Ge => value >= self.bound,
            Op::Eq => value == self.bound,
            Op::Ne => !value.is_nan() && value != self.bound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_evaluates() {
        let cases = [
            ("< 0.05", 0.01, true),
            ("< 0.05", 0.05, false),
            ("<=0.05", 0.05, true),
            (">= 1", 1.0, true),
            ("> 1", 1.0, false),
            ("== 0", 0.0, true),
            ("!= 0", 0.0, false),
            ("!= 0", f64::NAN, false),
            ("< 1", f64::NAN, false),
        ];
        for (cond, value, expected) in cases {
            assert_eq!(Threshold::parse(cond).unwrap().holds(value), expected, "{cond} on {value}");
        }
    }

    #[test]
    fn refuses_malformed() {
        for bad in ["0.05", "< ", "<< 1", "=~ 1", "< NaN", "< inf", "approximately 1"] {
            assert!(Threshold::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
