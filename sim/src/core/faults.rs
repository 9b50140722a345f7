//! The fault queue shared by every simulator: tests push failures that the next requests consume,
//! so a scenario says exactly which request fails and how, with no randomness or timing involved.
//!
//! How a fault turns into a response is [`apply_fault`], which every platform's gate calls with
//! the next queued fault. Besides the queue, this module owns the kind-agnostic rewrites of a good
//! answer into a bad one ([`rewrite_body`]): an HTML page, invalid UTF-8, a padded giant page, and
//! edits of one record (duplicated, a field removed, a field of the wrong type), and the answers
//! that echo the request back, credentials included ([`echo_body`]). Every list answer of every
//! kind holds its records in one JSON array of objects, found breadth-first, so no platform module
//! needs to know about these faults; a broken record id is the one edit a handler makes itself
//! ([`CorruptOneRecord`], [`push_record`]).

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One simulated failure, applied to one request. See [`apply_fault`] for how each is
/// carried out.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Respond with this HTTP status and the platform's JSON error body; the request is not
    /// processed.
    Status(u16),
    /// 429 with a `Retry-After` header; the request is not processed.
    TooManyRequests { retry_after_secs: u64 },
    /// 200 whose body is the normal answer cut in half, so it is not JSON.
    MalformedJson,
    /// 200 with the normal page, but one record (the 2nd on the page, or the only one) has an id
    /// that is not an id.
    MalformedRecord,
    /// The normal status and headers, part of the body, then the connection is aborted (a 204,
    /// which has no body to cut, goes out as 200).
    DropConnection,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// 200 with `Content-Type: text/html` and a web server's error page instead of JSON, as a
    /// proxy or a crashed PHP back end sends it.
    HtmlPage,
    /// 200 with the normal answer, but two bytes that are not UTF-8 (`0xFF 0xFE`) inside a string
    /// of one record (the 2nd on the page, or the only one), as a Latin-1 back end writes a name.
    InvalidUtf8,
    /// 200 with the normal answer followed by whitespace up to `bytes` in all: still the same
    /// JSON, just huge.
    Oversized { bytes: usize },
    /// 200 with the normal page, but one record (the 2nd, or the only one) appears twice in a
    /// row, so its id is duplicated within the page.
    DuplicateRecord,
    /// 200 with the normal page, but one record (the 2nd, or the only one) lacks this field. A
    /// dotted path reaches into nested objects (`order.order_id`).
    RecordWithout(&'static str),
    /// 200 with the normal page, but in one record (the 2nd, or the only one) this field (dotted
    /// path as above) holds an object where the platform writes a scalar.
    RecordWrongType(&'static str),
    /// This redirect status (a 3xx) with this `Location`, as a shop answers after moving to
    /// another address; the request is not processed.
    Redirect { status: u16, location: &'static str },
    /// 200 with `Content-Type: text/html` and a debugging page that echoes the request: its
    /// headers, credentials included, then its request line, as a platform left in debug mode
    /// answers a request it cannot serve.
    EchoRequest,
    /// 200 with the normal page, but in one record (the 2nd, or the only one) this field (dotted
    /// path as above) holds an object echoing the request's headers, credentials included: a
    /// record a client rejects while it carries the client's secrets.
    RecordEchoingRequest(&'static str),
    /// 200 with the normal page, but in one record (the 2nd, or the only one) this field (dotted
    /// path as above) holds this text, whatever it held before (or added, if it had none): a
    /// value of the right type in a form the platform never documented.
    RecordText(&'static str, &'static str),
}

impl Fault {
    /// True for the faults carried out by [`rewrite_body`] on the handler's normal answer.
    pub fn rewrites_body(&self) -> bool {
        matches!(
            self,
            Fault::HtmlPage
                | Fault::InvalidUtf8
                | Fault::Oversized { .. }
                | Fault::DuplicateRecord
                | Fault::RecordWithout(_)
                | Fault::RecordWrongType(_)
                | Fault::EchoRequest
                | Fault::RecordEchoingRequest(_)
                | Fault::RecordText(..)
        )
    }

    /// True for the faults that echo the request, so need it to rewrite the answer
    /// ([`echo_body`]).
    pub fn echoes_request(&self) -> bool {
        matches!(self, Fault::EchoRequest | Fault::RecordEchoingRequest(_))
    }
}

/// Faults queued for the next requests, consumed one per request in FIFO order. Cloning shares the
/// queue, so a test keeps a handle while the server consumes from another.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    queue: Arc<Mutex<VecDeque<Fault>>>,
}

impl Faults {
    pub fn push(&self, f: Fault) {
        self.lock().push_back(f);
    }

    pub fn push_n(&self, f: Fault, n: usize) {
        self.lock().extend(std::iter::repeat_n(f, n));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn pending(&self) -> usize {
        self.lock().len()
    }

    pub fn next(&self) -> Option<Fault> {
        self.lock().pop_front()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Fault>> {
        // A panic elsewhere while holding this lock cannot leave the queue half-updated, so a
        // poisoned lock is still safe to use; failing every later request would hide the panic.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The HTML body of [`Fault::HtmlPage`].
pub const HTML_ERROR_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
<body><h1>Bad Gateway</h1><p>The upstream server sent an invalid response.</p><hr>\
<address>nginx</address></body></html>\n";

/// The value [`Fault::RecordWrongType`] puts where a scalar belongs.
fn wrong_type() -> Value {
    serde_json::json!({ "unexpected": ["an object where a scalar belongs"] })
}

/// Rewrites a good answer `body` for `fault`, or `None` when the fault does not rewrite bodies or
/// the answer holds no record to edit (then the answer goes out unchanged). The second value is
/// the content type to send, when it changes.
pub fn rewrite_body(fault: &Fault, body: &[u8]) -> Option<(Vec<u8>, Option<&'static str>)> {
    match fault {
        Fault::HtmlPage => Some((
            HTML_ERROR_PAGE.as_bytes().to_vec(),
            Some("text/html; charset=utf-8"),
        )),
        Fault::Oversized { bytes } => {
            let mut out = body.to_vec();
            out.resize((*bytes).max(body.len()), b' ');
            Some((out, None))
        }
        Fault::InvalidUtf8 => {
            let text = std::str::from_utf8(body).ok()?;
            let (_, records) = records(text)?;
            let r = target(&records)?;
            // Right after the record's first quote: inside its first key, a string either way.
            let at = r.start + text[r.clone()].find('"')? + 1;
            let mut out = body.to_vec();
            out.splice(at..at, [0xFF, 0xFE]);
            Some((out, None))
        }
        Fault::DuplicateRecord => {
            let text = std::str::from_utf8(body).ok()?;
            let (_, records) = records(text)?;
            let r = target(&records)?;
            let copy = format!(",{}", &text[r.clone()]);
            let mut out = text.to_owned();
            out.insert_str(r.end, &copy);
            Some((out.into_bytes(), None))
        }
        Fault::RecordWithout(path) => rewrite_record(body, |record| {
            edit(record, path, |obj, key| {
                obj.remove(key);
            })
        }),
        Fault::RecordWrongType(path) => rewrite_record(body, |record| {
            edit(record, path, |obj, key| {
                obj.insert(key.to_owned(), wrong_type());
            })
        }),
        Fault::RecordText(path, text) => rewrite_record(body, |record| {
            edit(record, path, |obj, key| {
                obj.insert(key.to_owned(), Value::String((*text).to_owned()));
            })
        }),
        _ => None,
    }
}

/// What an echoing fault repeats of the request: its request line and its headers, in the order
/// received.
#[derive(Debug, Clone, Default)]
pub struct RequestEcho {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
}

/// Rewrites a good answer `body` for a fault that echoes the request ([`Fault::echoes_request`]);
/// `None` as for [`rewrite_body`].
pub fn echo_body(
    fault: &Fault,
    request: &RequestEcho,
    body: &[u8],
) -> Option<(Vec<u8>, Option<&'static str>)> {
    match fault {
        Fault::EchoRequest => {
            // Headers first, as such pages list them: a credential lands in the page's first
            // few dozen bytes, where a client's preview of an unreadable answer looks.
            let mut page = String::from("<html><body><pre>");
            for (name, value) in &request.headers {
                page.push_str(&format!("{name}: {value}\n"));
            }
            page.push_str(&format!(
                "{}</pre><p>Debug mode is on.</p></body></html>\n",
                request.request_line
            ));
            Some((page.into_bytes(), Some("text/html; charset=utf-8")))
        }
        Fault::RecordEchoingRequest(path) => {
            let headers: Map<String, Value> = request
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let echo = serde_json::json!({ "echoed_request": headers });
            rewrite_record(body, |record| {
                edit(record, path, |obj, key| {
                    obj.insert(key.to_owned(), echo);
                })
            })
        }
        _ => None,
    }
}

/// Replaces the target record of `body` ([`target`]) with its edit by `f`; `None` when `body`
/// holds no record or `f` found nothing to edit.
fn rewrite_record(
    body: &[u8],
    f: impl FnOnce(&mut Map<String, Value>) -> bool,
) -> Option<(Vec<u8>, Option<&'static str>)> {
    let text = std::str::from_utf8(body).ok()?;
    let (_, records) = records(text)?;
    let r = target(&records)?;
    let mut record: Map<String, Value> = serde_json::from_str(&text[r.clone()]).ok()?;
    if !f(&mut record) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..r.start]);
    out.push_str(&Value::Object(record).to_string());
    out.push_str(&text[r.end..]);
    Some((out.into_bytes(), None))
}

/// The record a record fault edits: the 2nd on the page, or the only one.
fn target(records: &[Range<usize>]) -> Option<Range<usize>> {
    records.get(1).or(records.first()).cloned()
}

/// Applies `f` to the object holding the last segment of the dotted `path`; false when a segment
/// before it is missing or not an object.
fn edit(
    record: &mut Map<String, Value>,
    path: &str,
    f: impl FnOnce(&mut Map<String, Value>, &str),
) -> bool {
    let mut segments: Vec<&str> = path.split('.').collect();
    let Some(last) = segments.pop() else {
        return false;
    };
    let mut obj = record;
    for s in segments {
        match obj.get_mut(s) {
            Some(Value::Object(inner)) => obj = inner,
            _ => return false,
        }
    }
    f(obj, last);
    true
}

/// Finds the page's records: the first array of objects, breadth-first from the top. Returns the
/// array's byte range in `body` and each record's.
pub fn records(body: &str) -> Option<(Range<usize>, Vec<Range<usize>>)> {
    let span = |part: &str| {
        let start = part.as_ptr() as usize - body.as_ptr() as usize;
        start..start + part.len()
    };
    let mut level: Vec<&RawValue> = vec![serde_json::from_str(body).ok()?];
    while !level.is_empty() {
        let mut deeper = Vec::new();
        for raw in level {
            let text = raw.get();
            if text.starts_with('[') {
                let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
                if items.first().is_some_and(|i| i.get().starts_with('{')) {
                    return Some((span(text), items.iter().map(|i| span(i.get())).collect()));
                }
            } else if text.starts_with('{') {
                let members: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
                deeper.extend(members.into_values());
            }
        }
        level = deeper;
    }
    None
}

/// Renders a platform's error response for a status and a human message; each platform has its
/// own error body shape.
pub type ErrorBody = fn(StatusCode, &str) -> Response;

/// Request extension set by [`apply_fault`] for [`Fault::MalformedRecord`]: the handler must break
/// the id of one record in its answer (the 2nd on a page, or the only one). Only the platform
/// knows which part of its answer is a record, so the handler does it, with [`push_record`].
#[derive(Debug, Clone, Copy)]
pub struct CorruptOneRecord;

impl CorruptOneRecord {
    /// Whether [`apply_fault`] asked this request's handler to break a record.
    pub fn asked(req: &Request) -> bool {
        req.extensions().get::<CorruptOneRecord>().is_some()
    }

    /// Whether record `k` (from 0) of the `n` on a page is the one to break.
    pub fn is_target(k: usize, n: usize) -> bool {
        k == 1 || (k == 0 && n == 1)
    }
}

/// Appends `record`, with its id broken when `corrupt`. Every record the simulators render
/// starts with its id, a number (`{"id":12345001,…`) or a string (`{"id":"…"`), so the id is
/// found without parsing.
pub fn push_record(out: &mut String, record: &str, corrupt: bool) {
    const ID_START: &str = r#"{"id":"#;
    if !corrupt || !record.starts_with(ID_START) {
        out.push_str(record);
        return;
    }
    let id = &record[ID_START.len()..];
    let id_len = match id.strip_prefix('"') {
        Some(text) => text.find('"').map_or(id.len(), |n| n + 2),
        None => id.find(|c: char| !c.is_ascii_digit()).unwrap_or(id.len()),
    };
    out.push_str(r#"{"id":{"oops":true}"#);
    out.push_str(&id[id_len..]);
}

/// Carries out `fault` (if any) for this request, calling the handler (`next`) when the fault
/// lets the request through.
///
/// Faults that answer with an error status (`Status`, `TooManyRequests`, `Redirect`) stop the
/// request before the handler, so nothing changes on the platform. Faults that answer 200
/// (`MalformedJson`, `MalformedRecord`, `DropConnection`, `Slow`, and the body rewrites of
/// [`rewrite_body`] and [`echo_body`]) run the handler first, so a PATCH takes
/// effect even though the client cannot read the answer: the case a client's retry must survive.
pub async fn apply_fault(
    fault: Option<Fault>,
    mut req: Request,
    next: Next,
    error: ErrorBody,
) -> Response {
    match fault {
        None => next.run(req).await,
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, "Simulated failure")
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Some(Fault::Redirect { status, location }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
            let location = HeaderValue::from_static(location);
            (status, [(header::LOCATION, location)]).into_response()
        }
        Some(Fault::MalformedJson) => {
            let (mut parts, body) = next.run(req).await.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            // Half of a JSON object is never JSON: its closing brace is gone.
            let cut = bytes.slice(..bytes.len() / 2);
            let cut = if cut.is_empty() {
                Bytes::from_static(b"{")
            } else {
                cut
            };
            parts.status = StatusCode::OK;
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(cut))
        }
        Some(Fault::MalformedRecord) => {
            req.extensions_mut().insert(CorruptOneRecord);
            next.run(req).await
        }
        Some(Fault::DropConnection) => drop_mid_body(next.run(req).await).await,
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            next.run(req).await
        }
        Some(fault) => {
            debug_assert!(fault.rewrites_body());
            let echo = fault.echoes_request().then(|| RequestEcho {
                request_line: format!("{} {}", req.method(), req.uri()),
                headers: req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                        (k.as_str().to_owned(), v)
                    })
                    .collect(),
            });
            let (mut parts, body) = next.run(req).await.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let rewritten = match &echo {
                Some(echo) => echo_body(&fault, echo, &bytes),
                None => rewrite_body(&fault, &bytes),
            };
            let Some((rewritten, content_type)) = rewritten else {
                return Response::from_parts(parts, Body::from(bytes));
            };
            parts.status = StatusCode::OK;
            parts.headers.remove(header::CONTENT_LENGTH);
            if let Some(ct) = content_type {
                parts
                    .headers
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            Response::from_parts(parts, Body::from(rewritten))
        }
    }
}

/// Sends the head and the first half of `response`'s body, then fails the body stream, which
/// makes hyper abort the connection: the client sees a truncated body.
async fn drop_mid_body(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    // A 204 has no body to break: hyper would send it whole. Its head goes out as 200 instead,
    // so the client still loses the answer after the handler acted (Akinon's reject).
    if parts.status == StatusCode::NO_CONTENT {
        parts.status = StatusCode::OK;
    }
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let head = bytes.slice(..bytes.len() / 2);
    enum Step {
        Head(Bytes),
        Abort,
        Done,
    }
    let stream = futures_util::stream::unfold(Step::Head(head), |step| async move {
        match step {
            Step::Head(head) => Some((Ok(head), Step::Abort)),
            Step::Abort => {
                // Pausing makes hyper flush the head and the first bytes before the abort, so the
                // client fails while reading the body rather than while waiting for headers.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let err = io::Error::new(io::ErrorKind::ConnectionAborted, "simulated drop");
                Some((Err(err), Step::Done))
            }
            Step::Done => None,
        }
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_in_order_and_shared_between_clones() {
        let faults = Faults::default();
        let server_side = faults.clone();
        faults.push(Fault::Status(500));
        faults.push_n(Fault::MalformedJson, 2);
        assert_eq!(server_side.pending(), 3);
        assert_eq!(server_side.next(), Some(Fault::Status(500)));
        assert_eq!(server_side.next(), Some(Fault::MalformedJson));
        faults.clear();
        assert_eq!(server_side.next(), None);
    }

    const PAGE: &str = r#"{"meta":{"links":[{"a":1}]},"data":{"orders":[{"id":1,"order":{"order_id":"A"}},{"id":2,"order":{"order_id":"B"}}],"n":[]}}"#;

    fn rewritten(f: Fault) -> String {
        String::from_utf8(rewrite_body(&f, PAGE.as_bytes()).expect("rewritten").0).unwrap()
    }

    #[test]
    fn the_records_are_the_first_array_of_objects_breadth_first() {
        // `meta.links` is an array of objects too, but `data.orders` is reached first only by
        // depth; both are at depth 2, so the key order (alphabetical) decides: data before meta.
        let (array, recs) = records(PAGE).unwrap();
        assert!(PAGE[array].starts_with(r#"[{"id":1"#));
        assert_eq!(
            &PAGE[recs[1].clone()],
            r#"{"id":2,"order":{"order_id":"B"}}"#
        );
        assert!(records(r#"{"data":[]}"#).is_none());
        assert!(records("<html>").is_none());
    }

    #[test]
    fn record_faults_edit_the_second_record_only() {
        let dup = rewritten(Fault::DuplicateRecord);
        assert_eq!(dup.matches(r#"{"id":2,"#).count(), 2);
        let v: Value = serde_json::from_str(&dup).unwrap();
        assert_eq!(v["data"]["orders"].as_array().unwrap().len(), 3);

        let without: Value =
            serde_json::from_str(&rewritten(Fault::RecordWithout("order.order_id"))).unwrap();
        assert_eq!(without["data"]["orders"][1]["order"], serde_json::json!({}));
        assert_eq!(without["data"]["orders"][0]["order"]["order_id"], "A");

        let wrong: Value = serde_json::from_str(&rewritten(Fault::RecordWrongType("id"))).unwrap();
        assert!(wrong["data"]["orders"][1]["id"].is_object());
        assert_eq!(wrong["data"]["orders"][0]["id"], 1);
        assert!(rewrite_body(&Fault::RecordWithout("nope.id"), PAGE.as_bytes()).is_none());

        let text: Value = serde_json::from_str(&rewritten(Fault::RecordText(
            "order.createdAt",
            "27/05/2019",
        )))
        .unwrap();
        assert_eq!(
            text["data"]["orders"][1]["order"]["createdAt"],
            "27/05/2019"
        );
        assert_eq!(text["data"]["orders"][1]["order"]["order_id"], "B");
        assert!(
            text["data"]["orders"][0]["order"]
                .get("createdAt")
                .is_none()
        );
    }

    #[test]
    fn echo_faults_repeat_the_request_headers_in_a_page_or_in_one_record() {
        let request = RequestEcho {
            request_line: "GET /orders?page=1".into(),
            headers: vec![("authorization".into(), "Basic c2VjcmV0".into())],
        };
        let (page, ct) = echo_body(&Fault::EchoRequest, &request, PAGE.as_bytes()).unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.starts_with("<html><body><pre>authorization: Basic c2VjcmV0\n"));
        assert!(page.contains("GET /orders?page=1") && ct.unwrap().starts_with("text/html"));
        let (rec, ct) = echo_body(
            &Fault::RecordEchoingRequest("id"),
            &request,
            PAGE.as_bytes(),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&rec).unwrap();
        assert_eq!(
            v["data"]["orders"][1]["id"]["echoed_request"]["authorization"],
            "Basic c2VjcmV0"
        );
        assert_eq!(v["data"]["orders"][0]["id"], 1);
        assert!(ct.is_none());
        assert!(rewrite_body(&Fault::EchoRequest, PAGE.as_bytes()).is_none());
    }

    #[test]
    fn a_broken_record_keeps_everything_but_its_id_numeric_or_text() {
        let mut out = String::new();
        push_record(&mut out, r#"{"id":12345001,"a":1}"#, true);
        push_record(&mut out, r#"{"id":"9f2c-41","a":2}"#, true);
        push_record(&mut out, r#"{"id":7,"a":3}"#, false);
        assert_eq!(
            out,
            r#"{"id":{"oops":true},"a":1}{"id":{"oops":true},"a":2}{"id":7,"a":3}"#
        );
        assert!(CorruptOneRecord::is_target(1, 3) && CorruptOneRecord::is_target(0, 1));
        assert!(!CorruptOneRecord::is_target(0, 3) && !CorruptOneRecord::is_target(2, 3));
    }

    #[test]
    fn byte_faults_break_utf8_or_pad_but_keep_the_json() {
        let bad = rewrite_body(&Fault::InvalidUtf8, PAGE.as_bytes())
            .unwrap()
            .0;
        assert!(std::str::from_utf8(&bad).is_err());
        assert_eq!(bad.len(), PAGE.len() + 2);
        let big = rewrite_body(&Fault::Oversized { bytes: 1 << 20 }, PAGE.as_bytes())
            .unwrap()
            .0;
        assert_eq!(big.len(), 1 << 20);
        assert!(serde_json::from_slice::<Value>(&big).is_ok());
        let (html, ct) = rewrite_body(&Fault::HtmlPage, PAGE.as_bytes()).unwrap();
        assert!(html.starts_with(b"<!DOCTYPE html>") && ct.unwrap().starts_with("text/html"));
    }
}
