//! Authenticating a described platform's requests: no auth, HTTP Basic, a header from a secret,
//! a token from a login request (obtained on first use, and once more when the platform answers
//! 401), or an HMAC signature over the request. Every credential that goes on the wire is handed
//! to the redactor first; a signature only while its request runs, since each is good for one
//! request and a daemon signing every page would otherwise grow the redactor without bound.

use std::borrow::Cow;

use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use sha2::{Sha256, Sha512};
use tokio::sync::Mutex;
use tracing::info;

use super::map;
use super::request::{self, Platform, Vars};
use crate::config::api::{
    ApiAuth, ApiSpec, Encoding, HmacAlgorithm, Pointer, RequestSpec, Template,
};
use crate::http::{HttpClient, HttpError, Response};
use crate::platforms::{ConnectorError, SentSecrets};

pub struct Authenticator {
    mode: Mode,
    /// `[api.headers]`, sent with every request.
    headers: Vec<(HeaderName, Template)>,
}

enum Mode {
    None,
    /// Basic, or a header whose value is fixed at start.
    Fixed(HeaderName, HeaderValue),
    Login {
        request: RequestSpec,
        token: Pointer,
        header: HeaderName,
        value: Template,
        /// The token in use; `None` until the first request logs in.
        current: Mutex<Option<String>>,
    },
    Hmac {
        header: HeaderName,
        value: Template,
        message: Template,
        key: String,
        algorithm: HmacAlgorithm,
        encoding: Encoding,
    },
}

fn header_name(name: &str) -> Result<HeaderName, ConnectorError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConnectorError::Config(format!("`{name}` is not a valid header name")))
}

fn sensitive(text: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(text).ok()?;
    v.set_sensitive(true);
    Some(v)
}

impl Authenticator {
    pub fn new(
        api: &ApiSpec,
        platform: &Platform,
        http: &HttpClient,
    ) -> Result<Authenticator, ConnectorError> {
        let vars = Vars::new(platform);
        let render = |t: &Template| {
            vars.render(t).ok_or_else(|| {
                ConnectorError::Config(format!(
                    "platforms.{}: {:?} names an auth key that is not set",
                    platform.name,
                    t.text()
                ))
            })
        };
        let fixed = |name: &str, value: String| -> Result<Mode, ConnectorError> {
            http.redactor().add(&value);
            let v = sensitive(&value).ok_or_else(|| {
                ConnectorError::Config(format!(
                    "platforms.{}: the {name} header's value is not valid header text",
                    platform.name
                ))
            })?;
            Ok(Mode::Fixed(header_name(name)?, v))
        };
        let mode = match &api.auth {
            ApiAuth::None => Mode::None,
            ApiAuth::Basic { username, password } => {
                let creds = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    render(username)?,
                    render(password)?
                ));
                http.redactor().add(&creds);
                fixed("authorization", format!("Basic {creds}"))?
            }
            ApiAuth::Header { name, value } => fixed(name, render(value)?)?,
            ApiAuth::Login {
                request,
                token,
                header,
                value,
            } => Mode::Login {
                request: request.clone(),
                token: token.clone(),
                header: header_name(header)?,
                value: value.clone(),
                current: Mutex::new(None),
            },
            ApiAuth::Hmac {
                header,
                value,
                message,
                key,
                algorithm,
                encoding,
            } => Mode::Hmac {
                header: header_name(header)?,
                value: value.clone(),
                message: message.clone(),
                key: render(key)?,
                algorithm: *algorithm,
                encoding: *encoding,
            },
        };
        let headers = api
            .headers
            .iter()
            .map(|(n, t)| Ok((header_name(n)?, t.clone())))
            .collect::<Result<_, ConnectorError>>()?;
        Ok(Authenticator { mode, headers })
    }

    /// Sends one request, authenticated, through `http` (as a push when `push`: sent once,
    /// its outcome unknown if the answer is lost). A login platform that answers 401 gets one
    /// new login and the request once more.
    #[allow(clippy::too_many_arguments)]
    pub async fn send<T>(
        &self,
        http: &HttpClient,
        platform: &Platform,
        push: bool,
        what: &str,
        method: &str,
        url: &Url,
        body: Option<&str>,
        parse: impl Fn(&Response) -> Result<T, String>,
    ) -> Result<T, HttpError> {
        let token = self.token(http, platform).await?;
        let sent = self
            .send_with(
                http,
                platform,
                push,
                what,
                method,
                url,
                body,
                token.as_deref(),
                &parse,
            )
            .await;
        match (sent, &token) {
            (Err(HttpError::Unauthorized { .. }), Some(stale)) => {
                let fresh = self.relogin(http, platform, stale).await?;
                self.send_with(
                    http,
                    platform,
                    push,
                    what,
                    method,
                    url,
                    body,
                    Some(&fresh),
                    &parse,
                )
                .await
            }
            (other, _) => other,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_with<T>(
        &self,
        http: &HttpClient,
        platform: &Platform,
        push: bool,
        what: &str,
        method: &str,
        url: &Url,
        body: Option<&str>,
        token: Option<&str>,
        parse: &impl Fn(&Response) -> Result<T, String>,
    ) -> Result<T, HttpError> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| HttpError::NotSent {
            reason: format!("{method} is not an HTTP method"),
        })?;
        let signatures = SentSecrets::new(http.redactor());
        let build = |c: &reqwest::Client| {
            let timestamp = Utc::now().timestamp().to_string();
            let mut b = c
                .request(m.clone(), url.clone())
                .header(ACCEPT, "application/json");
            if let Some(body) = body {
                b = b
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let signature = self.sign(platform, method, url, body.unwrap_or(""), &timestamp);
            if let Some(s) = &signature {
                signatures.register(s);
            }
            let lookup = |name: &str| -> Option<Cow<'_, str>> {
                match name {
                    "timestamp" => Some(Cow::Borrowed(timestamp.as_str())),
                    "token" => token.map(Cow::Borrowed),
                    "signature" => signature.as_deref().map(Cow::Borrowed),
                    _ => name
                        .strip_prefix("auth.")
                        .and_then(|k| platform.auth(k))
                        .map(Cow::Borrowed),
                }
            };
            for (name, t) in &self.headers {
                if let Some(v) = t.render(lookup).as_deref().and_then(sensitive) {
                    b = b.header(name, v);
                }
            }
            match &self.mode {
                Mode::None => b,
                Mode::Fixed(name, value) => b.header(name, value.clone()),
                Mode::Login { header, value, .. } | Mode::Hmac { header, value, .. } => {
                    match value.render(lookup).as_deref().and_then(sensitive) {
                        Some(v) => b.header(header, v),
                        None => b,
                    }
                }
            }
        };
        if push {
            http.execute_push(what, build, parse).await
        } else {
            http.execute(what, build, parse).await
        }
    }

    /// The signature of one request, for HMAC platforms.
    fn sign(
        &self,
        platform: &Platform,
        method: &str,
        url: &Url,
        body: &str,
        timestamp: &str,
    ) -> Option<String> {
        let Mode::Hmac {
            message,
            key,
            algorithm,
            encoding,
            ..
        } = &self.mode
        else {
            return None;
        };
        let uri = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let text = message.render(|name| match name {
            "method" => Some(Cow::Borrowed(method)),
            "uri" => Some(Cow::Borrowed(uri.as_str())),
            "path" => Some(Cow::Borrowed(url.path())),
            "query" => Some(Cow::Borrowed(url.query().unwrap_or(""))),
            "body" => Some(Cow::Borrowed(body)),
            "timestamp" => Some(Cow::Borrowed(timestamp)),
            _ => name
                .strip_prefix("auth.")
                .and_then(|k| platform.auth(k))
                .map(Cow::Borrowed),
        })?;
        Some(sign(*algorithm, *encoding, key.as_bytes(), text.as_bytes()))
    }

    /// The login token, logging in if there is none yet; `None` for other modes.
    async fn token(
        &self,
        http: &HttpClient,
        platform: &Platform,
    ) -> Result<Option<String>, HttpError> {
        let Mode::Login { current, .. } = &self.mode else {
            return Ok(None);
        };
        let mut current = current.lock().await;
        if let Some(t) = current.as_ref() {
            return Ok(Some(t.clone()));
        }
        let t = self.login(http, platform).await?;
        *current = Some(t.clone());
        Ok(Some(t))
    }

    /// Replaces `stale` by a fresh token, unless another request already did.
    async fn relogin(
        &self,
        http: &HttpClient,
        platform: &Platform,
        stale: &str,
    ) -> Result<String, HttpError> {
        let Mode::Login { current, .. } = &self.mode else {
            return Err(HttpError::Unauthorized {
                status: 401,
                message: String::new(),
            });
        };
        let mut current = current.lock().await;
        if let Some(t) = current.as_ref()
            && t != stale
        {
            return Ok(t.clone());
        }
        info!(platform = %http.platform(), "the platform refused the access token; logging in again");
        let t = self.login(http, platform).await?;
        *current = Some(t.clone());
        Ok(t)
    }

    async fn login(&self, http: &HttpClient, platform: &Platform) -> Result<String, HttpError> {
        let Mode::Login { request, token, .. } = &self.mode else {
            unreachable!("login is only called in login mode")
        };
        let vars = Vars::new(platform);
        let url = request::url(&platform.base_url, request, &vars)?;
        let body = request::body(request, &vars);
        let what = request::position(&request.method, &url);
        let m = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            HttpError::NotSent {
                reason: format!("{} is not an HTTP method", request.method),
            }
        })?;
        let t = http
            .execute(
                &what,
                |c| {
                    let b = c
                        .request(m.clone(), url.clone())
                        .header(ACCEPT, "application/json");
                    match &body {
                        Some(body) => b
                            .header(CONTENT_TYPE, "application/json")
                            .body(body.clone()),
                        None => b,
                    }
                },
                |resp| {
                    let (text, _) = crate::platforms::lenient::body_text(&resp.body);
                    let raw: &serde_json::value::RawValue = serde_json::from_str(&text)
                        .map_err(|e| format!("the login's answer is not JSON: {e}"))?;
                    map::raw_at(raw, token)
                        .and_then(|r| map::text_of(r.get()))
                        .filter(|t| !t.trim().is_empty())
                        .ok_or_else(|| {
                            format!("the login's answer has no token at `{token}` (auth.token)")
                        })
                },
            )
            .await?;
        http.redactor().add(&t);
        Ok(t)
    }
}

/// `encoding(HMAC(key, message))`.
pub fn sign(algorithm: HmacAlgorithm, encoding: Encoding, key: &[u8], message: &[u8]) -> String {
    let bytes = match algorithm {
        HmacAlgorithm::Sha256 => {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        HmacAlgorithm::Sha512 => {
            let mut mac =
                Hmac::<Sha512>::new_from_slice(key).expect("HMAC accepts keys of any length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
    };
    match encoding {
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        Encoding::Hex => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_published_hmac_sha256_vectors() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(
                HmacAlgorithm::Sha256,
                Encoding::Hex,
                b"Jefe",
                b"what do ya want for nothing?"
            ),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // SIRCLO's published example, signed as its description does: URI then body.
        assert_eq!(
            sign(
                HmacAlgorithm::Sha256,
                Encoding::Base64,
                b"1IieSn9qXCYu3FeEG1eH05QxTMldKEiNIkLSN/5xtgc=",
                b"/v1/partner/order?since=2018-10-13T13:34:52Z&until=2018-10-16T19:22:39Z&limit=100&offset=0",
            ),
            "XoPRRDtfNWaGm4nbw7A0LY/c2U0+jg3F3Ay2d3VR3bM="
        );
    }
}
