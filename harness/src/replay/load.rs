//! How a replay sends: the open and closed loops, their bounds, the stop flag, and
//! the progress hook.
//!
//! The calling thread drives the run: in the open loop it releases each request at
//! its due time to a pool of sender threads (grown on demand up to
//! `max_in_flight`), and in both loops it collects the outcomes into the report and
//! calls the progress hook. So the report and the hook need no locking, and the
//! hook runs on the caller's thread as a progress bar wants.
//!
//! Why the open loop's senders are a pool that grows rather than one thread per
//! request: a stalled server would otherwise cost a thread per due request. With the
//! pool full, due requests queue, and since latency runs from the due time, the
//! queueing shows in the numbers instead of being hidden.
//!
//! On stop, no request is started any more (queued ones are dropped), and the run
//! waits up to [`STOP_GRACE`] for those in flight; any still out then are reported
//! as unfinished, their threads left to end at their own timeout.

use super::report::Report;
use super::source::{Prepared, Traffic};
use super::wire::{self, Answer, ErrorKind};
use super::{Error, Load, Options, Progress};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often the progress hook is called.
const TICK: Duration = Duration::from_millis(100);

/// How long a stopped run waits for the requests in flight.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// Stack size of a sender thread (they hold a 16 KiB buffer and little else).
const SENDER_STACK: usize = 256 * 1024;

/// When requests go out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Schedule {
    /// Open loop: request `i` at `i / rate` seconds.
    Rate(f64),
    /// Open loop at the file's recorded offsets.
    Recorded,
    /// Closed loop with this many senders.
    Closed(usize),
}

/// A validated run: its schedule and bounds.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    schedule: Schedule,
    count: Option<u64>,
    duration: Option<Duration>,
}

impl Plan {
    pub fn new(options: &Options, traffic: &Traffic) -> Result<Plan, Error> {
        let bad = |message: &str| Err(Error::Options(message.to_owned()));
        if traffic.len() == Some(0) {
            return bad("the traffic has no requests");
        }
        if options.timeout.is_zero() {
            return bad("the request timeout must be positive");
        }
        if options.max_in_flight == 0 {
            return bad("max in flight must be at least 1");
        }
        let schedule = match options.load {
            Load::Open {
                rate_per_second: Some(rate),
            } => {
                if !(rate.is_finite() && rate > 0.0) {
                    return bad("the rate must be a positive number of requests per second");
                }
                Schedule::Rate(rate)
            }
            Load::Open {
                rate_per_second: None,
            } => {
                if !traffic.has_offsets() {
                    return bad("an open loop needs a rate, unless the traffic file records time offsets (at_ms or start_time)");
                }
                Schedule::Recorded
            }
            Load::Closed { concurrency: 0 } => return bad("the concurrency must be at least 1"),
            Load::Closed { concurrency } => Schedule::Closed(concurrency),
        };
        let mut count = options.count;
        if count.is_none() && options.duration.is_none() {
            match traffic.len() {
                Some(n) => count = Some(n),
                None => return bad("the built-in mix needs a bound: a count or a duration"),
            }
        }
        Ok(Plan {
            schedule,
            count,
            duration: options.duration,
        })
    }

    /// The number of requests the run will send if not stopped, when known.
    fn planned(&self) -> Option<u64> {
        let by_time = match (self.schedule, self.duration) {
            (Schedule::Rate(rate), Some(d)) => Some((d.as_secs_f64() * rate).ceil() as u64),
            _ => None,
        };
        match (self.count, by_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What a sender reports for one request.
enum Outcome {
    Done {
        route: usize,
        latency: Duration,
        result: Result<Answer, ErrorKind>,
    },
    /// Dropped from the queue because the run was stopped.
    Skipped,
}

/// State the senders share with the driving thread.
struct Shared {
    target: SocketAddr,
    timeout: Duration,
    /// Requests whose sending began.
    sent: AtomicU64,
    /// The caller's stop flag.
    stop: Arc<AtomicBool>,
    /// Set when the run could not go on (a sender failed to start).
    halt: AtomicBool,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.halt.load(Ordering::SeqCst)
    }

    fn send(&self, item: &Prepared) -> Result<Answer, ErrorKind> {
        self.sent.fetch_add(1, Ordering::SeqCst);
        wire::exchange(self.target, &item.bytes, item.head, self.timeout)
    }
}

/// Runs `plan` and records every outcome into `report`.
pub(crate) fn drive(
    options: &Options,
    plan: &Plan,
    traffic: Traffic,
    stop: &Arc<AtomicBool>,
    progress: impl FnMut(&Progress),
    report: &mut Report,
) -> Result<(), Error> {
    let shared = Arc::new(Shared {
        target: options.target,
        timeout: options.timeout,
        sent: AtomicU64::new(0),
        stop: Arc::clone(stop),
        halt: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    let mut collector = Collector {
        rx,
        report,
        progress,
        shared: Arc::clone(&shared),
        start,
        next_tick: start + TICK,
        answered: 0,
        errors: 0,
        planned: plan.planned(),
        planned_duration: plan.duration,
    };
    let traffic = Arc::new(traffic);
    let cut_short = match plan.schedule {
        Schedule::Closed(concurrency) => closed(
            plan,
            concurrency,
            &traffic,
            &shared,
            tx,
            start,
            &mut collector,
        )?,
        Schedule::Rate(_) | Schedule::Recorded => {
            open(options, plan, &traffic, &shared, tx, start, &mut collector)?
        }
    };
    let finished = collector.answered + collector.errors;
    let unfinished = shared.sent.load(Ordering::SeqCst).saturating_sub(finished);
    collector.report.unfinished = unfinished;
    collector.report.complete = !cut_short && unfinished == 0;
    collector.report.duration = start.elapsed();
    collector.tick(true);
    Ok(())
}

/// The closed loop; returns whether the stop flag cut it short.
fn closed<P: FnMut(&Progress)>(
    plan: &Plan,
    concurrency: usize,
    traffic: &Arc<Traffic>,
    shared: &Arc<Shared>,
    tx: Sender<Outcome>,
    start: Instant,
    collector: &mut Collector<'_, P>,
) -> Result<bool, Error> {
    let next = Arc::new(AtomicU64::new(0));
    let cut_short = Arc::new(AtomicBool::new(false));
    let (count, duration) = (plan.count, plan.duration);
    for _ in 0..concurrency {
        let (traffic, sender_shared, next, cut_short, tx) = (
            Arc::clone(traffic),
            Arc::clone(shared),
            Arc::clone(&next),
            Arc::clone(&cut_short),
            tx.clone(),
        );
        let spawned = thread::Builder::new()
            .name("replay sender".to_owned())
            .stack_size(SENDER_STACK)
            .spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if count.is_some_and(|c| i >= c) || duration.is_some_and(|d| start.elapsed() >= d) {
                    return;
                }
                if sender_shared.stopping() {
                    cut_short.store(true, Ordering::SeqCst);
                    return;
                }
                let item = traffic.item(i);
                let sent_at = Instant::now();
                let result = sender_shared.send(&item);
                let latency = sent_at.elapsed();
                let outcome = Outcome::Done {
                    route: item.route,
                    latency,
                    result,
                };
                if tx.send(outcome).is_err() {
                    return;
                }
            });
        if let Err(err) = spawned {
            shared.halt.store(true, Ordering::SeqCst);
            return Err(Error::Run(format!("starting a sender thread: {err}")));
        }
    }
    drop(tx);
    collector.drain();
    Ok(cut_short.load(Ordering::SeqCst))
}

/// A request released to the open loop's senders.
struct Job {
    item: Prepared,
    due: Instant,
}

/// The open loop; returns whether the stop flag cut it short.
fn open<P: FnMut(&Progress)>(
    options: &Options,
    plan: &Plan,
    traffic: &Arc<Traffic>,
    shared: &Arc<Shared>,
    tx: Sender<Outcome>,
    start: Instant,
    collector: &mut Collector<'_, P>,
) -> Result<bool, Error> {
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let jobs = Arc::new(Mutex::new(job_rx));
    // Senders waiting for a job, and jobs released but not yet taken.
    let idle = Arc::new(AtomicUsize::new(0));
    let queued = Arc::new(AtomicUsize::new(0));
    let mut senders = 0usize;
    let mut i = 0u64;
    let mut cut_short = false;
    loop {
        if shared.stopping() {
            cut_short = true;
            break;
        }
        if plan.count.is_some_and(|c| i >= c) {
            break;
        }
        let offset = match plan.schedule {
            Schedule::Rate(rate) => Duration::from_secs_f64(i as f64 / rate),
            _ => match traffic.offset(i) {
                Some(offset) => offset,
                None => break,
            },
        };
        if let Some(bound) = plan.duration.filter(|&d| offset >= d) {
            // The run lasts its duration, even if the last request is due earlier.
            collector.wait_until(start + bound);
            cut_short = shared.stopping();
            break;
        }
        let due = start + offset;
        if !collector.wait_until(due) {
            continue;
        }
        if idle.load(Ordering::SeqCst) <= queued.load(Ordering::SeqCst)
            && senders < options.max_in_flight
        {
            idle.fetch_add(1, Ordering::SeqCst);
            let spawned = spawn_open_sender(shared, &jobs, &idle, &queued, &tx);
            match spawned {
                Ok(()) => senders += 1,
                Err(err) if senders == 0 => {
                    shared.halt.store(true, Ordering::SeqCst);
                    return Err(Error::Run(format!("starting a sender thread: {err}")));
                }
                // Go on with the senders there are; the wait shows in the latency.
                Err(_) => {
                    idle.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        queued.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            item: traffic.item(i),
            due,
        };
        if job_tx.send(job).is_err() {
            break;
        }
        i += 1;
    }
    drop(job_tx);
    drop(tx);
    collector.drain();
    Ok(cut_short)
}

fn spawn_open_sender(
    shared: &Arc<Shared>,
    jobs: &Arc<Mutex<Receiver<Job>>>,
    idle: &Arc<AtomicUsize>,
    queued: &Arc<AtomicUsize>,
    tx: &Sender<Outcome>,
) -> std::io::Result<()> {
    let (shared, jobs, idle, queued, tx) = (
        Arc::clone(shared),
        Arc::clone(jobs),
        Arc::clone(idle),
        Arc::clone(queued),
        tx.clone(),
    );
    thread::Builder::new()
        .name("replay sender".to_owned())
        .stack_size(SENDER_STACK)
        .spawn(move || loop {
            let job = match jobs.lock() {
                Ok(jobs) => jobs.recv(),
                Err(_) => return,
            };
            let Ok(job) = job else {
                return;
            };
            queued.fetch_sub(1, Ordering::SeqCst);
            idle.fetch_sub(1, Ordering::SeqCst);
            let outcome = if shared.stopping() {
                Outcome::Skipped
            } else {
                let result = shared.send(&job.item);
                // From the due time: waiting for a sender counts.
                let latency = job.due.elapsed();
                Outcome::Done {
                    route: job.item.route,
                    latency,
                    result,
                }
            };
            idle.fetch_add(1, Ordering::SeqCst);
            if tx.send(outcome).is_err() {
                return;
            }
        })
        .map(drop)
}

/// Collects outcomes into the report and calls the progress hook, on the driving
/// thread.
struct Collector<'a, P: FnMut(&Progress)> {
    rx: Receiver<Outcome>,
    report: &'a mut Report,
    progress: P,
    shared: Arc<Shared>,
    start: Instant,
    next_tick: Instant,
    answered: u64,
    errors: u64,
    planned: Option<u64>,
    planned_duration: Option<Duration>,
}

impl<P: FnMut(&Progress)> Collector<'_, P> {
    fn record(&mut self, outcome: Outcome) {
        if let Outcome::Done {
            route,
            latency,
            result,
        } = outcome
        {
            match result {
                Ok(_) => self.answered += 1,
                Err(_) => self.errors += 1,
            }
            self.report.record(route, latency, result);
        }
    }

    /// Calls the hook if a tick is due (or `force`).
    fn tick(&mut self, force: bool) {
        let now = Instant::now();
        if !force && now < self.next_tick {
            return;
        }
        self.next_tick = now + TICK;
        let progress = Progress {
            sent: self.shared.sent.load(Ordering::SeqCst),
            answered: self.answered,
            errors: self.errors,
            elapsed: now.duration_since(self.start),
            planned: self.planned,
            planned_duration: self.planned_duration,
        };
        (self.progress)(&progress);
    }

    /// Collects until `until`; false if the run is stopping first.
    fn wait_until(&mut self, until: Instant) -> bool {
        loop {
            self.tick(false);
            if self.shared.stopping() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            let wake = until.min(self.next_tick);
            match self.rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(outcome) => self.record(outcome),
                Err(RecvTimeoutError::Timeout) => {}
                // No sender left (cannot happen while the driver holds one): wait.
                Err(RecvTimeoutError::Disconnected) => {
                    thread::sleep(wake.saturating_duration_since(now));
                }
            }
        }
    }

    /// Collects until every sender has finished, or for [`STOP_GRACE`] once the run
    /// is stopping.
    fn drain(&mut self) {
        let mut give_up: Option<Instant> = None;
        loop {
            self.tick(false);
            let now = Instant::now();
            if give_up.is_none() && self.shared.stopping() {
                give_up = Some(now + STOP_GRACE);
            }
            if give_up.is_some_and(|t| now >= t) {
                return;
            }
            let wake = give_up.map_or(self.next_tick, |t| t.min(self.next_tick));
            match self.rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(outcome) => self.record(outcome),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}
