//! A fleet of simulated shops, one of each built-in kind and a Novashop shop read through the
//! shipped `rest` description (`config/platforms.d/rest-example.toml`), with the platform files
//! that point a configuration at them. `ordersync demo` runs the daemon against a fleet; the
//! all-kinds tests sync one.

use chrono::{DateTime, Utc};

use crate::core::server::RunningSim;
use crate::{akinon, epixel, merchantpro, mitrabunso, novashop, sirclo};

/// One running shop per kind. Dropping the fleet stops every server.
pub struct Fleet {
    pub start: DateTime<Utc>,
    pub merchantpro: (merchantpro::MerchantProSim, RunningSim),
    pub sirclo: (sirclo::SircloSim, RunningSim),
    pub akinon: (akinon::AkinonSim, RunningSim),
    pub mitrabunso: (mitrabunso::MitrabunsoSim, RunningSim),
    pub epixel: (epixel::EpixelSim, RunningSim),
    pub novashop: (novashop::NovashopSim, RunningSim),
}

/// The shipped description of Novashop, which the fleet's `rest` platform uses as it is, but
/// for its name, address and credentials.
const NOVASHOP_DESCRIPTION: &str = include_str!("../../config/platforms.d/rest-example.toml");

/// The platform name each kind's shop gets in [`Fleet::platform_files`].
pub const NAMES: [&str; 6] = [
    "demo-merchantpro",
    "demo-sirclo",
    "demo-akinon",
    "demo-mitrabunso",
    "demo-epixel",
    "demo-novashop",
];

impl Fleet {
    /// Starts the six shops with `orders` orders each, placed over the time before now.
    pub async fn start(orders: usize) -> std::io::Result<Fleet> {
        let spacing = chrono::Duration::seconds(90);
        let start = Utc::now() - spacing * (orders as i32 + 10);
        let mp = merchantpro::MerchantProSim::new(merchantpro::SimOptions {
            orders,
            start,
            spacing,
            ..Default::default()
        });
        let sc = sirclo::SircloSim::new(sirclo::SimOptions {
            orders,
            start,
            spacing,
            ..Default::default()
        });
        let ak = akinon::AkinonSim::new(akinon::SimOptions {
            orders,
            start,
            spacing,
            ..Default::default()
        });
        let mb = mitrabunso::MitrabunsoSim::new(mitrabunso::SimOptions {
            orders,
            start,
            spacing,
            ..Default::default()
        });
        let ep = epixel::EpixelSim::new(epixel::SimOptions {
            orders,
            start,
            spacing,
            ..Default::default()
        });
        let ns = novashop::NovashopSim::new(novashop::SimOptions {
            orders,
            start,
            spacing,
            ..Default::default()
        });
        Ok(Fleet {
            start,
            merchantpro: (mp.clone(), mp.serve().await?),
            sirclo: (sc.clone(), sc.serve().await?),
            akinon: (ak.clone(), ak.serve().await?),
            mitrabunso: (mb.clone(), mb.serve().await?),
            epixel: (ep.clone(), ep.serve().await?),
            novashop: (ns.clone(), ns.serve().await?),
        })
    }

    /// `(file name, TOML)` for each shop, named as in [`NAMES`]; `extra` lines go into every
    /// `[platforms.<name>]` table (schedules, rate limits).
    pub fn platform_files(&self, extra: &str) -> Vec<(String, String)> {
        let from = (self.start - chrono::Duration::days(1)).to_rfc3339();
        let table = |name: &str, kind: &str, url: String, more: &str, auth: String| {
            (
                format!("{name}.toml"),
                format!(
                    "[platforms.{name}]\nkind = \"{kind}\"\nbase_url = \"{url}\"\n\
                     backfill_from = \"{from}\"\n{more}{extra}\n[platforms.{name}.auth]\n{auth}"
                ),
            )
        };
        let mp = merchantpro::SimOptions::default();
        let sc = sirclo::SimOptions::default();
        let ak = akinon::SimOptions::default();
        let mb = mitrabunso::SimOptions::default();
        let ep = epixel::SimOptions::default();
        vec![
            table(
                NAMES[0],
                "merchantpro",
                self.merchantpro.1.base_url(),
                "",
                format!(
                    "api_key = \"{}\"\napi_secret = \"{}\"\n",
                    mp.api_key, mp.api_secret
                ),
            ),
            table(
                NAMES[1],
                "sirclo",
                self.sirclo.1.base_url(),
                "",
                format!(
                    "partner_id = \"{}\"\nsecret = \"{}\"\napi_key = \"{}\"\napi_secret = \"{}\"\n",
                    sc.partner_id, sc.secret, sc.api_key, sc.api_secret
                ),
            ),
            table(
                NAMES[2],
                "akinon",
                self.akinon.1.base_url(),
                "",
                format!("token = \"{}\"\n", ak.token),
            ),
            table(
                NAMES[3],
                "mitrabunso",
                self.mitrabunso.1.base_url(),
                "",
                format!("user_id = \"{}\"\ntoken = \"{}\"\n", mb.user_id, mb.token),
            ),
            table(
                NAMES[4],
                "epixel",
                self.epixel.1.base_url(),
                &format!("api_prefix = \"{}\"\n", ep.api_prefix),
                format!("api_key = \"{}\"\ntoken = \"{}\"\n", ep.api_key, ep.token),
            ),
            (
                format!("{}.toml", NAMES[5]),
                self.novashop_file(&from, extra),
            ),
        ]
    }

    /// The shipped Novashop description, pointed at this fleet's shop.
    fn novashop_file(&self, from: &str, extra: &str) -> String {
        let o = novashop::SimOptions::default();
        crate::description::adapt(
            NOVASHOP_DESCRIPTION,
            NAMES[5],
            &format!(
                "base_url = \"{}\"\nbackfill_from = \"{from}\"\n{extra}",
                self.novashop.1.base_url()
            ),
            &format!(
                "client_id = \"{}\"\nclient_secret = \"{}\"",
                o.client_id, o.client_secret
            ),
        )
    }

    /// How many orders each shop holds now, by platform name.
    pub fn order_counts(&self) -> [(&'static str, usize); 6] {
        [
            (NAMES[0], self.merchantpro.0.truth().len()),
            (NAMES[1], self.sirclo.0.truth().len()),
            (NAMES[2], self.akinon.0.truth().len()),
            (NAMES[3], self.mitrabunso.0.truth().len()),
            (NAMES[4], self.epixel.0.truth().len()),
            (NAMES[5], self.novashop.0.truth().len()),
        ]
    }

    /// One step of business in every shop, deterministic in `step`: a new order, and one
    /// existing order moved to another status. The tests that follow the change feed call it
    /// between syncs; which status an order gets matters less than that one changes.
    pub fn churn(&self, step: usize) {
        let pick = |len: usize| (step.wrapping_mul(7919)) % len.max(1);

        let mp = &self.merchantpro.0;
        mp.add_orders(1);
        let t = mp.truth();
        const MP: [&str; 5] = [
            "awaiting",
            "confirmed",
            "in_process",
            "shipped",
            "delivered",
        ];
        if let Some(o) = t.get(pick(t.len())) {
            mp.set_status(o.id, MP[step % MP.len()]);
        }

        let sc = &self.sirclo.0;
        sc.add_orders(1);
        let t = sc.truth();
        const SC: [&str; 4] = ["pending", "accepted", "packed", "completed"];
        if let Some(o) = t.get(pick(t.len())) {
            sc.set_status(o.id, SC[step % SC.len()]);
        }

        let ak = &self.akinon.0;
        ak.add_orders(1);
        let t = ak.truth();
        if let Some(o) = t.get(pick(t.len())) {
            ak.set_status(&o.id, akinon::STATUSES[step % akinon::STATUSES.len()]);
        }

        let mb = &self.mitrabunso.0;
        mb.add_orders(1);
        let t = mb.truth();
        if let Some(o) = t.get(pick(t.len())) {
            let s = mitrabunso::DOCUMENTED_STATUSES;
            mb.set_status(&o.id, s[step % 3]);
        }

        let ep = &self.epixel.0;
        ep.add_orders(1);
        let t = ep.truth();
        const EP: [&str; 5] = ["Pending", "Confirmed", "Processing", "Shipped", "Delivered"];
        if let Some(o) = t.get(pick(t.len())) {
            ep.set_status(o.id, EP[step % EP.len()]);
        }

        let ns = &self.novashop.0;
        ns.add_orders(1);
        let t = ns.truth();
        if let Some(o) = t.get(pick(t.len())) {
            ns.set_status(o.id, novashop::STATES[step % novashop::STATES.len()]);
        }
    }
}
