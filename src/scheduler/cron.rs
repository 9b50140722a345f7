//! Cron timing for the daemon's timetable: croner computes each job's next fire time (UTC,
//! seconds first) and one tokio task per job sleeps until it. A job is nothing but that task, so
//! cancelling its token and awaiting it leaves nothing behind: a reload that replaces the
//! timetable gives back everything the old one held.
//!
//! This replaced tokio-cron-scheduler, whose `shutdown()` only stops its ticker: each scheduler's
//! actor tasks wait forever on broadcast channels that their own context keeps open, so every
//! scheduler ever started stayed in memory with its preallocated channels and its jobs'
//! closures (and through them the platforms' HTTP clients), a few hundred KiB per reload. Keeping
//! one long-lived scheduler and swapping its jobs would have bounded that, but would still carry
//! a 500 ms polling loop, a task spawned per event, and channels sized for the busiest second of
//! hundreds of platforms, all for what a sleep until the next fire time does.

use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use croner::Cron;
use tokio_util::sync::CancellationToken;

/// A wall-clock step (NTP, a suspended VM) is noticed within this long: the wait for a fire
/// time is measured again at least this often, because tokio's sleep follows the monotonic
/// clock.
const RECHECK: Duration = Duration::from_secs(60);

/// Parses a schedule as the configuration writes it: six fields, seconds first.
pub fn parse(expr: &str) -> Result<Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
}

/// Calls `fire` at every fire time of `schedule` after `since`, as `clock` reads it, until `stop`
/// is cancelled (`Ok`) or the schedule has no further fire time (`Err`). A fire time missed while
/// the process could not run (suspended, starved) fires once when it wakes, not once per missed
/// time; a wall clock stepped back never fires a time twice.
pub async fn every(
    schedule: &Cron,
    since: DateTime<Utc>,
    clock: impl Fn() -> DateTime<Utc>,
    stop: &CancellationToken,
    mut fire: impl FnMut(),
) -> Result<(), croner::errors::CronError> {
    let mut after = since;
    loop {
        // croner keeps the fraction of a second it is given: from 12:00:00.4 "every second"
        // would next be 12:00:01.4. Fire times are whole seconds.
        let next = schedule.find_next_occurrence(&after.trunc_subsecs(0), false)?;
        // The sleep follows the monotonic clock and may end a hair before the wall clock
        // reaches `next`: measure again rather than fire early.
        while let Ok(wait) = (next - clock()).to_std()
            && !wait.is_zero()
        {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait.min(RECHECK)) => {}
            }
        }
        if stop.is_cancelled() {
            return Ok(());
        }
        fire();
        after = next.max(clock());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// 2025-06-15 15:06:40 UTC.
    fn wall() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap()
    }

    /// A wall clock that moves with tokio's (paused) clock, from [`wall`].
    fn paused_clock() -> impl Fn() -> DateTime<Utc> + Clone {
        let origin = tokio::time::Instant::now();
        move || wall() + (tokio::time::Instant::now() - origin)
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_fires_once_at_each_fire_time_and_not_before() {
        let clock = paused_clock();
        let stop = CancellationToken::new();
        let fired = Arc::new(Mutex::new(Vec::new()));
        let (c, s, f) = (clock.clone(), stop.clone(), fired.clone());
        let job = tokio::spawn(async move {
            let every_two = parse("*/2 * * * * *").unwrap();
            every(&every_two, c(), &c, &s, || f.lock().unwrap().push(c()))
                .await
                .unwrap();
        });
        tokio::time::sleep(Duration::from_millis(9_500)).await;
        stop.cancel();
        job.await.unwrap();
        let start = clock() - Duration::from_millis(9_500);
        let offsets: Vec<i64> = fired
            .lock()
            .unwrap()
            .iter()
            .map(|t| (*t - start).num_milliseconds())
            .collect();
        assert_eq!(offsets, [2_000, 4_000, 6_000, 8_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_ends_a_job_without_waiting_for_its_next_fire_time() {
        let stop = CancellationToken::new();
        let s = stop.clone();
        let job = tokio::spawn(async move {
            let daily = parse("0 0 3 * * *").unwrap();
            every(&daily, wall(), paused_clock(), &s, || {
                panic!("must not fire")
            })
            .await
            .unwrap();
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cancelled_at = tokio::time::Instant::now();
        stop.cancel();
        job.await.unwrap();
        assert_eq!(tokio::time::Instant::now(), cancelled_at);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_stepped_forward_is_noticed_within_a_minute() {
        // The wall clock jumps an hour ahead ten seconds in, as after a suspended VM resumes.
        let origin = tokio::time::Instant::now();
        let clock = move || {
            let elapsed = tokio::time::Instant::now() - origin;
            let step = if elapsed >= Duration::from_secs(10) {
                chrono::Duration::hours(1)
            } else {
                chrono::Duration::zero()
            };
            wall() + elapsed + step
        };
        let stop = CancellationToken::new();
        let fired = Arc::new(Mutex::new(None));
        let (s, f) = (stop.clone(), fired.clone());
        let job = tokio::spawn(async move {
            // Due at 16:00:00, 53 min 20 s of wall time after the start.
            let hourly = parse("0 0 * * * *").unwrap();
            every(&hourly, clock(), clock, &s, || {
                f.lock().unwrap().get_or_insert(tokio::time::Instant::now());
            })
            .await
            .unwrap();
        });
        tokio::time::sleep(Duration::from_secs(120)).await;
        stop.cancel();
        job.await.unwrap();
        let at = fired.lock().unwrap().expect("fired after the step") - origin;
        assert!(at <= RECHECK + Duration::from_secs(1), "fired {at:?} in");
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_taking_over_from_an_earlier_instant_fires_what_fell_due_since_at_once() {
        // A reload: the old jobs stopped at `since`, 0.5 s before a fire time; the new job
        // starts 0.7 s later, with that fire time already past.
        let since = wall() + Duration::from_millis(1_500);
        let origin = tokio::time::Instant::now();
        let clock =
            move || since + Duration::from_millis(700) + (tokio::time::Instant::now() - origin);
        let stop = CancellationToken::new();
        let fired = Arc::new(Mutex::new(Vec::new()));
        let (s, f) = (stop.clone(), fired.clone());
        let job = tokio::spawn(async move {
            let every_second = parse("* * * * * *").unwrap();
            every(&every_second, since, clock, &s, || {
                f.lock().unwrap().push(clock())
            })
            .await
            .unwrap();
        });
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        stop.cancel();
        job.await.unwrap();
        let offsets: Vec<i64> = fired
            .lock()
            .unwrap()
            .iter()
            .map(|t| (*t - wall()).num_milliseconds())
            .collect();
        // 2 s at once (when the clock reads 2.2 s), then 3 s on time.
        assert_eq!(offsets, [2_200, 3_000]);
    }
}
