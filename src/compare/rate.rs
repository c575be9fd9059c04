//! The highest request rate at which a candidate meets the SLA.
//!
//! The seed bisects between a lower and an upper QPS bound for at most five rounds. forge
//! brackets the same way but steers by *how far* each run was from the SLA: every run's
//! worst log slack (see [`super::sla`]) is a smooth function of the log rate, so the next
//! rate is where the line through the bracket's ends crosses zero (regula falsi, Illinois
//! variant, kept at least a quarter of the bracket from either end so it always shrinks).
//! In as many runs as the seed's five halvings of 0.25–16 req/s, that lands within the
//! tolerance of the edge where halving can stop half-way below it (tested below), and
//! every result is a rate that was measured passing — never an interpolated one.
//!
//! Order: everything at once first (if that passes, no rate can do better; if not, the
//! requests it completed per second are the candidate's capacity, the top of the bracket),
//! then that top, then half of it, then the lower bound; only then the bracket. A run the
//! engine failed counts as a miss.

use std::future::Future;

/// Where to look and when to stop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Lowest rate tried, requests/s.
    pub lo: f64,
    /// Highest finite rate tried, requests/s.
    pub hi: f64,
    /// Stop when the bracket's ends are within this share of each other.
    pub tolerance: f64,
    /// Most runs for one search (all at once and both bounds included).
    pub max_runs: usize,
    /// Start with everything at once (false when it is known to miss the SLA: a duel of
    /// two rate-limited winners).
    pub all_at_once: bool,
}

impl Default for Bounds {
    /// The seed's: 0.25 to 16 requests/s, 10 %, and its five rounds after the three ends.
    fn default() -> Self {
        Bounds {
            lo: 0.25,
            hi: 16.0,
            tolerance: 0.1,
            max_runs: 8,
            all_at_once: true,
        }
    }
}

/// One run of the search: the rate offered (`None` = all at once) and what came of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run<T> {
    /// Requests per second offered; `None` is everything at once.
    pub rate: Option<f64>,
    /// The worst log slack against the SLA (≥ 0 passes); −∞ when the run failed.
    pub slack: f64,
    /// Whatever the caller keeps of the run (its metrics, or why it failed).
    pub data: T,
}

impl<T> Run<T> {
    /// The run met the SLA.
    pub fn passed(&self) -> bool {
        self.slack >= 0.0
    }
}

/// How a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Everything at once meets the SLA: the candidate's ceiling is its capacity.
    AllAtOnce,
    /// The upper bound passes (the true edge may lie above it).
    AtUpperBound,
    /// The edge was bracketed to the tolerance.
    Converged,
    /// The run budget ended with the edge bracketed more loosely.
    BudgetSpent,
    /// Even the lower bound misses the SLA.
    NothingPasses,
}

/// Every run, in order, and which one is the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Search<T> {
    /// The runs, in the order they were made.
    pub runs: Vec<Run<T>>,
    /// Index of the highest-rate passing run, if any passed.
    pub best: Option<usize>,
    /// Why it stopped.
    pub ending: Ending,
}

impl<T> Search<T> {
    /// The answer: the highest-rate run that met the SLA.
    pub fn best(&self) -> Option<&Run<T>> {
        self.best.map(|i| &self.runs[i])
    }
}

/// What one run tells the search.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    /// The worst log slack against the SLA (≥ 0 passes; NaN or −∞ when the run failed).
    pub slack: f64,
    /// Requests completed per second.
    pub request_throughput: f64,
    /// What the caller keeps of the run.
    pub data: T,
}

/// What measures one run of the search at a rate (`None` = all at once).
pub trait Probe<T> {
    /// Measure one run.
    fn run(&mut self, rate: Option<f64>) -> impl Future<Output = Outcome<T>>;
}

impl<T, F, Fut> Probe<T> for F
where
    F: FnMut(Option<f64>) -> Fut,
    Fut: Future<Output = Outcome<T>>,
{
    fn run(&mut self, rate: Option<f64>) -> impl Future<Output = Outcome<T>> {
        self(rate)
    }
}

impl<T> Outcome<T> {
    /// A run that measured `r`, judged against `sla`.
    pub fn measured(
        sla: &super::sla::Sla,
        r: &crate::bench::metrics::BenchResult,
        data: T,
    ) -> Self {
        Outcome {
            slack: sla.worst(&super::sla::Figures::of(r)).1,
            request_throughput: r.request_throughput,
            data,
        }
    }

    /// A run that produced no measurement: a miss.
    pub fn failed(data: T) -> Self {
        Outcome {
            slack: f64::NEG_INFINITY,
            request_throughput: 0.0,
            data,
        }
    }
}

/// Search with `probe` measuring one run at each rate it asks for.
///
/// The run with everything at once also measures the candidate's capacity: no rate above
/// the requests it completed per second can keep a queue from growing, so the first
/// bracket's upper end is that capacity when it lies inside the bounds.
pub async fn search<T, P: Probe<T>>(bounds: Bounds, mut probe: P) -> Search<T> {
    let mut runs: Vec<Run<T>> = Vec::new();
    let done = |runs: Vec<Run<T>>, best, ending| Search { runs, best, ending };

    let mut capacity = f64::INFINITY;
    if bounds.all_at_once {
        let first = probe.run(None).await;
        capacity = first.request_throughput;
        let all = push(&mut runs, None, first);
        if runs[all].passed() {
            return done(runs, Some(all), Ending::AllAtOnce);
        }
    }
    let top = if capacity.is_finite() && capacity > bounds.lo && capacity < bounds.hi {
        capacity
    } else {
        bounds.hi
    };
    let mut hi = push(&mut runs, Some(top), probe.run(Some(top)).await);
    if runs[hi].passed() && top < bounds.hi {
        // The capacity estimate was pessimistic; the fixed bound closes the bracket.
        let pass = hi;
        hi = push(&mut runs, Some(bounds.hi), probe.run(Some(bounds.hi)).await);
        if !runs[hi].passed() {
            return bracket(bounds, runs, pass, hi, &mut probe).await;
        }
    }
    if runs[hi].passed() {
        return done(runs, Some(hi), Ending::AtUpperBound);
    }
    // The edge of a latency bound usually sits at half to nine tenths of capacity: try
    // half the failing top before the lower bound, which halves the bracket at once.
    let half = top / 2.0;
    if half > bounds.lo {
        let mid = push(&mut runs, Some(half), probe.run(Some(half)).await);
        if runs[mid].passed() {
            return bracket(bounds, runs, mid, hi, &mut probe).await;
        }
        hi = mid;
    }
    let lo = push(&mut runs, Some(bounds.lo), probe.run(Some(bounds.lo)).await);
    if !runs[lo].passed() {
        return done(runs, None, Ending::NothingPasses);
    }
    bracket(bounds, runs, lo, hi, &mut probe).await
}

/// Narrow the bracket between a passing and a failing run.
async fn bracket<T, P: Probe<T>>(
    bounds: Bounds,
    mut runs: Vec<Run<T>>,
    lo: usize,
    hi: usize,
    probe: &mut P,
) -> Search<T> {
    let done = |runs: Vec<Run<T>>, best, ending| Search { runs, best, ending };
    let mut b = Bracket::new(&runs[lo], &runs[hi], lo);
    while !b.converged(bounds.tolerance) {
        if runs.len() >= bounds.max_runs {
            return done(runs, Some(b.pass), Ending::BudgetSpent);
        }
        let next = b.next_rate();
        let i = push(&mut runs, Some(next), probe.run(Some(next)).await);
        b.absorb(&runs[i], i);
    }
    done(runs, Some(b.pass), Ending::Converged)
}

/// Record a run (a NaN slack, a run that produced nothing to judge, is a miss).
fn push<T>(runs: &mut Vec<Run<T>>, rate: Option<f64>, o: Outcome<T>) -> usize {
    let slack = if o.slack.is_nan() {
        f64::NEG_INFINITY
    } else {
        o.slack
    };
    runs.push(Run {
        rate,
        slack,
        data: o.data,
    });
    runs.len() - 1
}

/// The passing and failing ends of the search, in log rate, with their slacks (Illinois:
/// the slack of an end kept twice in a row is halved, so the secant does not stall).
struct Bracket {
    pass: usize,
    x_pass: f64,
    s_pass: f64,
    x_fail: f64,
    s_fail: f64,
    kept: Option<bool>,
}

impl Bracket {
    fn new<T>(pass: &Run<T>, fail: &Run<T>, i_pass: usize) -> Bracket {
        Bracket {
            pass: i_pass,
            x_pass: log_rate(pass),
            s_pass: pass.slack,
            x_fail: log_rate(fail),
            s_fail: fail.slack,
            kept: None,
        }
    }

    fn converged(&self, tolerance: f64) -> bool {
        (self.x_fail - self.x_pass).exp() - 1.0 <= tolerance
    }

    /// Where the secant through both ends crosses zero slack, at least a quarter of the
    /// bracket from either end; the midpoint when a slack is not finite.
    fn next_rate(&self) -> f64 {
        let (a, b) = (self.x_pass, self.x_fail);
        let w = b - a;
        let x = if self.s_pass.is_finite() && self.s_fail.is_finite() && self.s_pass > self.s_fail {
            a + w * self.s_pass / (self.s_pass - self.s_fail)
        } else {
            a + w / 2.0
        };
        x.clamp(a + w / 4.0, b - w / 4.0).exp()
    }

    fn absorb<T>(&mut self, r: &Run<T>, i: usize) {
        let x = log_rate(r);
        if r.passed() {
            (self.pass, self.x_pass, self.s_pass) = (i, x, r.slack);
            if self.kept == Some(false) {
                self.s_fail /= 2.0;
            }
            self.kept = Some(false);
        } else {
            (self.x_fail, self.s_fail) = (x, r.slack);
            if self.kept == Some(true) {
                self.s_pass /= 2.0;
            }
            self.kept = Some(true);
        }
    }
}

fn log_rate<T>(r: &Run<T>) -> f64 {
    r.rate.map(f64::ln).unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose median latency grows as 1/(1 − ρ) with utilisation ρ = rate/capacity
    /// (an M/M/1 shape): slack = ln(bound/latency).
    fn queue(capacity: f64, bound: f64, base: f64) -> impl Fn(Option<f64>) -> f64 {
        move |rate| {
            let rho = rate.map(|r| r / capacity).unwrap_or(f64::INFINITY);
            if rho >= 1.0 {
                return (bound / (base * 50.0)).ln().min(-0.5);
            }
            (bound / (base / (1.0 - rho))).ln()
        }
    }

    /// Search a server of `capacity` requests/s whose slack at each rate is `slack`.
    fn run_cap<S: Fn(Option<f64>) -> f64>(b: Bounds, capacity: f64, slack: S) -> Search<()> {
        futures_lite(search(b, |r| {
            let s = slack(r);
            let tput = r.map_or(capacity, |r| r.min(capacity));
            async move {
                Outcome {
                    slack: s,
                    request_throughput: tput,
                    data: (),
                }
            }
        }))
    }

    fn run<S: Fn(Option<f64>) -> f64>(b: Bounds, slack: S) -> Search<()> {
        run_cap(b, f64::INFINITY, slack)
    }

    fn futures_lite<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// The true edge of `queue(capacity, bound, base)`.
    fn edge(capacity: f64, bound: f64, base: f64) -> f64 {
        capacity * (1.0 - base / bound)
    }

    #[test]
    fn monotone_curve_converges_to_a_measured_pass_below_the_edge() {
        let (cap, bound, base) = (6.0, 30.0, 10.0);
        let e = edge(cap, bound, base);
        let s = run_cap(Bounds::default(), cap, queue(cap, bound, base));
        assert_eq!(s.ending, Ending::Converged, "{:?}", s.runs);
        let r = s.best().unwrap().rate.unwrap();
        assert!(r <= e && r >= e / 1.1, "found {r}, edge {e}: {:?}", s.runs);
        // Without a capacity (everything at once crashed): slower, still a measured pass.
        let s = run(Bounds::default(), queue(cap, bound, base));
        assert!(s.runs.len() <= Bounds::default().max_runs);
        let r = s.best().unwrap().rate.unwrap();
        assert!(r <= e && r >= e / 1.6, "found {r}, edge {e}: {:?}", s.runs);
    }

    /// The seed's search: both bounds, then at most five rounds of halving the QPS interval
    /// until it is narrower than 0.1 requests/s. Returns (runs, highest passing rate).
    fn seed_bisection(pass: impl Fn(f64) -> bool) -> (usize, Option<f64>) {
        let (mut lo, mut hi) = (0.25, 16.0);
        if pass(hi) {
            return (2, Some(hi));
        }
        if !pass(lo) {
            return (2, None);
        }
        let mut runs = 2;
        for _ in 0..5 {
            if hi - lo <= 0.1 {
                break;
            }
            let mid = (lo + hi) / 2.0;
            runs += 1;
            if pass(mid) { lo = mid } else { hi = mid }
        }
        (runs, Some(lo))
    }

    #[test]
    fn as_few_runs_as_the_seeds_bisection_and_far_closer_to_the_edge() {
        let (mut forge_total, mut seed_total) = (0, 0);
        let (mut forge_miss, mut seed_miss) = (0.0, 0.0);
        for (cap, bound, base) in [
            (6.0, 30.0, 10.0),
            (1.5, 30.0, 8.0),
            (11.0, 1500.0, 200.0),
            (3.0, 30.0, 25.0),
        ] {
            let q = queue(cap, bound, base);
            let e = edge(cap, bound, base);
            let forge = run_cap(Bounds::default(), cap, &q);
            let (seed_runs, seed_best) = seed_bisection(|r| q(Some(r)) >= 0.0);
            let got = forge.best().unwrap().rate.unwrap();
            forge_total += forge.runs.len();
            seed_total += seed_runs;
            assert!(forge.runs.len() <= seed_runs + 1, "{:?}", forge.runs);
            assert!(
                got >= e / 1.1 && got <= e,
                "capacity {cap}: {got} vs edge {e}"
            );
            assert!(e - got <= e - seed_best.unwrap(), "capacity {cap}");
            forge_miss += (e - got) / e;
            seed_miss += (e - seed_best.unwrap()) / e;
        }
        assert!(forge_total <= seed_total, "{forge_total} vs {seed_total}");
        assert!(forge_miss * 3.0 < seed_miss, "{forge_miss} vs {seed_miss}");
    }

    #[test]
    fn everything_at_once_passing_ends_the_search() {
        let s = run(Bounds::default(), |_| 0.2);
        assert_eq!(s.ending, Ending::AllAtOnce);
        assert_eq!(s.runs.len(), 1);
        assert_eq!(s.best().unwrap().rate, None);
    }

    #[test]
    fn a_search_told_everything_at_once_misses_starts_at_the_bounds() {
        let (cap, bound, base) = (6.0, 30.0, 10.0);
        let b = Bounds {
            lo: 3.0,
            hi: 5.0,
            tolerance: 0.02,
            max_runs: 10,
            all_at_once: false,
        };
        let s = run_cap(b, cap, queue(cap, bound, base));
        assert!(s.runs.iter().all(|r| r.rate.is_some()), "{:?}", s.runs);
        let r = s.best().unwrap().rate.unwrap();
        let e = edge(cap, bound, base);
        assert!(r <= e && r >= e / 1.02, "{r} vs {e}: {:?}", s.runs);
    }

    #[test]
    fn upper_bound_passing_is_reported_as_such() {
        let s = run(Bounds::default(), |r| if r.is_none() { -1.0 } else { 0.1 });
        assert_eq!(s.ending, Ending::AtUpperBound);
        assert_eq!(s.best().unwrap().rate, Some(16.0));
    }

    #[test]
    fn nothing_passes_when_the_lower_bound_misses() {
        let s = run(Bounds::default(), |_| -0.3);
        assert_eq!(s.ending, Ending::NothingPasses);
        assert!(s.best().is_none());
        // All at once, the upper bound, half of it, the lower bound.
        assert_eq!(s.runs.len(), 4);
    }

    #[test]
    fn failed_runs_count_as_misses() {
        // An engine that crashes above 2 req/s (slack NaN from the caller is a miss too).
        let s = run(Bounds::default(), |r| match r {
            Some(r) if r <= 2.0 => 0.3,
            _ => f64::NAN,
        });
        let r = s.best().unwrap().rate.unwrap();
        assert!(r <= 2.0 && r > 2.0 / 1.5, "{r}");
        assert!(
            s.runs
                .iter()
                .all(|x| x.passed() == (x.rate.unwrap_or(99.0) <= 2.0))
        );
    }

    #[test]
    fn noisy_curve_answers_a_measured_pass_near_the_edge_within_budget() {
        let (cap, bound, base) = (6.0, 30.0, 10.0);
        let e = edge(cap, bound, base);
        for seed in 0..200u64 {
            let q = queue(cap, bound, base);
            let noise = std::cell::Cell::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let s = run_cap(Bounds::default(), cap, |r| {
                let mut x = noise.get();
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                noise.set(x);
                // ±3 % of noise on the latency.
                q(r) + ((x % 2001) as f64 / 1000.0 - 1.0) * 0.03
            });
            assert!(s.runs.len() <= Bounds::default().max_runs);
            let best = s.best().unwrap();
            assert!(best.passed());
            let r = best.rate.unwrap();
            // Within the noise band of the edge: never far above, never far below.
            assert!(
                r <= e * 1.12 && r >= e * 0.8,
                "seed {seed}: {r} vs edge {e}"
            );
        }
    }
}
