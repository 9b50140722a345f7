//! Reading a request's query string the way the platforms' frameworks do: decoded pairs in the
//! order sent, a parameter given twice refused (which one would win is undocumented, and a client
//! sending one twice has a bug). Each platform words the refusal its own way.

use std::collections::HashSet;

use axum::extract::Query;
use axum::http::Uri;

/// Why a query string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Not `key=value&…` in percent-encoding.
    Malformed,
    /// This parameter was given more than once.
    Repeated(String),
}

impl std::fmt::Display for QueryError {
    /// The wording of the platforms that word it plainly (a Laravel or Yii back end).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Malformed => f.write_str("Malformed query string"),
            QueryError::Repeated(key) => write!(f, "Duplicate query parameter: {key}"),
        }
    }
}

/// The query's pairs, decoded, in order.
pub fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, QueryError> {
    let Query(pairs) =
        Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|_| QueryError::Malformed)?;
    let mut seen = HashSet::new();
    for (key, _) in &pairs {
        if !seen.insert(key.as_str()) {
            return Err(QueryError::Repeated(key.clone()));
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_in_order_and_a_repeated_one_is_named() {
        let uri: Uri = "/o?b=2&a=x%20y".parse().unwrap();
        assert_eq!(
            query_pairs(&uri).unwrap(),
            [("b".into(), "2".into()), ("a".into(), "x y".into())]
        );
        let uri: Uri = "/o?a=1&a=2".parse().unwrap();
        assert_eq!(query_pairs(&uri), Err(QueryError::Repeated("a".into())));
    }
}
