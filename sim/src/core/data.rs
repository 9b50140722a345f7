//! What the simulators' order data is built from: a deterministic generator ([`SimRng`]) run on
//! every core ([`generate_parallel`]) over a placement [`Schedule`], the [`OrderBook`] that keeps
//! orders by id and in listing order, and the poison-tolerant lock ([`Locked`]) a shop lives in.

use std::ops::{Index, IndexMut};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, TimeZone};

/// A small deterministic generator (SplitMix64). The simulators use their own rather than `rand`
/// so a seed yields the same data whatever `rand`'s algorithms become, and so each record can be
/// regenerated on its own from `(seed, index)`.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed)
    }

    /// An independent stream for record `index` of a data set seeded with `seed`.
    pub fn for_record(seed: u64, index: u64) -> Self {
        let mut mixer = SimRng(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
        SimRng(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant for test data.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `count` distinct indexes below `n` (`count <= n`), in the order drawn.
    pub fn distinct(&mut self, count: usize, n: usize) -> Vec<usize> {
        let mut chosen: Vec<usize> = Vec::with_capacity(count);
        while chosen.len() < count {
            let i = self.below(n as u64) as usize;
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        chosen
    }

    /// Picks from `(weight, item)` pairs in proportion to the weights.
    pub fn weighted<'a, T>(&mut self, items: &'a [(u64, T)]) -> &'a T {
        let total: u64 = items.iter().map(|(w, _)| w).sum();
        let mut roll = self.below(total);
        for (weight, item) in items {
            if roll < *weight {
                return item;
            }
            roll -= weight;
        }
        &items[items.len() - 1].1
    }

    /// `len` lowercase hex digits.
    pub fn hex(&mut self, len: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| DIGITS[self.below(16) as usize] as char)
            .collect()
    }

    /// `len` decimal digits (leading zeros allowed).
    pub fn digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// Builds records `0..n` on every core: simulators generate up to 100,000 orders for the
/// benchmark, seconds of work on one core. Small shops stay on the calling thread.
pub fn generate_parallel<T: Send>(n: usize, build: &(dyn Fn(usize) -> T + Sync)) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    if n < 2_000 || threads < 2 {
        return (0..n).map(build).collect();
    }
    let chunk = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|from| {
                scope.spawn(move || (from..(from + chunk).min(n)).map(build).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("record generation panicked"))
            .collect()
    })
}

/// When generated orders were placed: at `start`, then one every `spacing`. The data set is as if
/// snapshotted when its newest order was placed: nothing generated happened later.
#[derive(Debug, Clone)]
pub struct Schedule<Tz: TimeZone> {
    start: DateTime<Tz>,
    spacing: chrono::Duration,
    snapshot: DateTime<Tz>,
}

impl<Tz: TimeZone> Schedule<Tz> {
    /// `n` orders from `start`, `spacing` apart.
    ///
    /// # Panics
    /// If `spacing` is negative: orders are kept in placement order.
    pub fn new(start: DateTime<Tz>, spacing: chrono::Duration, n: usize) -> Self {
        assert!(
            spacing >= chrono::Duration::zero(),
            "SimOptions::spacing must not be negative"
        );
        let snapshot = start.clone() + spacing * (n.saturating_sub(1) as i32);
        Schedule {
            start,
            spacing,
            snapshot,
        }
    }

    /// When order `index` was placed.
    pub fn at(&self, index: usize) -> DateTime<Tz> {
        self.start.clone() + self.spacing * (index as i32)
    }

    /// When the newest order was placed.
    pub fn snapshot(&self) -> DateTime<Tz> {
        self.snapshot.clone()
    }
}

/// An order as an [`OrderBook`] keeps it: placed at some moment, which orders the listing.
pub trait Placed {
    type At: Ord + Copy;

    fn placed(&self) -> Self::At;
}

/// A shop's orders by id and in listing order. Orders are numbered from 0 in the order they were
/// added (an id is its number plus the platform's first id); a deleted order keeps its number, so
/// ids are never reused, but leaves the listing. The listing holds the live orders in placement
/// order, ties in number order: number order too, unless orders were placed backdated.
#[derive(Debug)]
pub struct OrderBook<O> {
    orders: Vec<O>,
    deleted: Vec<bool>,
    listing: Vec<usize>,
}

impl<O> Default for OrderBook<O> {
    fn default() -> Self {
        OrderBook {
            orders: Vec::new(),
            deleted: Vec::new(),
            listing: Vec::new(),
        }
    }
}

impl<O: Placed> OrderBook<O> {
    /// `orders` as generated: already in placement order, none deleted.
    pub fn new(orders: Vec<O>) -> Self {
        debug_assert!(orders.is_sorted_by_key(Placed::placed));
        OrderBook {
            deleted: vec![false; orders.len()],
            listing: (0..orders.len()).collect(),
            orders,
        }
    }

    /// Orders ever added, deleted ones included: the next order's number.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// `index` if it is a live order.
    pub fn live(&self, index: usize) -> Option<usize> {
        (index < self.orders.len() && !self.deleted[index]).then_some(index)
    }

    /// The number of live order `id`, ids being numbers from `first_id`.
    pub fn index_of(&self, id: u64, first_id: u64) -> Option<usize> {
        self.live(usize::try_from(id.checked_sub(first_id)?).ok()?)
    }

    /// As [`Self::index_of`], for the simulator's own API, where an unknown id is the test's bug.
    ///
    /// # Panics
    /// If there is no live order `id`.
    pub fn expect(&self, id: u64, first_id: u64, platform: &str) -> usize {
        self.index_of(id, first_id)
            .unwrap_or_else(|| panic!("the {platform} simulator has no order {id}"))
    }

    /// Every live order with its number, in number order.
    pub fn live_orders(&self) -> impl Iterator<Item = (usize, &O)> {
        self.orders
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
    }

    /// Every live order's id, ascending, ids being numbers from `first_id`.
    pub fn live_ids(&self, first_id: u64) -> Vec<u64> {
        self.live_orders()
            .map(|(i, _)| first_id + i as u64)
            .collect()
    }

    /// Every order, deleted ones included, by number.
    pub fn orders(&self) -> &[O] {
        &self.orders
    }

    /// The live orders' numbers in listing order.
    pub fn listing(&self) -> &[usize] {
        &self.listing
    }

    /// When the newest live order was placed.
    pub fn newest(&self) -> Option<O::At> {
        self.listing.last().map(|&i| self.orders[i].placed())
    }

    /// Where live order `index` is in the listing.
    pub fn position_of(&self, index: usize) -> Option<usize> {
        let key = (self.orders[index].placed(), index);
        self.listing
            .binary_search_by(|&i| (self.orders[i].placed(), i).cmp(&key))
            .ok()
    }

    /// Adds `order` as the next number, at its place in the listing; its number.
    pub fn place(&mut self, order: O) -> usize {
        let index = self.orders.len();
        let at = self
            .listing
            .partition_point(|&i| self.orders[i].placed() <= order.placed());
        self.orders.push(order);
        self.deleted.push(false);
        self.listing.insert(at, index);
        index
    }

    /// Places `n` orders, the `k`-th (from 0) built by `make(self, number, k)`; their numbers.
    pub fn place_each(
        &mut self,
        n: usize,
        mut make: impl FnMut(&Self, usize, usize) -> O,
    ) -> Vec<usize> {
        (0..n)
            .map(|k| {
                let order = make(self, self.orders.len(), k);
                self.place(order)
            })
            .collect()
    }

    /// Deletes live order `index`: it leaves the listing; its number stays taken.
    pub fn delete(&mut self, index: usize) {
        self.deleted[index] = true;
        self.listing.retain(|&i| i != index);
    }
}

impl<O> Index<usize> for OrderBook<O> {
    type Output = O;

    fn index(&self, index: usize) -> &O {
        &self.orders[index]
    }
}

impl<O> IndexMut<usize> for OrderBook<O> {
    fn index_mut(&mut self, index: usize) -> &mut O {
        &mut self.orders[index]
    }
}

/// A simulator's state behind a read-write lock that shrugs off poisoning: every write replaces
/// whole values, so a panic elsewhere cannot leave the state half-changed, and refusing every
/// later request would only hide that panic.
#[derive(Debug, Default)]
pub struct Locked<T>(RwLock<T>);

impl<T> Locked<T> {
    pub fn new(value: T) -> Self {
        Locked(RwLock::new(value))
    }

    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Locks `mutex` whether or not it is poisoned, for the reason given at [`Locked`].
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct At(u32);

    impl Placed for At {
        type At = u32;

        fn placed(&self) -> u32 {
            self.0
        }
    }

    fn listed(book: &OrderBook<At>) -> Vec<(usize, u32)> {
        book.listing().iter().map(|&i| (i, book[i].0)).collect()
    }

    #[test]
    fn the_listing_keeps_placement_order_and_deleted_numbers_stay_taken() {
        let mut book = OrderBook::new(vec![At(10), At(20), At(30)]);
        assert_eq!(book.place(At(20)), 3);
        assert_eq!(listed(&book), [(0, 10), (1, 20), (3, 20), (2, 30)]);
        assert_eq!(book.position_of(3), Some(2));
        book.delete(1);
        assert_eq!(book.index_of(101, 100), None);
        assert_eq!(book.index_of(103, 100), Some(3));
        assert_eq!(book.index_of(99, 100), None);
        assert_eq!(book.newest(), Some(30));
        assert_eq!(book.live_ids(100), [100, 102, 103]);
        assert_eq!(
            book.place_each(2, |b, _, k| At(b.newest().unwrap() + k as u32)),
            [4, 5]
        );
        assert_eq!(book.len(), 6);
        assert_eq!(listed(&book).last(), Some(&(5, 31)));
    }

    #[test]
    fn distinct_draws_never_repeat_an_index() {
        let mut rng = SimRng::new(7);
        let mut drawn = rng.distinct(5, 5);
        drawn.sort_unstable();
        assert_eq!(drawn, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_schedule_places_orders_spacing_apart_and_snapshots_at_the_newest() {
        let start = chrono::Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let s = Schedule::new(start, chrono::Duration::seconds(90), 3);
        assert_eq!(s.at(2) - start, chrono::Duration::seconds(180));
        assert_eq!(s.snapshot(), s.at(2));
        assert_eq!(
            Schedule::new(start, chrono::Duration::zero(), 0).snapshot(),
            start
        );
    }
}
