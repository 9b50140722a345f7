//! SIRCLO's update side (docs/platforms/sirclo.md, Pushing): the due transitions of one
//! platform go out together in `PATCH /v1/order`, the body grouped by target status
//! (`accepted`, `packed`, `completed`, `cancelled`), each order as `{id, order_number, …,
//! updated_at}`. `updated_at` is the order's `updatedAt` exactly as the platform last reported
//! it, taken byte for byte from the stored raw record: it is the platform's optimistic lock, so an
//! order changed on the platform since our last sync is refused instead of overwritten (and a
//! resend of an update that already landed is refused too, never applied twice). The answer
//! lists every order under `succeed` or `failed`.
//!
//! The document states no size limit for the update; a batch is split so that no request
//! carries more than [`MAX_ORDERS_PER_REQUEST`] orders or [`MAX_BODY_BYTES`] of body.
//!
//! An entry whose previous attempt may have landed is read back from the order list (the list
//! is the only read the document offers) before anything is sent again.

use std::collections::HashMap;

use chrono::TimeDelta;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::{debug, warn};

use super::{MAC_HEADER, PARTNER_ID, PARTNER_ID_DASHED, Sirclo, map, request_uri, sign, wire};
use crate::config::PlatformConfig;
use crate::http::{HttpError, Response};
use crate::model::Status;
use crate::model::{Action, Entry};
use crate::platforms::{ConnectorError, Source, Window, lenient};
use crate::platforms::{Push, PushOutcome};

/// What SIRCLO can be asked to do (docs/contract.md §4, push mapping).
pub const PUSH_ACTIONS: &[&str] = &["accepted", "shipped", "delivered", "cancelled"];

/// `shipped` is sent with the air waybill, so a transition without one is refused up front.
pub fn check_params(action: Action, params: &crate::model::Params) -> Result<(), String> {
    if action == Action::Status(Status::Shipped) && params.tracking_number.is_none() {
        return Err(
            "sirclo needs --tracking-number to mark an order shipped (sent as airwaybill_number)"
                .into(),
        );
    }
    Ok(())
}

/// The update endpoint, after `api_prefix`.
pub const PATCH_PATH: &str = "/v1/order";

/// Most orders in one update request. The document gives no limit for the update; 100 is the
/// most this API hands out per request anywhere it states one (`perpage`, `limit`), and it
/// keeps one request's work on the platform far inside our `timeout` (a timed-out batch makes
/// every order in it "outcome unknown", each to be read back).
pub const MAX_ORDERS_PER_REQUEST: usize = 100;

/// Largest update body we send: a quarter of nginx's default `client_max_body_size` (1 MiB),
/// the limit most likely to sit in front of the platform. 100 orders take about 15 KiB, so this
/// binds only with unusually long cancel reasons.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The update groups, in the document's order; the body lists them in this order.
const GROUPS: [&str; 4] = ["accepted", "packed", "completed", "cancelled"];

/// The read-back looks for an order this far either side of its order date. The list filters
/// on the exact order date, so a small margin suffices; an order not found there is looked for
/// over the whole listing (from `reconcile_horizon` when one is set).
const READ_BACK_MARGIN: TimeDelta = TimeDelta::minutes(15);

/// The update's own credentials, as the document names its headers.
const API_KEY: HeaderName = HeaderName::from_static("api_key");
const API_SECRET: HeaderName = HeaderName::from_static("api_secret");

/// `api_key` and `api_secret`, the update endpoint's credentials in the document. Optional:
/// later revisions use `partner_id` + MAC like the list, and docs/platforms/sirclo.md
/// says to send both when both are configured.
pub(super) struct ApiKey {
    key: HeaderValue,
    secret: HeaderValue,
}

impl ApiKey {
    pub(super) fn from_config(cfg: &PlatformConfig) -> Result<Option<ApiKey>, ConnectorError> {
        let header = |k: &str| {
            cfg.auth
                .get(k)
                .map(|s| {
                    let mut v = HeaderValue::from_str(s.expose()).map_err(|_| {
                        ConnectorError::Config(format!(
                            "platforms.{}.auth.{k} is not valid header text",
                            cfg.name
                        ))
                    })?;
                    v.set_sensitive(true);
                    Ok::<_, ConnectorError>(v)
                })
                .transpose()
        };
        match (header("api_key")?, header("api_secret")?) {
            (Some(key), Some(secret)) => Ok(Some(ApiKey { key, secret })),
            (None, None) => Ok(None),
            // One without the other would be refused on every push: say so at start instead.
            (Some(_), None) | (None, Some(_)) => Err(ConnectorError::Config(format!(
                "platforms.{}.auth: api_key and api_secret go together (give both or neither) in {}",
                cfg.name,
                cfg.file.display()
            ))),
        }
    }
}

/// The group an action goes in, as an index into [`GROUPS`].
fn group_of(action: Action) -> Option<usize> {
    Some(match action {
        Action::Status(Status::Accepted) => 0,
        Action::Status(Status::Shipped) => 1,
        Action::Status(Status::Delivered) => 2,
        Action::Status(Status::Cancelled) => 3,
        _ => return None,
    })
}

/// One order of the update body, fields in the document's order.
#[derive(Serialize)]
struct UpdateItem<'a> {
    id: Id<'a>,
    order_number: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    airwaybill_number: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel_reason: Option<&'a str>,
    /// The stored JSON value itself, so not even an escape sequence is re-spelled.
    updated_at: &'a RawValue,
}

/// The document's ids are integers; an id that is not one (SIRCLO never sends such, but the
/// store takes text) goes back as the text it came as.
#[derive(Serialize)]
#[serde(untagged)]
enum Id<'a> {
    Number(u64),
    Text(&'a str),
}

/// What the update needs from the stored raw record.
#[derive(Deserialize)]
struct RawFields<'a> {
    #[serde(rename = "updatedAt", borrow, default)]
    updated_at_camel: Option<&'a RawValue>,
    /// Some records' spelling (docs/platforms/sirclo.md); `updatedAt` wins when both are present.
    #[serde(rename = "updated_at", borrow, default)]
    updated_at_snake: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    delivery_name: Option<String>,
}

/// The text, unless it is empty or blank.
fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// One entry's item in the body (serialized), and its group; or why it cannot be sent.
fn prepare(e: &Entry) -> Result<(usize, String), String> {
    let Some(group) = group_of(e.action) else {
        return Err(format!(
            "sirclo cannot set `{}` (it can do: {})",
            e.action,
            PUSH_ACTIONS.join(", ")
        ));
    };
    let raw: RawFields<'_> = serde_json::from_str(&e.order.raw).map_err(|err| {
        format!(
            "the stored SIRCLO record of order {} cannot be read: {err}",
            e.order_id
        )
    })?;
    let Some(updated_at) = raw.updated_at_camel.or(raw.updated_at_snake) else {
        return Err(format!(
            "the stored SIRCLO record of order {} has no `updatedAt`, which the update must send \
             back as `updated_at`: sync the platform, then `ordersync outbox retry`",
            e.order_id
        ));
    };
    let (mut airwaybill_number, mut received_by, mut cancel_reason) = (None, None, None);
    match group {
        1 => {
            airwaybill_number = Some(nonempty(&e.params.tracking_number).ok_or_else(|| {
                format!(
                    "order {}: SIRCLO's `packed` needs the tracking number (airwaybill_number); \
                     queue the transition with --tracking-number",
                    e.order_id
                )
            })?);
        }
        2 => {
            // The document's example names who received the parcel. When the transition did
            // not say, the order's delivery recipient (the document's `delivery_name`) is who
            // the courier delivered to.
            received_by = Some(
                nonempty(&e.params.received_by)
                    .or(nonempty(&raw.delivery_name))
                    .ok_or_else(|| {
                        format!(
                            "order {}: SIRCLO's `completed` needs received_by and the order has no \
                             delivery_name; queue the transition again with --received-by",
                            e.order_id
                        )
                    })?,
            );
        }
        // The document's own example sends an empty reason: the key is expected, the text not.
        3 => cancel_reason = Some(e.params.reason.as_deref().unwrap_or("")),
        _ => {}
    }
    let item = UpdateItem {
        id: e
            .order_id
            .parse::<u64>()
            .map_or(Id::Text(&e.order_id), Id::Number),
        order_number: &e.order.number,
        airwaybill_number,
        received_by,
        cancel_reason,
        updated_at,
    };
    let json = serde_json::to_string(&item)
        .map_err(|err| format!("order {}: cannot write the update: {err}", e.order_id))?;
    Ok((group, json))
}

/// The orders of one request: entry indexes and serialized items per group.
#[derive(Default)]
struct Batch {
    members: Vec<usize>,
    groups: [Vec<String>; 4],
    /// The body's size so far, brackets and commas included.
    bytes: usize,
}

impl Batch {
    /// `{"accepted":[` … `]}` and the separators around four groups, at most.
    const OVERHEAD: usize = 2 + 4 * (r#""completed":[],"#.len());

    fn fits(&self, item: &str) -> bool {
        self.members.is_empty()
            || (self.members.len() < MAX_ORDERS_PER_REQUEST
                && Self::OVERHEAD + self.bytes + item.len() < MAX_BODY_BYTES)
    }

    fn add(&mut self, index: usize, group: usize, item: String) {
        self.bytes += item.len() + 1;
        self.members.push(index);
        self.groups[group].push(item);
    }

    fn body(&self) -> String {
        let mut out = String::with_capacity(Self::OVERHEAD + self.bytes);
        out.push('{');
        for (name, items) in GROUPS.iter().zip(&self.groups) {
            if items.is_empty() {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":[");
            out.push_str(&items.join(","));
            out.push(']');
        }
        out.push('}');
        out
    }
}

/// One order as the answer's `succeed` or `failed` list reports it.
#[derive(Debug, Deserialize)]
struct Reported {
    #[serde(deserialize_with = "lenient::id")]
    id: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    order_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    message: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    updated_at: Option<String>,
}

/// The answer, by order id.
#[derive(Debug, Default)]
struct Answer {
    succeed: HashMap<String, Reported>,
    failed: HashMap<String, Reported>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    data: Option<Lists<'a>>,
}

#[derive(Deserialize)]
struct Lists<'a> {
    /// `null` as well as absent: Go services write an empty slice as `null`.
    #[serde(borrow, default)]
    succeed: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    failed: Option<Vec<&'a RawValue>>,
}

/// Reads a 2xx answer. An answer without `data` says nothing about any order: that is an
/// error, which makes every order of the request "outcome unknown" (read back before a
/// resend). An unreadable record is skipped; its order is then in neither list.
fn read_answer(platform: &str, resp: &Response) -> Result<Answer, String> {
    let envelope: Envelope<'_> = serde_json::from_slice(&resp.body)
        .map_err(|e| format!("not SIRCLO's update answer: {e}"))?;
    let lists = envelope
        .data
        .ok_or("SIRCLO's update answer has no `data`")?;
    let mut answer = Answer::default();
    for (name, list, into) in [
        ("succeed", lists.succeed, &mut answer.succeed),
        ("failed", lists.failed, &mut answer.failed),
    ] {
        for (i, raw) in list.unwrap_or_default().into_iter().enumerate() {
            match serde_json::from_str::<Reported>(raw.get()) {
                Ok(r) => {
                    into.insert(r.id.clone(), r);
                }
                Err(e) => warn!(platform, position = %format!("PATCH {PATCH_PATH} {name}[{i}]"),
                                error = %e, "unreadable order in SIRCLO's update answer skipped"),
            }
        }
    }
    Ok(answer)
}

/// What the answer says about one order.
fn outcome_in(answer: &Answer, order_id: &str) -> PushOutcome {
    match (answer.succeed.get(order_id), answer.failed.get(order_id)) {
        (Some(_), None) => PushOutcome::Done,
        (None, Some(f)) => {
            let message = f
                .message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .unwrap_or("no reason given");
            PushOutcome::Failed(format!(
                "SIRCLO refused the update: {message} (order status `{}`, updated_at `{}`)",
                f.order_status.as_deref().unwrap_or(""),
                f.updated_at.as_deref().unwrap_or("")
            ))
        }
        // Either way nobody knows whether the order moved: read it back before a resend.
        (Some(_), Some(_)) => PushOutcome::Retry(HttpError::OutcomeUnknown {
            reason: format!(
                "SIRCLO's answer lists order {order_id} both in `succeed` and in `failed`"
            ),
        }),
        (None, None) => PushOutcome::Retry(HttpError::OutcomeUnknown {
            reason: format!(
                "SIRCLO's answer lists order {order_id} neither in `succeed` nor in `failed`"
            ),
        }),
    }
}

/// A failure of the whole request, for each of its orders.
fn whole_request_outcome(err: &HttpError) -> PushOutcome {
    match err {
        // Not a refusal of the transition: the request did not go out.
        HttpError::Cancelled => PushOutcome::Retry(HttpError::Cancelled),
        e if e.is_retryable() => PushOutcome::Retry(e.clone()),
        e => PushOutcome::Failed(e.to_string()),
    }
}

impl Sirclo {
    /// One `PATCH /v1/order`, sent once (the outbox owns retries). Authenticated with
    /// `partner_id` + a MAC over the request URI and this body, and with `api_key`/`api_secret`
    /// when configured.
    async fn send_update(&self, body: &str) -> Result<Answer, HttpError> {
        let path = format!("{}{PATCH_PATH}", self.prefix);
        let url = self.base.join(&path).map_err(|e| HttpError::NotSent {
            reason: format!("bad update URL {path:?}: {e}"),
        })?;
        let mac = sign(self.secret.expose(), &request_uri(&url), body.as_bytes());
        // Registered for the request's lifetime, so no error text built meanwhile can show it.
        let macs = crate::platforms::SentSecrets::new(self.http.redactor());
        macs.register(&mac);
        let mut mac = HeaderValue::try_from(mac).expect("base64 is header text");
        mac.set_sensitive(true);
        let platform = self.http.platform().to_string();
        self.http
            .execute_push(
                &format!("PATCH {path}"),
                |c| {
                    let mut b = c
                        .patch(url.clone())
                        .header(PARTNER_ID, self.partner_id.clone())
                        .header(PARTNER_ID_DASHED, self.partner_id.clone())
                        .header(MAC_HEADER, mac.clone())
                        .header(CONTENT_TYPE, "application/json")
                        .header(ACCEPT, "application/json");
                    if let Some(k) = &self.update_auth {
                        b = b
                            .header(API_KEY, k.key.clone())
                            .header(API_SECRET, k.secret.clone());
                    }
                    b.body(body.to_owned())
                },
                |resp| read_answer(&platform, resp),
            )
            .await
    }

    /// The order's canonical status as the list shows it now.
    async fn read_back(&self, e: &Entry) -> Result<Status, HttpError> {
        let placed = serde_json::from_str::<wire::Order>(&e.order.raw)
            .ok()
            .and_then(|w| map::to_canonical(w, &self.status_map, self.zone).ok())
            .and_then(|o| o.placed_at);
        if let Some(placed) = placed {
            let window = Window {
                from: placed - READ_BACK_MARGIN,
                to: placed + READ_BACK_MARGIN,
            };
            let mut token = Some(self.first_token(&window));
            while let Some(t) = token {
                let page = self.get_page(&t).await?;
                if let Some(o) = page.orders.iter().find(|o| o.order.order_id == e.order_id) {
                    return Ok(o.order.status);
                }
                token = page.next;
            }
        }
        // The order date we derived may not be the one the platform filters on (a record
        // whose `order_date` did not parse is dated by `createdAt`): look where the sync does.
        let page = self.fetch_ids(std::slice::from_ref(&e.order_id)).await?;
        page.orders
            .into_iter()
            .find(|o| o.order.order_id == e.order_id)
            .map(|o| o.order.status)
            .ok_or_else(|| HttpError::OutcomeUnknown {
                reason: format!(
                    "order {} is not in SIRCLO's order list (neither around its order date nor \
                     within reconcile_horizon), so whether the update landed cannot be read back",
                    e.order_id
                ),
            })
    }
}

impl Push for Sirclo {
    /// Sends the entries in as few update requests as the limits allow, and reads each order's
    /// result from the answer. One outcome per entry, in order.
    async fn push(&self, entries: &[Entry]) -> Vec<PushOutcome> {
        let mut outcomes: Vec<Option<PushOutcome>> = vec![None; entries.len()];
        let mut batches: Vec<Batch> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.params.carrier.is_some() {
                debug!(platform = %e.platform, order = %e.order_id,
                       "SIRCLO's update has no carrier field; --carrier is not sent");
            }
            match prepare(e) {
                Err(why) => outcomes[i] = Some(PushOutcome::Failed(why)),
                Ok((group, item)) => {
                    if batches.last().is_none_or(|b| !b.fits(&item)) {
                        batches.push(Batch::default());
                    }
                    let batch = batches.last_mut().expect("a batch was just ensured");
                    batch.add(i, group, item);
                }
            }
        }
        // After a refusal of the credentials, a rate limit or a shutdown, the rest is not
        // sent: it would only earn a lockout or more 429s. Those entries share the outcome.
        let mut stop: Option<HttpError> = None;
        for batch in &batches {
            if stop.is_none() && self.http.cancel_token().is_cancelled() {
                stop = Some(HttpError::Cancelled);
            }
            let result = match &stop {
                Some(err) => Err(err.clone()),
                None => self.send_update(&batch.body()).await,
            };
            match result {
                Ok(answer) => {
                    debug!(platform = %self.http.platform(), orders = batch.members.len(),
                           succeed = answer.succeed.len(), failed = answer.failed.len(),
                           "SIRCLO update answered");
                    for &i in &batch.members {
                        outcomes[i] = Some(outcome_in(&answer, &entries[i].order_id));
                    }
                }
                Err(err) => {
                    if matches!(
                        err,
                        HttpError::Unauthorized { .. }
                            | HttpError::RateLimited { .. }
                            | HttpError::Cancelled
                    ) {
                        stop = Some(err.clone());
                    }
                    for &i in &batch.members {
                        outcomes[i] = Some(whole_request_outcome(&err));
                    }
                }
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.expect("every entry is either refused before sending or in a batch"))
            .collect()
    }
    /// Reads the order back from the list: is it already in the entry's target status?
    ///
    /// Every failure comes back as `OutcomeUnknown`: the outbox keeps an entry marked for a
    /// read-back only while its error says the outcome is unknown, and a failed read-back has
    /// learnt nothing, so the next attempt must read back again rather than resend blindly.
    async fn already_applied(&self, e: &Entry) -> Result<bool, HttpError> {
        let Action::Status(target) = e.action else {
            return Ok(false);
        };
        match self.read_back(e).await {
            Ok(status) => Ok(status == target),
            Err(err @ HttpError::OutcomeUnknown { .. }) => Err(err),
            Err(err) => Err(HttpError::OutcomeUnknown {
                reason: format!("reading order {} back failed: {err}", e.order_id),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OrderSnapshot, Params};

    fn entry(order_id: &str, action: Status, params: Params, raw: &str) -> Entry {
        Entry {
            id: 1,
            platform: "sirclo-id".into(),
            order_id: order_id.into(),
            action: Action::Status(action),
            params,
            attempts: 0,
            outcome_unknown: false,
            order: OrderSnapshot {
                number: "INV/1".into(),
                status: Status::Pending,
                platform_status: "pending".into(),
                raw: raw.into(),
                items: Vec::new(),
            },
        }
    }

    const RAW: &str = r#"{"id":123,"order_number":"INV/1","delivery_name":"Artia",
                          "updatedAt":"2019-05-27 06:05:11.97918"}"#;

    #[test]
    fn items_follow_the_documents_shape_and_keep_updated_at_byte_for_byte() {
        let (group, json) =
            prepare(&entry("123", Status::Accepted, Params::default(), RAW)).unwrap();
        assert_eq!(group, 0);
        assert_eq!(
            json,
            r#"{"id":123,"order_number":"INV/1","updated_at":"2019-05-27 06:05:11.97918"}"#
        );
        // An escape in the stored text is sent as stored, not re-spelled.
        let escaped = r#"{"id":5,"updatedAt":"2019-05-27\u002006:05:11"}"#;
        let (_, json) = prepare(&entry("5", Status::Accepted, Params::default(), escaped)).unwrap();
        assert!(
            json.contains(r#""updated_at":"2019-05-27\u002006:05:11""#),
            "{json}"
        );
        // `updatedAt` wins over `updated_at`; a non-numeric id goes back as text.
        let both = r#"{"id":"A-1","updated_at":"old","updatedAt":"new"}"#;
        let (_, json) = prepare(&entry("A-1", Status::Accepted, Params::default(), both)).unwrap();
        assert_eq!(
            json,
            r#"{"id":"A-1","order_number":"INV/1","updated_at":"new"}"#
        );
    }

    #[test]
    fn each_group_carries_its_own_field() {
        let params = Params {
            tracking_number: Some("JP123".into()),
            received_by: Some("Yosua".into()),
            reason: Some("Stok habis".into()),
            ..Params::default()
        };
        let json = |s: Status| prepare(&entry("123", s, params.clone(), RAW)).unwrap();
        assert_eq!(json(Status::Shipped).0, 1);
        assert!(
            json(Status::Shipped)
                .1
                .contains(r#""airwaybill_number":"JP123","updated_at""#)
        );
        assert!(
            json(Status::Delivered)
                .1
                .contains(r#""received_by":"Yosua","updated_at""#)
        );
        assert!(
            json(Status::Cancelled)
                .1
                .contains(r#""cancel_reason":"Stok habis","updated_at""#)
        );
        let plain = |s: Status| prepare(&entry("123", s, Params::default(), RAW));
        assert!(
            plain(Status::Cancelled)
                .unwrap()
                .1
                .contains(r#""cancel_reason":"""#)
        );
        assert!(
            plain(Status::Delivered)
                .unwrap()
                .1
                .contains(r#""received_by":"Artia""#)
        );
        let shipped = plain(Status::Shipped).unwrap_err();
        assert!(shipped.contains("--tracking-number"), "{shipped}");
    }

    #[test]
    fn entries_that_cannot_be_sent_say_why() {
        let no_time = r#"{"id":1,"updatedAt":null,"delivery_name":""}"#;
        let e = prepare(&entry("1", Status::Accepted, Params::default(), no_time)).unwrap_err();
        assert!(e.contains("no `updatedAt`"), "{e}");
        let e = prepare(&entry(
            "1",
            Status::Delivered,
            Params::default(),
            r#"{"id":1,"updatedAt":"t","delivery_name":" "}"#,
        ))
        .unwrap_err();
        assert!(e.contains("--received-by"), "{e}");
        let e = prepare(&entry("1", Status::Processing, Params::default(), RAW)).unwrap_err();
        assert!(e.contains("cannot set `processing`"), "{e}");
    }

    #[test]
    fn batches_split_at_the_order_limit_and_list_groups_in_the_documents_order() {
        let mut b = Batch::default();
        b.add(0, 3, r#"{"id":2}"#.into());
        b.add(1, 0, r#"{"id":1}"#.into());
        b.add(2, 0, r#"{"id":3}"#.into());
        assert_eq!(
            b.body(),
            r#"{"accepted":[{"id":1},{"id":3}],"cancelled":[{"id":2}]}"#
        );
        assert!(b.body().len() <= Batch::OVERHEAD + b.bytes);
        let mut full = Batch::default();
        for i in 0..MAX_ORDERS_PER_REQUEST {
            assert!(full.fits("{}"));
            full.add(i, 0, "{}".into());
        }
        assert!(!full.fits("{}"));
        let big = "x".repeat(MAX_BODY_BYTES / 2);
        let mut b = Batch::default();
        assert!(b.fits(&big));
        b.add(0, 3, big.clone());
        assert!(
            !b.fits(&big),
            "two halves and the brackets exceed the limit"
        );
        let huge = "x".repeat(MAX_BODY_BYTES * 2);
        assert!(
            Batch::default().fits(&huge),
            "an oversized order still goes, alone"
        );
    }

    #[test]
    fn the_answer_decides_each_order_and_silence_is_unknown() {
        let resp = |body: &str| Response {
            status: 200,
            headers: Default::default(),
            body: body.as_bytes().to_vec().into(),
        };
        let answer = read_answer(
            "s",
            &resp(
                r#"{"data":{"succeed":[{"id":123,"order_status":"accepted","updated_at":"x"},
                                       {"id":{"bad":1}}],
                            "failed":[{"id":"456","order_status":"pending",
                                       "message":"Parameter yang diberikan salah",
                                       "updated_at":"2019-05-27 06:06:11.979185"},
                                      {"id":789,"message":""},{"id":123}]},
                   "message":"","reference":""}"#,
            ),
        )
        .unwrap();
        match outcome_in(&answer, "456") {
            PushOutcome::Failed(m) => assert_eq!(
                m,
                "SIRCLO refused the update: Parameter yang diberikan salah (order status \
                 `pending`, updated_at `2019-05-27 06:06:11.979185`)"
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(outcome_in(&answer, "789"), PushOutcome::Failed(m) if m.contains("no reason given"))
        );
        for unknown in ["123", "999"] {
            assert!(
                matches!(
                    outcome_in(&answer, unknown),
                    PushOutcome::Retry(HttpError::OutcomeUnknown { .. })
                ),
                "{unknown}"
            );
        }
        let ok = read_answer(
            "s",
            &resp(r#"{"data":{"succeed":[{"id":7}],"failed":null}}"#),
        )
        .unwrap();
        assert!(matches!(outcome_in(&ok, "7"), PushOutcome::Done));
        assert!(read_answer("s", &resp(r#"{"data":null,"message":"x"}"#)).is_err());
        assert!(read_answer("s", &resp(r#"{"data":{"succ"#)).is_err());
    }

    #[test]
    fn a_whole_request_failure_is_retried_only_when_sending_again_can_help() {
        let transient = HttpError::Transient {
            reason: "HTTP 503".into(),
        };
        assert!(matches!(
            whole_request_outcome(&transient),
            PushOutcome::Retry(_)
        ));
        assert!(matches!(
            whole_request_outcome(&HttpError::Cancelled),
            PushOutcome::Retry(HttpError::Cancelled)
        ));
        let refused = HttpError::from_status(400, None, "No order to update".into());
        assert!(
            matches!(whole_request_outcome(&refused), PushOutcome::Failed(m) if m.contains("No order to update"))
        );
        let creds = HttpError::from_status(401, None, String::new());
        assert!(matches!(
            whole_request_outcome(&creds),
            PushOutcome::Failed(_)
        ));
    }
}
