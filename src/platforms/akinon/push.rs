//! Akinon's write side (docs/platforms/akinon.md, Pushing): the seller API has no
//! order-level status update, only `POST /api/i1/order-items/{id}/reject/` with body `{}` →
//! 204, which cancels one line. A `cancelled` or `rejected` entry therefore rejects each
//! targeted line of its order (every line, or the `--item` ones) one request at a time; the
//! order itself reads back as 800/900 once all its lines are, which is what the next sync
//! confirms.
//!
//! What a retry may find, and what we decided:
//! - Lines the last sync already saw at 800/900 are skipped: rejecting them again is refused.
//! - A 400 is ambiguous: the document lists it only as "invalid request body"; in fact
//!   a packaged line answers 400 (final), and a line already rejected (by an earlier attempt of
//!   this entry whose later line failed) is refused the same way by the API as we know it. The
//!   message text is not documented, so it is not parsed: the order's lines are read back, and
//!   a line that reads 800/900 counts as rejected; anything else fails the entry at once with
//!   the platform's own text.
//! - When the last attempt's outcome is unknown, the outbox asks [`Akinon::already_applied`]
//!   first; if not every line is done, the send reads the lines back again and skips the ones
//!   that landed, so no line is ever posted twice after a lost answer.

use std::collections::HashMap;
use std::collections::HashSet;

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

use super::{Akinon, Delivery, ITEMS, JSON, Listed, list_token, wire};
use crate::http::HttpError;
use crate::model::Status;
use crate::model::{Action, Entry};
use crate::platforms::{Push, PushOutcome};

/// What Akinon can be asked to do: both end in rejected lines (docs/contract.md §4).
pub const PUSH_ACTIONS: &[&str] = &["cancelled", "rejected"];

/// The reject body (docs/platforms/akinon.md): the endpoint takes no fields, and an empty JSON
/// object is what the `Content-Type: application/json` we must send promises.
const REJECT_BODY: &str = "{}";

/// Item statuses that mean the line is gone: cancelled or rejected.
fn is_rejected(status: &str) -> bool {
    matches!(status.trim(), "800" | "900")
}

/// Line id → platform status, as read back from the item list.
type LineStatuses = HashMap<String, String>;

impl Akinon {
    async fn push_one(&self, e: &Entry) -> PushOutcome {
        if !matches!(
            e.action,
            Action::Status(Status::Cancelled) | Action::Status(Status::Rejected)
        ) {
            return PushOutcome::Failed(format!(
                "akinon cannot set `{}` (it can do: {})",
                e.action,
                PUSH_ACTIONS.join(", ")
            ));
        }
        let targets = targets(e);
        if targets.is_empty() {
            return PushOutcome::Failed(format!(
                "order {} has no items stored: Akinon cancels an order by rejecting its items; \
                 run `ordersync sync {}` first",
                e.order_id, e.platform
            ));
        }
        // Each line's status as last known: the last sync's, overwritten by any read-back.
        let mut known: LineStatuses = e
            .order
            .items
            .iter()
            .filter_map(|i| Some((i.item_id.clone(), i.status.clone()?)))
            .collect();
        // The outbox found the entry not fully applied after a lost answer: learn which lines
        // did land, so none is posted twice.
        if e.outcome_unknown {
            match self.line_statuses(e).await {
                Ok(lines) => known.extend(lines),
                Err(err) => return PushOutcome::Retry(err),
            }
        }
        let mut rejected: Vec<&str> = Vec::new();
        for item in targets {
            if known.get(item).is_some_and(|s| is_rejected(s)) {
                continue;
            }
            match self.reject_item(item).await {
                Ok(()) => rejected.push(item),
                Err(err @ HttpError::Permanent { status: 400, .. }) => {
                    // Read after the refusal, so it shows what the platform holds now; it
                    // covers every line, so later lines already rejected are skipped unsent.
                    match self.line_statuses(e).await {
                        Ok(lines) => known.extend(lines),
                        Err(read_err) => return PushOutcome::Retry(read_err),
                    }
                    if known.get(item).is_some_and(|s| is_rejected(s)) {
                        continue;
                    }
                    return PushOutcome::Failed(refusal(item, &err, &rejected));
                }
                Err(err) if err.is_retryable() => return PushOutcome::Retry(err),
                Err(err) => return PushOutcome::Failed(refusal(item, &err, &rejected)),
            }
        }
        PushOutcome::Done
    }

    /// `POST /api/i1/order-items/{id}/reject/`, exactly once (plus one resend after a fresh
    /// login, if the token was refused).
    async fn reject_item(&self, item: &str) -> Result<(), HttpError> {
        let url = self.reject_url(item)?;
        let what = format!("POST {ITEMS}{item}/reject/");
        self.authorized(
            Delivery::Push,
            &what,
            |c, auth| {
                c.post(url.clone())
                    .header(AUTHORIZATION, auth)
                    .header(ACCEPT, JSON)
                    .header(CONTENT_TYPE, JSON)
                    .body(REJECT_BODY)
            },
            // 204 has no body; any 2xx means the line was rejected.
            |_| Ok(()),
        )
        .await
    }

    fn reject_url(&self, item: &str) -> Result<Url, HttpError> {
        let mut url = self.url(ITEMS)?;
        url.path_segments_mut()
            .map_err(|_| HttpError::NotSent {
                reason: format!("base_url {} cannot take a path", self.root),
            })?
            // The root ends in `/`: drop the empty last segment, then add the item's, encoded
            // (an id is the platform's text and must not reshape the path).
            .pop_if_empty()
            .extend([item, "reject", ""]);
        Ok(url)
    }

    /// Every line of the entry's order with its status now: the item list filtered by
    /// `order__number` (the only filter naming one order), all pages, this order's lines only.
    async fn line_statuses(&self, e: &Entry) -> Result<LineStatuses, HttpError> {
        let mut token = list_token(
            ITEMS,
            &[("order__number", e.order.number.clone())],
            self.limit,
        );
        let mut lines = LineStatuses::new();
        loop {
            let list: Listed<wire::Item> = self.get_list(&token).await?;
            let had_records = !list.records.is_empty();
            for rec in list.records {
                // A line too broken to read is no proof either way: it stays unknown, which
                // reads as "not rejected".
                if let Ok(item) = rec.read
                    && item.order == e.order_id
                {
                    lines.insert(item.id, item.status.unwrap_or_default());
                }
            }
            match self.next_token(&token, list.next, had_records) {
                Some(next) => token = next,
                None => return Ok(lines),
            }
        }
    }
}

impl Push for Akinon {
    /// One entry after the other, each line after the other: the API has no batch endpoint, and
    /// the shared rate limit paces the requests.
    async fn push(&self, entries: &[Entry]) -> Vec<PushOutcome> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(self.push_one(e).await);
        }
        out
    }
    /// Reads the order's lines back: is every targeted line already cancelled or rejected?
    async fn already_applied(&self, e: &Entry) -> Result<bool, HttpError> {
        let lines = self.line_statuses(e).await?;
        let targets = targets(e);
        if targets.is_empty() {
            // Nothing stored to compare with: the order's lines as the platform has them now.
            return Ok(!lines.is_empty() && lines.values().all(|s| is_rejected(s)));
        }
        Ok(targets
            .iter()
            .all(|t| lines.get(*t).is_some_and(|s| is_rejected(s))))
    }
}

/// The lines an entry acts on, in the stored order: the `--item` ones, else every stored line.
fn targets(e: &Entry) -> Vec<&str> {
    if e.params.items.is_empty() {
        e.order.items.iter().map(|i| i.item_id.as_str()).collect()
    } else {
        let mut seen = HashSet::new();
        e.params
            .items
            .iter()
            .map(String::as_str)
            .filter(|i| seen.insert(*i))
            .collect()
    }
}

/// The failure text: which line, the platform's own answer, and which lines this attempt had
/// already rejected (those are gone on the platform whatever the sysadmin decides next).
fn refusal(item: &str, err: &HttpError, rejected: &[&str]) -> String {
    let mut text = format!("item {item}: {err}");
    if !rejected.is_empty() {
        text.push_str(&format!(
            " (items rejected before it: {})",
            rejected.join(", ")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StoredItem;
    use crate::model::{OrderSnapshot, Params};

    fn entry(items: &[(&str, &str)], only: &[&str]) -> Entry {
        Entry {
            id: 1,
            platform: "ak".into(),
            order_id: "o1".into(),
            action: Action::Status(Status::Cancelled),
            params: Params {
                items: only.iter().map(|s| s.to_string()).collect(),
                ..Params::default()
            },
            attempts: 0,
            outcome_unknown: false,
            order: OrderSnapshot {
                number: "45000001".into(),
                status: Status::Pending,
                platform_status: "100".into(),
                raw: "{}".into(),
                items: items
                    .iter()
                    .map(|(id, status)| StoredItem {
                        item_id: id.to_string(),
                        sku: None,
                        name: None,
                        quantity: "1".into(),
                        unit_price: None,
                        status: Some(status.to_string()),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn an_entry_targets_its_named_items_once_else_every_stored_item() {
        let all = entry(&[("a", "100"), ("b", "800"), ("c", "200")], &[]);
        assert_eq!(targets(&all), ["a", "b", "c"]);
        let some = entry(&[("a", "100"), ("b", "100")], &["b", "a", "b"]);
        assert_eq!(targets(&some), ["b", "a"]);
    }

    #[test]
    fn only_cancelled_and_rejected_lines_count_as_done() {
        assert!(is_rejected("800") && is_rejected(" 900"));
        for s in ["100", "300", "400", "700", "", "rejected"] {
            assert!(!is_rejected(s), "{s}");
        }
    }

    #[test]
    fn a_refusal_names_the_line_the_platforms_text_and_what_was_already_done() {
        let err = HttpError::Permanent {
            status: 400,
            message: "Packaged order items cannot be rejected.".into(),
        };
        let text = refusal("i2", &err, &["i1"]);
        assert!(
            text.starts_with("item i2: ")
                && text.contains("HTTP 400")
                && text.contains("Packaged order items cannot be rejected.")
                && text.ends_with("(items rejected before it: i1)"),
            "{text}"
        );
        assert_eq!(
            refusal("i1", &err, &[]),
            "item i1: the platform rejected the request (HTTP 400): \
             Packaged order items cannot be rejected."
        );
    }
}
