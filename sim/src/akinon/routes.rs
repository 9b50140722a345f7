//! Akinon's HTTP side: the router, the gate (auth, then one queued fault), the error
//! bodies, and one handler per endpoint with the platform's validation.

use std::collections::HashSet;
use std::ops::Range;
use std::str::FromStr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::data::{SimItem, SimOrder, now_micros};
use super::{
    AkinonSim, CURRENCIES, DEFAULT_PAGE_SIZE, ITEMS_PATH, ORDERS_PATH, REJECT_PATH, TOKEN_PATH,
    UNSIMULATED_PATHS, shop_tz,
};
use crate::core::data::SimRng;
use crate::core::faults::{CorruptOneRecord, apply_fault, push_record};
use crate::core::server::json_response;

/// The complete app: the routes behind the gate, every request logged.
pub(super) fn router(sim: &AkinonSim) -> Router {
    let mut router = Router::new()
        .route(ORDERS_PATH, get(list_orders))
        .route(ITEMS_PATH, get(list_items))
        .route(REJECT_PATH, post(reject_item))
        .route(TOKEN_PATH, post(obtain_token));
    for path in UNSIMULATED_PATHS {
        router = router.route(path, get(not_simulated));
    }
    let routes = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sim.clone())
        .layer(middleware::from_fn_with_state(sim.clone(), gate));
    sim.inner.harness.app(routes)
}

impl AkinonSim {
    /// simplejwt's `JWTAuthentication`: `Authorization: Bearer <token>`, nothing else. `None`
    /// when the request may proceed, else the 401.
    pub(super) fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = presented else {
            return Some(unauthorized(
                "Authentication credentials were not provided.",
                None,
            ));
        };
        if !self.inner.token.is_empty() && token == self.inner.token {
            return None;
        }
        if self.inner.tokens.admit(token) {
            return None;
        }
        Some(unauthorized(
            "Given token not valid for any token type",
            Some("token_not_valid"),
        ))
    }

    pub(super) fn issue_token(&self) -> (String, String) {
        self.inner.tokens.issue(|n| {
            let mut rng = SimRng::for_record(self.inner.seed ^ 0x706b_656e, n);
            let jwt = |kind: &str, rng: &mut SimRng| {
                let payload = json!({"token_type": kind, "jti": rng.hex(32), "user_id": 1});
                format!(
                    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
                    URL_SAFE_NO_PAD.encode(payload.to_string()),
                    URL_SAFE_NO_PAD.encode(rng.hex(32))
                )
            };
            let access = jwt("access", &mut rng);
            (access, jwt("refresh", &mut rng))
        })
    }
}

/// Content type first (the document: 415 for a missing or invalid one), then `Accept` (406),
/// then auth (401; the login endpoint excepted), then one queued fault.
async fn gate(State(sim): State<AkinonSim>, req: Request, next: Next) -> Response {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "Unsupported media type \"{}\" in request.",
                content_type.unwrap_or_default()
            ),
        );
    }
    if !accepts_json(req.headers()) {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            "Could not satisfy the request Accept header.",
        );
    }
    if req.uri().path() != TOKEN_PATH
        && let Some(refused) = sim.refusal(req.headers())
    {
        return refused;
    }
    apply_fault(sim.inner.harness.next_fault(), req, next, error_response).await
}

pub(super) fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or("").trim();
        matches!(
            media.to_ascii_lowercase().as_str(),
            "application/json" | "application/*" | "*/*"
        )
    })
}

/// DRF's error body: `{"detail": "…"}`.
pub(super) fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "detail": message }).to_string())
}

pub(super) fn unauthorized(message: &str, code: Option<&str>) -> Response {
    let body = match code {
        Some(code) => json!({ "detail": message, "code": code }),
        None => json!({ "detail": message }),
    };
    let mut response = json_response(StatusCode::UNAUTHORIZED, body.to_string());
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"api\""),
    );
    response
}

/// A refusal, rendered as DRF renders it; small, so validation code can return it in a
/// `Result`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, self.body.to_string())
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn detail(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        body: json!({ "detail": message.into() }),
    }
}

/// django-filter's answer to a bad value: the field, with its form error.
pub(super) fn field_error(field: &str, message: &str) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({ field: [message] }),
    }
}

pub(super) fn invalid_page() -> ApiError {
    detail(StatusCode::NOT_FOUND, "Invalid page.")
}

pub(super) async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "Not found.")
}

pub(super) async fn not_simulated() -> Response {
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        "This documented endpoint is not simulated.",
    )
}

pub(super) async fn method_not_allowed(method: Method) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("Method \"{method}\" not allowed."),
    )
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    pub(super) fn from_lookup(lookup: &str) -> Option<Cmp> {
        Some(match lookup {
            "lt" => Cmp::Lt,
            "lte" => Cmp::Lte,
            "gt" => Cmp::Gt,
            "gte" => Cmp::Gte,
            _ => return None,
        })
    }

    /// `value <op> bound`.
    pub(super) fn holds<T: PartialOrd>(self, value: &T, bound: &T) -> bool {
        match self {
            Cmp::Lt => value < bound,
            Cmp::Lte => value <= bound,
            Cmp::Gt => value > bound,
            Cmp::Gte => value >= bound,
        }
    }

    /// Narrows `range` (positions in a list sorted by `key`) to those where `key <op> bound`.
    pub(super) fn narrow(self, range: &mut Range<usize>, keys: impl Fn(usize) -> i64, bound: i64) {
        let (start, end) = (range.start, range.end);
        // The first position in `range` where `pred` holds (`pred` is monotonic over it).
        let first = |pred: &dyn Fn(i64) -> bool| {
            let (mut lo, mut hi) = (start, end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if pred(keys(mid)) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        };
        match self {
            Cmp::Gte => range.start = first(&|k| k >= bound),
            Cmp::Gt => range.start = first(&|k| k > bound),
            Cmp::Lt => range.end = first(&|k| k >= bound),
            Cmp::Lte => range.end = first(&|k| k > bound),
        }
        range.end = range.end.max(range.start);
    }
}

/// The filters of `GET /api/i1/orders/` (the document's table).
#[derive(Debug)]
pub(super) enum OrderFilter {
    Number(String),
    NumberContains(String),
    NumberIContains(String),
    Status(i64),
    DatePlaced(Cmp, i64),
    Amount(Cmp, Decimal),
    DiscountAmount(Cmp, Decimal),
    Currency(String),
    HasGiftBox(bool),
    CreatedAt(Cmp, i64),
    UpdatedAt(Cmp, i64),
}

impl OrderFilter {
    pub(super) fn parse(key: &str, value: &str) -> Result<Option<OrderFilter>, ApiError> {
        let (field, lookup) = split_lookup(key);
        Ok(Some(match (field, lookup) {
            ("number", None) => OrderFilter::Number(value.to_owned()),
            ("number", Some("contains")) => OrderFilter::NumberContains(value.to_owned()),
            ("number", Some("icontains")) => OrderFilter::NumberIContains(value.to_lowercase()),
            ("status", None) => OrderFilter::Status(parse_int(key, value)?),
            ("date_placed", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::DatePlaced(cmp(l), parse_datetime(key, value)?)
            }
            ("amount", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::Amount(cmp(l), parse_decimal(key, value)?)
            }
            ("discount_amount", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::DiscountAmount(cmp(l), parse_decimal(key, value)?)
            }
            ("currency", None) => OrderFilter::Currency(parse_currency(key, value)?),
            ("has_gift_box", None) => OrderFilter::HasGiftBox(parse_bool(key, value)?),
            ("created_at", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::CreatedAt(cmp(l), parse_datetime(key, value)?)
            }
            ("updated_at", Some(l)) if Cmp::from_lookup(l).is_some() => {
                OrderFilter::UpdatedAt(cmp(l), parse_datetime(key, value)?)
            }
            _ => return Ok(None),
        }))
    }

    pub(super) fn matches(&self, o: &SimOrder) -> bool {
        match self {
            OrderFilter::Number(n) => o.rec.number == *n,
            OrderFilter::NumberContains(s) => o.rec.number.contains(s.as_str()),
            OrderFilter::NumberIContains(s) => o.rec.number.to_lowercase().contains(s.as_str()),
            OrderFilter::Status(s) => i64::from(o.rec.status) == *s,
            OrderFilter::DatePlaced(c, t) => c.holds(&o.placed, t),
            OrderFilter::Amount(c, d) => c.holds(&o.rec.amount, d),
            OrderFilter::DiscountAmount(c, d) => c.holds(&o.rec.discount_amount, d),
            OrderFilter::Currency(cur) => o.rec.currency == cur.as_str(),
            OrderFilter::HasGiftBox(b) => o.rec.has_gift_box == *b,
            OrderFilter::CreatedAt(c, t) => c.holds(&o.created, t),
            OrderFilter::UpdatedAt(c, t) => c.holds(&o.updated, t),
        }
    }
}

/// The filters of `GET /api/i1/order-items/`, with the document's Markdown-eaten names
/// restored (`ordernumbercontains` is `order__number__contains`, and so on).
#[derive(Debug)]
pub(super) enum ItemFilter {
    OrderNumber(String),
    OrderStatus(i64),
    OrderNumberContains(String),
    OrderNumberIContains(String),
    Status(i64),
    OrderDatePlaced(Cmp, i64),
    Price(Cmp, Decimal),
    RetailPrice(Cmp, Decimal),
    DiscountAmount(Cmp, Decimal),
    PriceCurrency(String),
    CreatedAt(Cmp, i64),
    UpdatedAt(Cmp, i64),
}

impl ItemFilter {
    pub(super) fn parse(key: &str, value: &str) -> Result<Option<ItemFilter>, ApiError> {
        let (field, lookup) = split_lookup(key);
        Ok(Some(match (field, lookup) {
            ("order__number", None) => ItemFilter::OrderNumber(value.to_owned()),
            ("order__number", Some("contains")) => {
                ItemFilter::OrderNumberContains(value.to_owned())
            }
            ("order__number", Some("icontains")) => {
                ItemFilter::OrderNumberIContains(value.to_lowercase())
            }
            ("order__status", None) => ItemFilter::OrderStatus(parse_int(key, value)?),
            ("status", None) => ItemFilter::Status(parse_int(key, value)?),
            ("order__date_placed", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::OrderDatePlaced(cmp(l), parse_datetime(key, value)?)
            }
            ("price", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::Price(cmp(l), parse_decimal(key, value)?)
            }
            ("retail_price", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::RetailPrice(cmp(l), parse_decimal(key, value)?)
            }
            ("discount_amount", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::DiscountAmount(cmp(l), parse_decimal(key, value)?)
            }
            ("price_currency", None) => ItemFilter::PriceCurrency(parse_currency(key, value)?),
            ("created_at", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::CreatedAt(cmp(l), parse_datetime(key, value)?)
            }
            ("updated_at", Some(l)) if Cmp::from_lookup(l).is_some() => {
                ItemFilter::UpdatedAt(cmp(l), parse_datetime(key, value)?)
            }
            _ => return Ok(None),
        }))
    }

    pub(super) fn matches(&self, i: &SimItem, o: &SimOrder) -> bool {
        match self {
            ItemFilter::OrderNumber(n) => o.rec.number == *n,
            ItemFilter::OrderStatus(s) => i64::from(o.rec.status) == *s,
            ItemFilter::OrderNumberContains(s) => o.rec.number.contains(s.as_str()),
            ItemFilter::OrderNumberIContains(s) => o.rec.number.to_lowercase().contains(s.as_str()),
            ItemFilter::Status(s) => i64::from(i.rec.status) == *s,
            ItemFilter::OrderDatePlaced(c, t) => c.holds(&o.placed, t),
            ItemFilter::Price(c, d) => c.holds(&i.rec.price, d),
            // SQL: a comparison with NULL matches nothing.
            ItemFilter::RetailPrice(c, d) => i.rec.retail_price.is_some_and(|p| c.holds(&p, d)),
            ItemFilter::DiscountAmount(c, d) => c.holds(&i.rec.discount_amount, d),
            ItemFilter::PriceCurrency(cur) => i.rec.price_currency == cur.as_str(),
            ItemFilter::CreatedAt(c, t) => c.holds(&i.created, t),
            ItemFilter::UpdatedAt(c, t) => c.holds(&i.updated, t),
        }
    }
}

pub(super) fn split_lookup(key: &str) -> (&str, Option<&str>) {
    match key.rsplit_once("__") {
        Some((field, lookup))
            if matches!(
                lookup,
                "lt" | "lte" | "gt" | "gte" | "contains" | "icontains"
            ) =>
        {
            (field, Some(lookup))
        }
        _ => (key, None),
    }
}

pub(super) fn cmp(lookup: &str) -> Cmp {
    Cmp::from_lookup(lookup).expect("checked by the caller")
}

pub(super) fn parse_int(key: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| field_error(key, "Enter a number."))
}

pub(super) fn parse_decimal(key: &str, value: &str) -> Result<Decimal, ApiError> {
    Decimal::from_str(value.trim()).map_err(|_| field_error(key, "Enter a number."))
}

pub(super) fn parse_bool(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "True" | "1" => Ok(true),
        "false" | "False" | "0" => Ok(false),
        _ => Err(field_error(key, "Select a valid choice.")),
    }
}

pub(super) fn parse_currency(key: &str, value: &str) -> Result<String, ApiError> {
    let lower = value.trim().to_ascii_lowercase();
    if CURRENCIES.contains(&lower.as_str()) {
        Ok(lower)
    } else {
        Err(field_error(
            key,
            &format!("Select a valid choice. {value} is not one of the available choices."),
        ))
    }
}

/// Django's `DateTimeField`: ISO 8601 with `T` or a space, optional fraction, optional zone
/// (naive times are in the shop's zone), or a bare date (its midnight). Microseconds.
pub(super) fn parse_datetime(key: &str, value: &str) -> Result<i64, ApiError> {
    let v = value.trim();
    let invalid = || field_error(key, "Enter a valid date/time.");
    if let Ok(t) = DateTime::parse_from_rfc3339(v)
        .or_else(|_| DateTime::parse_from_rfc3339(&v.replacen(' ', "T", 1)))
    {
        return Ok(t.timestamp_micros());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(v, fmt) {
            return shop_tz()
                .from_local_datetime(&n)
                .single()
                .map(|t| t.timestamp_micros())
                .ok_or_else(invalid);
        }
    }
    let day = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| invalid())?;
    shop_tz()
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).ok_or_else(invalid)?)
        .single()
        .map(|t| t.timestamp_micros())
        .ok_or_else(invalid)
}

#[derive(Debug, Clone, Copy)]
pub(super) enum PageNumber {
    N(usize),
    Last,
}

/// A list request: DRF's `page` and `limit`, then the endpoint's filters.
#[derive(Debug)]
pub(super) struct ListQuery<F> {
    pub(super) page: PageNumber,
    pub(super) limit: Option<usize>,
    pub(super) filters: Vec<F>,
}

impl<F> ListQuery<F> {
    pub(super) fn parse(
        uri: &Uri,
        filter: impl Fn(&str, &str) -> Result<Option<F>, ApiError>,
    ) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut seen = HashSet::new();
        let mut q = ListQuery {
            page: PageNumber::N(1),
            limit: None,
            filters: Vec::new(),
        };
        for (key, value) in &pairs {
            if !seen.insert(key.as_str()) {
                return Err(detail(
                    StatusCode::BAD_REQUEST,
                    format!("Duplicate query parameter: {key}"),
                ));
            }
            match key.as_str() {
                // DRF answers any page it cannot serve with 404 "Invalid page.".
                "page" => {
                    q.page = match value.as_str() {
                        "last" => PageNumber::Last,
                        v => PageNumber::N(
                            v.parse().ok().filter(|&n| n > 0).ok_or_else(invalid_page)?,
                        ),
                    }
                }
                "limit" => {
                    q.limit = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|&n: &usize| n > 0)
                            .ok_or_else(|| field_error("limit", "Enter a positive integer."))?,
                    );
                }
                _ => match filter(key, value)? {
                    Some(f) => q.filters.push(f),
                    None => {
                        return Err(detail(
                            StatusCode::BAD_REQUEST,
                            format!("Unknown query parameter: {key}"),
                        ));
                    }
                },
            }
        }
        Ok(q)
    }
}

/// Which slice of `count` matches a page shows, and its `next`/`previous` page numbers.
pub(super) struct Paged {
    pub(super) range: Range<usize>,
    pub(super) next: Option<usize>,
    pub(super) previous: Option<usize>,
}

pub(super) fn paginate(
    count: usize,
    page: PageNumber,
    limit: Option<usize>,
    max: usize,
) -> Result<Paged, ApiError> {
    let size = limit.unwrap_or(DEFAULT_PAGE_SIZE).min(max);
    let pages = count.div_ceil(size).max(1);
    let n = match page {
        PageNumber::N(n) => n,
        PageNumber::Last => pages,
    };
    if n > pages {
        return Err(invalid_page());
    }
    Ok(Paged {
        range: (n - 1) * size..(n * size).min(count),
        next: (n < pages).then_some(n + 1),
        previous: (n > 1).then_some(n - 1),
    })
}

/// A page link as DRF builds it: absolute, the query parsed, `page` replaced (or, for page 1,
/// removed), sorted by key and re-encoded (`:` becomes `%3A`).
pub(super) fn page_link(base: &str, path: &str, query: Option<&str>, page: usize) -> String {
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .filter(|(k, _)| k != "page")
            .collect();
    if page > 1 {
        pairs.push(("page".to_owned(), page.to_string()));
    }
    pairs.sort();
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    if encoded.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{encoded}")
    }
}

impl AkinonSim {
    /// `http://<Host>` as Django sees it, unless a proxy's base is configured.
    pub(super) fn link_base(&self, headers: &HeaderMap) -> String {
        if let Some(b) = &self.inner.link_base {
            return b.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    /// `{count, next, previous, results}` with the records at `positions` (already the page).
    pub(super) fn list_body<'a>(
        &self,
        req: &Request,
        count: usize,
        paged: &Paged,
        records: impl ExactSizeIterator<Item = &'a str>,
    ) -> String {
        let corrupt = CorruptOneRecord::asked(req);
        let base = self.link_base(req.headers());
        let link =
            |p: Option<usize>| p.map(|p| page_link(&base, req.uri().path(), req.uri().query(), p));
        let envelope = json!({
            "count": count,
            "next": link(paged.next),
            "previous": link(paged.previous),
        })
        .to_string();
        let n = records.len();
        let mut body = String::with_capacity(envelope.len() + n * 1200 + 16);
        body.push_str(&envelope[..envelope.len() - 1]);
        body.push_str(",\"results\":[");
        for (k, record) in records.enumerate() {
            if k > 0 {
                body.push(',');
            }
            push_record(
                &mut body,
                record,
                corrupt && CorruptOneRecord::is_target(k, n),
            );
        }
        body.push_str("]}");
        body
    }
}

/// `GET /api/i1/orders/`, oldest placed first.
pub(super) async fn list_orders(State(sim): State<AkinonSim>, req: Request) -> ApiResult {
    let q = ListQuery::parse(req.uri(), OrderFilter::parse)?;
    let shop = sim.inner.shop.read();
    let (orders, listing) = (shop.orders.orders(), shop.orders.listing());
    // Positions in the listing.
    let mut range = 0..listing.len();
    for f in &q.filters {
        match f {
            OrderFilter::DatePlaced(c, t) => {
                c.narrow(&mut range, |p| orders[listing[p]].placed, *t)
            }
            OrderFilter::Number(n) => {
                range = match shop
                    .by_number
                    .get(n)
                    .and_then(|&i| shop.orders.position_of(i))
                {
                    Some(p) if range.contains(&p) => p..p + 1,
                    _ => 0..0,
                }
            }
            _ => {}
        }
    }
    let matches: Vec<usize> = listing[range]
        .iter()
        .copied()
        .filter(|&i| q.filters.iter().all(|f| f.matches(&orders[i])))
        .collect();
    let paged = paginate(matches.len(), q.page, q.limit, sim.inner.max_page_size)?;
    let records = matches[paged.range.clone()]
        .iter()
        .map(|&i| orders[i].json.as_str());
    let body = sim.list_body(&req, matches.len(), &paged, records);
    drop(shop);
    Ok(json_response(StatusCode::OK, body))
}

/// `GET /api/i1/order-items/`, in the order of their orders.
pub(super) async fn list_items(State(sim): State<AkinonSim>, req: Request) -> ApiResult {
    let q = ListQuery::parse(req.uri(), ItemFilter::parse)?;
    let shop = sim.inner.shop.read();
    let (orders, listing) = (shop.orders.orders(), shop.orders.listing());
    // Positions in the listing.
    let mut order_range = 0..listing.len();
    for f in &q.filters {
        match f {
            ItemFilter::OrderDatePlaced(c, t) => {
                c.narrow(&mut order_range, |p| orders[listing[p]].placed, *t)
            }
            ItemFilter::OrderNumber(n) => {
                order_range = match shop
                    .by_number
                    .get(n)
                    .and_then(|&i| shop.orders.position_of(i))
                {
                    Some(p) if order_range.contains(&p) => p..p + 1,
                    _ => 0..0,
                }
            }
            _ => {}
        }
    }
    let matches: Vec<usize> = listing[order_range]
        .iter()
        .flat_map(|&o| orders[o].items.clone())
        .filter(|&i| {
            let item = &shop.items[i];
            q.filters
                .iter()
                .all(|f| f.matches(item, &orders[item.order]))
        })
        .collect();
    let paged = paginate(matches.len(), q.page, q.limit, sim.inner.max_page_size)?;
    let records = matches[paged.range.clone()]
        .iter()
        .map(|&i| shop.items[i].json.as_str());
    let body = sim.list_body(&req, matches.len(), &paged, records);
    drop(shop);
    Ok(json_response(StatusCode::OK, body))
}

/// The body of a POST: empty, or a JSON object (DRF parses an empty body as `{}`).
pub(super) fn json_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "non_field_errors": [format!(
                "Invalid data. Expected a dictionary, but got {}.",
                match other { Value::Array(_) => "list", Value::String(_) => "str", Value::Number(_) => "int", Value::Bool(_) => "bool", _ => "NoneType" }
            )] }),
        }),
        Err(e) => Err(detail(
            StatusCode::BAD_REQUEST,
            format!("JSON parse error - {e}"),
        )),
    }
}

/// `POST /api/i1/order-items/{id}/reject/`: items not yet packaged (100, 200, 300) become
/// [`SimOptions::rejected_status`]; the order follows once every one of its items is 800 or 900.
pub(super) async fn reject_item(
    State(sim): State<AkinonSim>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    json_object(&body)?;
    let rejected = sim.inner.rejected_status;
    let mut shop = sim.inner.shop.write();
    let index = *shop
        .item_by_id
        .get(&id)
        .filter(|&&i| shop.orders.live(shop.items[i].order).is_some())
        .ok_or_else(|| detail(StatusCode::NOT_FOUND, "Not found."))?;
    let status = shop.items[index].rec.status;
    match status {
        100 | 200 | 300 => {}
        400..=600 => {
            return Err(detail(
                StatusCode::BAD_REQUEST,
                "Packaged order items cannot be rejected.",
            ));
        }
        700..=900 => {
            return Err(detail(
                StatusCode::BAD_REQUEST,
                "This order item is already cancelled.",
            ));
        }
        other => {
            return Err(detail(
                StatusCode::BAD_REQUEST,
                format!("Order items in status {other} cannot be rejected."),
            ));
        }
    }
    let now = now_micros();
    shop.items[index].set_status(rejected, now);
    let order = shop.items[index].order;
    let statuses: Vec<u16> = shop.items[shop.orders[order].items.clone()]
        .iter()
        .map(|i| i.rec.status)
        .collect();
    if statuses.iter().all(|s| matches!(s, 800 | 900)) {
        let follows = if statuses.iter().all(|&s| s == 900) {
            900
        } else {
            800
        };
        shop.orders[order].set_status(follows, now);
    }
    drop(shop);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/i1/token/obtain/` `{"email", "password"}` → `{"refresh", "access"}` (simplejwt).
pub(super) async fn obtain_token(State(sim): State<AkinonSim>, body: Bytes) -> ApiResult {
    let fields = json_object(&body)?;
    let mut missing = serde_json::Map::new();
    for key in ["email", "password"] {
        match fields.get(key) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) => {
                missing.insert(key.into(), json!(["This field may not be blank."]));
            }
            Some(_) => {
                missing.insert(key.into(), json!(["Not a valid string."]));
            }
            None => {
                missing.insert(key.into(), json!(["This field is required."]));
            }
        }
    }
    if !missing.is_empty() {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            body: Value::Object(missing),
        });
    }
    if fields["email"] != sim.inner.email.as_str()
        || fields["password"] != sim.inner.password.as_str()
    {
        return Err(detail(
            StatusCode::UNAUTHORIZED,
            "No active account found with the given credentials",
        ));
    }
    let (access, refresh) = sim.issue_token();
    Ok(json_response(
        StatusCode::OK,
        json!({ "refresh": refresh, "access": access }).to_string(),
    ))
}
