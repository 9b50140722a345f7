//! Pushing to a described platform: one request per entry, rendered from the description's
//! `[api.push.<status>]` with the order's id and the transition's parameters, success read as
//! the description says; and the read-back of one order (`[api.read_back]`) when a previous
//! attempt's outcome is unknown.

use super::{Rest, map, request};
use crate::http::HttpError;
use crate::model::{Action, Entry};
use crate::platforms::{Push, PushOutcome};

impl Rest {
    async fn push_one(&self, e: &Entry) -> PushOutcome {
        let Action::Status(status) = e.action else {
            return PushOutcome::Failed(format!(
                "a described platform pushes status changes only, not `{}`",
                e.action
            ));
        };
        let Some(action) = self.api.push.get(&status) else {
            return PushOutcome::Failed(format!(
                "the description has no [api.push.{status}] for this platform"
            ));
        };
        let mut vars = request::Vars::new(&self.cfg);
        vars.order_id = Some(&e.order_id);
        vars.status = Some(status);
        vars.params = Some(&e.params);
        let url = match request::url(&self.base, &action.request, &vars) {
            Ok(u) => u,
            Err(err) => return PushOutcome::Failed(err.to_string()),
        };
        let body = request::body(&action.request, &vars);
        let what = request::position(&action.request.method, &url);
        let sent = self
            .auth
            .send(
                &self.http,
                &self.cfg,
                true,
                &what,
                &action.request.method,
                &url,
                body.as_deref(),
                |resp| {
                    let Some((pointer, equals)) = &action.success else {
                        return Ok(None);
                    };
                    let (text, _) = crate::platforms::lenient::body_text(&resp.body);
                    let found = serde_json::from_str::<&serde_json::value::RawValue>(&text)
                        .ok()
                        .and_then(|raw| map::raw_at(raw, pointer))
                        .and_then(|raw| map::text_of(raw.get()));
                    Ok(match found {
                        Some(f) if f.trim() == equals.trim() => None,
                        other => Some(format!(
                            "the platform answered {} at `{pointer}`, not {equals:?}",
                            other.map_or("nothing".to_string(), |o| format!("{o:?}"))
                        )),
                    })
                },
            )
            .await;
        match sent {
            Ok(None) => PushOutcome::Done,
            Ok(Some(refusal)) => PushOutcome::Failed(refusal),
            // Shutdown interrupting a wait is no verdict on the push: it goes again next time.
            Err(err) if err.is_retryable() || matches!(err, HttpError::Cancelled) => {
                PushOutcome::Retry(err)
            }
            Err(err) => PushOutcome::Failed(err.to_string()),
        }
    }
}

impl Push for Rest {
    /// Each entry on its own: a description has no batch endpoint.
    async fn push(&self, entries: &[Entry]) -> Vec<PushOutcome> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            out.push(self.push_one(e).await);
        }
        out
    }

    /// Reads the order back with `[api.read_back]`: does it already show the entry's status?
    async fn already_applied(&self, e: &Entry) -> Result<bool, HttpError> {
        let Action::Status(target) = e.action else {
            return Ok(false);
        };
        let Some(read_back) = &self.api.read_back else {
            return Ok(false);
        };
        let mut vars = request::Vars::new(&self.cfg);
        vars.order_id = Some(&e.order_id);
        let url = request::url(&self.base, &read_back.request, &vars)?;
        let body = request::body(&read_back.request, &vars);
        let what = request::position(&read_back.request.method, &url);
        let status = self
            .auth
            .send(
                &self.http,
                &self.cfg,
                false,
                &what,
                &read_back.request.method,
                &url,
                body.as_deref(),
                |resp| {
                    let (text, _) = crate::platforms::lenient::body_text(&resp.body);
                    let answer: &serde_json::value::RawValue =
                        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
                    let record = map::raw_at(answer, &read_back.record).ok_or_else(|| {
                        format!("no record at `{}` (read_back.record)", read_back.record)
                    })?;
                    // Only the status is compared, but the record is read as a listed one is,
                    // so the status means the same.
                    map::read(&self.api.records, &self.cfg, record).map(|o| o.status)
                },
            )
            .await?;
        Ok(status == target)
    }
}
