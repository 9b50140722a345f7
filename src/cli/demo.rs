//! `ordersync demo`: the daemon against built-in simulated shops on loopback, with a throw-away
//! configuration and database, while a small script plays the shop (new orders, status moves)
//! so there is something to watch. Ends on Ctrl-C or after `--for`, with the `status` summary.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::Exit;
use crate::config;
use crate::scheduler::{self, DaemonOptions};
use crate::sim::merchantpro::{MerchantProSim, SimOptions};

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

    let spacing = chrono::Duration::seconds(90);
    let start = Utc::now() - spacing * orders.max(1) as i32;
    let sim = MerchantProSim::new(SimOptions {
        orders,
        start,
        spacing,
        ..SimOptions::default()
    });
    let server = sim.serve().await?;
    let opts = SimOptions::default();

    std::fs::write(
        dir.0.join("ordersync.toml"),
        format!(
            "# Written by `ordersync demo`; removed when it ends.\n[daemon]\ndatabase = \"{}\"\nshutdown_grace = \"5s\"\n",
            dir.0.join("demo.db").display()
        ),
    )?;
    std::fs::write(
        dir.0.join("platforms.d/demo-merchantpro.toml"),
        format!(
            "[platforms.demo-merchantpro]\nkind = \"merchantpro\"\nbase_url = \"{}\"\n\
             schedule = \"*/5 * * * * *\"\nreconcile_schedule = \"*/15 * * * * *\"\n\
             backfill_from = \"{}\"\nlookback = \"2m\"\nmax_requests_per_second = 50\n\
             [platforms.demo-merchantpro.auth]\napi_key = \"{}\"\napi_secret = \"{}\"\n",
            server.base_url(),
            (start - chrono::Duration::days(1)).to_rfc3339(),
            opts.api_key,
            opts.api_secret
        ),
    )?;
    let cfg = config::load(&dir.0.join("ordersync.toml")).map_err(Exit::config)?;

    println!(
        "demo: a simulated MerchantPro shop with {orders} orders at {}; the daemon syncs it every 5 s \
         and reconciles open orders every 15 s. Ctrl-C to stop.",
        server.base_url()
    );
    let stop = CancellationToken::new();
    let daemon = tokio::spawn(scheduler::run(
        cfg.clone(),
        DaemonOptions {
            stop: Some(stop.clone()),
        },
    ));
    let shop = tokio::spawn(play_the_shop(sim.clone(), stop.clone()));

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
    let _ = shop.await;
    daemon.await.map_err(Exit::failure)??;
    server.stop().await;

    println!("\ndemo: summary");
    super::query::status(&cfg, false)?;
    let conn = crate::store::open_connection(&cfg.daemon.database, true)?;
    let mut stmt =
        conn.prepare("SELECT kind, count(*) FROM order_events GROUP BY kind ORDER BY kind")?;
    let counts = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "events: {}",
        counts
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// Every few seconds: two new orders, and one open order moved a step along its lifecycle.
async fn play_the_shop(sim: MerchantProSim, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3));
    tick.tick().await;
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        n += 1;
        let new = sim.add_orders(2);
        println!("shop: new orders {new:?}");
        let truth = sim.truth();
        let open: Vec<_> = truth
            .iter()
            .filter(|o| {
                NEXT_STATUS
                    .iter()
                    .any(|(from, _)| *from == o.shipping_status)
            })
            .collect();
        if !open.is_empty() {
            let o = open[(n as usize * 7919) % open.len()];
            if let Some((_, to)) = NEXT_STATUS
                .iter()
                .find(|(from, _)| *from == o.shipping_status)
            {
                sim.set_status(o.id, to);
                println!("shop: order {} {} -> {to}", o.id, o.shipping_status);
            }
        }
    }
}
