//! `ordersync demo`: the daemon against built-in simulated shops of every kind on loopback, with
//! a throw-away configuration and database, while a small script plays the shops and an
//! operator (new orders, status moves, queued pushes) so there is something to watch. Ends on
//! Ctrl-C or after `--for`, with the `status` summary.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Exit;
use crate::config::{self, Config};
use crate::daemon::{self, DaemonOptions};
use crate::model::{OutboxState, Status};
use crate::outbox::{Action, Params};
use crate::store::Store;
use ordersync_sim::fleet::{Fleet, NAMES};

/// Removes the throw-away folder however the demo ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const NEXT_STATUS: [(&str, &str); 4] = [
    ("awaiting", "confirmed"),
    ("confirmed", "in_process"),
    ("in_process", "shipped"),
    ("shipped", "delivered"),
];

pub async fn run(duration: Option<Duration>, orders: usize) -> Result<(), Exit> {
    let dir = TempDir(std::env::temp_dir().join(format!("ordersync-demo-{}", std::process::id())));
    std::fs::create_dir_all(dir.0.join("platforms.d"))?;

    let fleet = Fleet::start(orders).await?;
    std::fs::write(
        dir.0.join("ordersync.toml"),
        format!(
            "# Written by `ordersync demo`; removed when it ends.\n[daemon]\ndatabase = \"{}\"\n\
             push_interval = \"3s\"\nshutdown_grace = \"5s\"\n",
            dir.0.join("demo.db").display()
        ),
    )?;
    let extra = "schedule = \"*/5 * * * * *\"\nreconcile_schedule = \"7/15 * * * * *\"\n\
                 lookback = \"2m\"\nmax_requests_per_second = 1000\n";
    for (file, toml) in fleet.platform_files(extra) {
        std::fs::write(dir.0.join("platforms.d").join(file), toml)?;
    }
    let cfg = config::load(&dir.0.join("ordersync.toml"), crate::platforms::kinds())
        .map_err(Exit::config)?;

    println!(
        "demo: six simulated shops (merchantpro, sirclo, akinon, mitrabunso, epixel, and novashop \
         read through its rest description) with {orders} orders each on 127.0.0.1; the daemon syncs every 5 s, reconciles open orders every 15 s and pushes \
         queued transitions every 3 s. Ctrl-C to stop."
    );
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(daemon::run(
        cfg.clone(),
        DaemonOptions {
            stop: Some(stop.clone()),
        },
    ));
    let shop = tokio::spawn(play_the_shops(fleet, cfg.clone(), stop.clone()));

    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = timer => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = stop.cancelled() => {}
    }
    stop.cancel();
    let fleet = shop.await.map_err(Exit::failure)?;
    daemon.await.map_err(Exit::failure)??;
    drop(fleet);

    println!("\ndemo: summary");
    super::query::status(&cfg, false).await?;
    let store = Store::open_database_read_only(&cfg.daemon.database).await?;
    let counts = store.event_counts().await?;
    println!(
        "events: {}",
        counts
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let pushes = store.list_outbox(None).await?;
    println!(
        "pushes: {} queued by the demo, {} done",
        pushes.len(),
        pushes
            .iter()
            .filter(|r| r.state == OutboxState::Done)
            .count()
    );
    Ok(())
}

/// Every few seconds: a new order in every shop, one MerchantPro order moved along by the shop
/// itself, and one transition queued by "the operator" for the daemon to push.
async fn play_the_shops(fleet: Fleet, cfg: Config, stop: CancellationToken) -> Fleet {
    let mut tick = tokio::time::interval(Duration::from_secs(3));
    tick.tick().await;
    let mut n = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return fleet,
        }
        n += 1;
        fleet.merchantpro.0.add_orders(1);
        fleet.sirclo.0.add_orders(1);
        fleet.akinon.0.add_orders(1);
        fleet.mitrabunso.0.add_orders(1);
        fleet.epixel.0.add_orders(1);
        fleet.novashop.0.add_orders(1);
        println!("shops: one new order in each of the six shops");

        let mp = &fleet.merchantpro.0;
        let truth = mp.truth();
        let open: Vec<_> = truth
            .iter()
            .filter(|o| {
                NEXT_STATUS
                    .iter()
                    .any(|(from, _)| *from == o.shipping_status)
            })
            .collect();
        if !open.is_empty() {
            let o = open[(n * 7919) % open.len()];
            if let Some((_, to)) = NEXT_STATUS
                .iter()
                .find(|(from, _)| *from == o.shipping_status)
            {
                mp.set_status(o.id, to);
                println!(
                    "shop demo-merchantpro: order {} {} -> {to}",
                    o.id, o.shipping_status
                );
            }
        }
        queue_a_push(&cfg, n).await;
    }
}

/// Ships one stored MerchantPro order that is being processed, as an operator would with
/// `ordersync transition demo-merchantpro ORDER shipped --tracking-number …`.
async fn queue_a_push(cfg: &Config, n: usize) {
    let Some(p) = cfg.platform(NAMES[0]) else {
        return;
    };
    let Ok(store) = Store::open_database(&cfg.daemon.database, cfg.daemon.busy_timeout).await
    else {
        return;
    };
    let (Ok(processing), Ok(queued)) = (
        store
            .list_orders(Some(NAMES[0]), Some(Status::Processing), u32::MAX)
            .await,
        store.list_outbox(None).await,
    ) else {
        return;
    };
    let queued: HashSet<&str> = queued
        .iter()
        .filter(|r| r.platform == NAMES[0])
        .map(|r| r.order_id.as_str())
        .collect();
    let mut unqueued: Vec<String> = processing
        .into_iter()
        .map(|o| o.order_id)
        .filter(|id| !queued.contains(id.as_str()))
        .collect();
    unqueued.sort();
    let Some(order) = unqueued.into_iter().nth(n % 5) else {
        return;
    };
    let params = Params {
        tracking_number: Some(format!("DEMO-AWB-{n:04}")),
        ..Params::default()
    };
    match crate::outbox::enqueue(
        &store,
        p,
        &order,
        Action::Status(Status::Shipped),
        &params,
        crate::outbox::StateCheck::Enforce,
        chrono::Utc::now(),
    )
    .await
    {
        Ok(id) => println!(
            "operator: queued push #{id}: {} order {order} -> shipped",
            NAMES[0]
        ),
        Err(e) => println!("operator: transition refused: {e}"),
    }
}
