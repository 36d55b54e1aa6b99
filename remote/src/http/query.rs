//! Query strings, decoded as OpenCode's `URLSearchParams` does (`+` is a space, percent escapes
//! are bytes), except that invalid UTF-8 is a 400 naming the parameter rather than silently
//! replaced.

use percent_encoding::percent_decode;

use crate::error::ApiError;

/// Decoded query parameters, in order.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes a raw query string (without the `?`).
    ///
    /// # Errors
    ///
    /// 400 when a name or value is not UTF-8 after decoding.
    pub fn parse(query: &str) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key).ok_or_else(|| {
                ApiError::BadRequest(format!("query parameter name `{key}` is not valid UTF-8"))
            })?;
            let value = decode(value).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "query parameter `{key}` is not valid percent-encoded UTF-8"
                ))
            })?;
            pairs.push((key, value));
        }
        Ok(Query(pairs))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A required parameter.
    ///
    /// # Errors
    ///
    /// 400 naming it when it is missing.
    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.get(name).map(str::to_owned).ok_or_else(|| {
            ApiError::BadRequest(format!("missing required query parameter `{name}`"))
        })
    }

    /// A `true`/`false` parameter; `default` when absent.
    ///
    /// # Errors
    ///
    /// 400 naming it for any other value.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ApiError::BadRequest(format!(
                "query parameter `{name}` must be `true` or `false`, got `{other}`"
            ))),
        }
    }

    /// A finite number; `None` when absent.
    ///
    /// # Errors
    ///
    /// 400 naming it when it is not a number.
    pub fn number(&self, name: &str) -> Result<Option<f64>, ApiError> {
        self.get(name)
            .map(|value| {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "query parameter `{name}` must be a number, got `{value}`"
                        ))
                    })
            })
            .transpose()
    }

    /// A non-negative integer; `None` when absent.
    ///
    /// # Errors
    ///
    /// 400 naming it otherwise.
    pub fn unsigned(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|value| {
                value.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "query parameter `{name}` must be a non-negative integer, got `{value}`"
                    ))
                })
            })
            .transpose()
    }
}

/// Percent-decodes one component (`+` is a space); `None` for invalid UTF-8.
fn decode(component: &str) -> Option<String> {
    let spaced = component.replace('+', " ");
    percent_decode(spaced.as_bytes())
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_should_decode_like_url_search_params_but_refuse_bad_utf8() {
        let query = Query::parse("a=hel%2Bo+world&b=%2Fx&c&a=second&d=%zz").unwrap();
        assert_eq!(query.get("a"), Some("hel+o world"));
        assert_eq!(query.get("b"), Some("/x"));
        assert_eq!(query.get("c"), Some(""));
        assert_eq!(query.get("d"), Some("%zz"));
        assert_eq!(query.get("e"), None);
        let err = Query::parse("path=%FF").unwrap_err();
        assert!(err.to_string().contains("`path`"), "{err}");
        assert!(Query::parse("%C3%28=1").is_err());
    }

    #[test]
    fn typed_getters_should_name_the_parameter() {
        let query = Query::parse("f=maybe&n=x&u=-1&ok=true&num=1.5").unwrap();
        assert!(
            query
                .flag("f", false)
                .unwrap_err()
                .to_string()
                .contains("`f`")
        );
        assert!(query.flag("ok", false).unwrap());
        assert!(query.flag("absent", true).unwrap());
        assert!(query.number("n").unwrap_err().to_string().contains("`n`"));
        assert_eq!(query.number("num").unwrap(), Some(1.5));
        assert!(query.unsigned("u").is_err());
        assert!(
            query
                .required("zz")
                .unwrap_err()
                .to_string()
                .contains("`zz`")
        );
    }
}
