//! Wire-format pieces several platforms share.

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Money as a JSON number with its decimals as written and no trailing zeros (`109`, `30.2`,
/// `526.55`): serialized from the decimal's text, never through `f64`.
#[derive(Debug, Clone, Copy)]
pub struct Money(pub Decimal);

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn money_is_a_number_without_trailing_zeros() {
        let json = |s: &str| serde_json::to_string(&Money(Decimal::from_str(s).unwrap())).unwrap();
        assert_eq!(json("109.00"), "109");
        assert_eq!(json("30.20"), "30.2");
        assert_eq!(json("526.55"), "526.55");
    }
}
