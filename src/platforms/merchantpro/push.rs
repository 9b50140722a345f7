//! MerchantPro's push: one `PUT` per entry on the order's `handler` endpoint (a tracking
//! number first, as a data update), and the read-back of an order whose last attempt may have
//! landed.

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

use super::{LIST_PATH, MerchantPro, map, wire};
use crate::http::HttpError;
use crate::model::{Action, Entry, Status};
use crate::platforms::{Push, PushOutcome};

/// What MerchantPro can be asked to do (it has no handler for `confirmed`).
pub const PUSH_ACTIONS: &[&str] = &[
    "processing",
    "shipped",
    "delivered",
    "returned",
    "cancelled",
    "invoice",
];

fn handler(action: Action) -> Option<&'static str> {
    Some(match action {
        Action::Status(Status::Processing) => "in_process",
        Action::Status(Status::Shipped) => "shipped",
        Action::Status(Status::Delivered) => "delivered",
        Action::Status(Status::Returned) => "returned",
        Action::Status(Status::Cancelled) => "cancelled",
        Action::Invoice => "create_invoice",
        Action::Status(_) => return None,
    })
}

#[derive(serde::Deserialize)]
struct Ok_ {
    #[serde(default)]
    ok: bool,
}

impl MerchantPro {
    async fn push_one(&self, e: &Entry) -> PushOutcome {
        let Some(handler) = handler(e.action) else {
            return PushOutcome::Failed(format!("merchantpro cannot set `{}`", e.action));
        };
        if let (Action::Status(Status::Shipped), Some(awb)) = (e.action, &e.params.tracking_number)
        {
            let path = format!("{LIST_PATH}/{}", e.order_id);
            let body = serde_json::json!({ "shipping_awb": awb }).to_string();
            let r = self
                .http
                .execute_push(
                    &path,
                    |c| self.request(c.patch(self.url(&path)).body(body.clone())),
                    |_| Ok(()),
                )
                .await;
            if let Err(err) = r {
                return outcome_of(err);
            }
        }
        let path = format!("{LIST_PATH}/{}/{handler}", e.order_id);
        let r = self
            .http
            .execute_push(
                &path,
                |c| self.request(c.patch(self.url(&path))),
                |resp| {
                    serde_json::from_slice::<Ok_>(&resp.body)
                        .map(|o| o.ok)
                        .map_err(|e| format!("not the documented {{\"ok\": true}}: {e}"))
                },
            )
            .await;
        match r {
            Ok(true) => PushOutcome::Done,
            Ok(false) => PushOutcome::Failed("the platform answered {\"ok\": false}".into()),
            Err(err) => outcome_of(err),
        }
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    fn request(&self, b: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        b.header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
    }
}

impl Push for MerchantPro {
    /// Each entry on its own: MerchantPro has no batch endpoint. A tracking number goes first,
    /// with the data update, so the order is never "shipped" without its AWB.
    async fn push(&self, entries: &[Entry]) -> Vec<PushOutcome> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(self.push_one(e).await);
        }
        out
    }
    /// `GET /api/v2/orders/{id}`: is the order already in the entry's target state?
    async fn already_applied(&self, e: &Entry) -> Result<bool, HttpError> {
        let path = format!("{LIST_PATH}/{}", e.order_id);
        let (status, has_invoice) = self
            .http
            .execute(
                &path,
                |c| self.request(c.get(self.url(&path))),
                |resp| {
                    let v: serde_json::Value = serde_json::from_slice(&resp.body)
                        .map_err(|e| format!("not an order: {e}"))?;
                    let w: wire::Order = serde_json::from_value(v.clone())
                        .map_err(|e| format!("not an order: {e}"))?;
                    // Only the status is read back: an odd time elsewhere in the record
                    // must not keep the entry from completing.
                    let status = crate::platforms::map_status(
                        &self.status_map,
                        w.shipping_status.as_deref().unwrap_or_default(),
                        map::builtin_status,
                    );
                    Ok((status, v.get("invoice").is_some_and(|i| !i.is_null())))
                },
            )
            .await?;
        Ok(match e.action {
            Action::Status(target) => status == target,
            Action::Invoice => has_invoice,
        })
    }
}

fn outcome_of(err: HttpError) -> PushOutcome {
    // Shutdown interrupting a wait is no verdict on the push: it goes again next time.
    if err.is_retryable() || matches!(err, HttpError::Cancelled) {
        PushOutcome::Retry(err)
    } else {
        PushOutcome::Failed(err.to_string())
    }
}
