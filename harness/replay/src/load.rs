//! How a replay sends: the open and closed loops on kept-alive connections, their
//! bounds, the stop flag, and the progress hook.
//!
//! ## Threads, connections, tasks
//!
//! The run is split over `threads` worker threads, each with a single-threaded tokio
//! runtime of its own and its own share of the connections: no lock or channel sits
//! between a request and its connection, and `--threads N` on N cores scales as wrk
//! does. A worker keeps its connections open (HTTP/1.1 keep-alive, or HTTP/2 streams
//! over a few connections) and records its outcomes into a report of its own; the
//! reports are merged at the end. The calling thread only calls the progress hook,
//! from the [`Scoreboard`].
//!
//! - Closed loop: the concurrency is split over the workers; each client is a task
//!   that sends its next request when the previous one is answered. Latency runs from
//!   the actual send.
//! - Open loop: each worker releases its share of the requests (every `threads`-th)
//!   at their due times onto a queue served by its share of `max_in_flight` sender
//!   tasks. A request waiting for a sender or a connection is late, and since latency
//!   runs from the due time, the wait counts: no coordinated omission.
//!
//! Requests carry no timer of their own: a watchdog per worker ([`supervise`]) counts
//! one in flight past the timeout as a timeout and replaces its task. On stop, no
//! request is started any more, and each worker waits up to [`STOP_GRACE`] for those
//! in flight; any still out then are reported as unfinished.
//!
//! The abort guard ([`Guard`]) runs on the calling thread beside the progress hook,
//! from the same scoreboard: when it trips it raises the run's own abort flag,
//! which stops the workers as the caller's stop flag does.

use super::report::{Mode, Report};
use super::slo::Guard;
use super::source::{Prepared, Traffic};
use super::{Error, Load, Options, OptionsError, Panic, Progress};
use bytes::Bytes;
use c4mesh_live::connection::{Connection, Dialer};
use c4mesh_live::{Answer, ErrorKind};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How often the progress hook is called.
const TICK: Duration = Duration::from_millis(100);

/// How long a stopped run waits for the requests in flight.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// When requests go out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Schedule {
    /// Open loop: request `i` at `i / rate` seconds.
    Rate(f64),
    /// Open loop at the file's recorded offsets divided by `speed`.
    Recorded { speed: f64 },
    /// Closed loop with this many clients.
    Closed(usize),
}

/// A validated run: its schedule and bounds.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    schedule: Schedule,
    count: Option<u64>,
    duration: Option<Duration>,
    threads: usize,
    /// Connections per worker thread (at least 1).
    connections: Vec<usize>,
}

impl Plan {
    /// The plan of `options` over `traffic` (already this shard's share of a file):
    /// the shard's share of the rate, the concurrency and the count.
    pub fn new(options: &Options, traffic: &Traffic) -> Result<Plan, OptionsError> {
        let shard = options.shard;
        if traffic.len() == Some(0) {
            return Err(OptionsError::NoTraffic);
        }
        if options.timeout.is_zero() {
            return Err(OptionsError::Timeout);
        }
        if options.max_in_flight == 0 {
            return Err(OptionsError::MaxInFlight);
        }
        if options.threads == 0 {
            return Err(OptionsError::Threads);
        }
        if options.connections == Some(0) {
            return Err(OptionsError::Connections);
        }
        if !(options.speed.is_finite() && options.speed > 0.0) {
            return Err(OptionsError::Speed(options.speed));
        }
        let schedule = match options.load {
            Load::Open {
                rate_per_second: Some(rate),
            } => {
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(OptionsError::Rate(rate));
                }
                Schedule::Rate(shard.rate(rate))
            }
            Load::Open {
                rate_per_second: None,
            } => {
                if !traffic.has_offsets() {
                    return Err(OptionsError::NoOffsets);
                }
                Schedule::Recorded {
                    speed: options.speed,
                }
            }
            Load::Closed { concurrency: 0 } => return Err(OptionsError::Concurrency),
            Load::Closed { concurrency } => {
                let share = shard.share(concurrency as u64);
                if share == 0 {
                    return Err(OptionsError::ShardWithoutClients { shard, concurrency });
                }
                Schedule::Closed(usize::try_from(share).unwrap_or(concurrency))
            }
        };
        let mut count = match options.count {
            Some(total) => {
                let share = shard.share(total);
                if share == 0 {
                    return Err(OptionsError::ShardWithoutCount {
                        shard,
                        count: total,
                    });
                }
                Some(share)
            }
            None => None,
        };
        if count.is_none() && options.duration.is_none() {
            // A file is sent once (this shard's lines of it).
            match traffic.len() {
                Some(n) => count = Some(n),
                None => return Err(OptionsError::NoBound),
            }
        }
        // Enough connections that no client waits for one, unless told otherwise.
        let total = options.connections.unwrap_or(match schedule {
            Schedule::Closed(concurrency) => concurrency,
            _ => options.max_in_flight,
        });
        let threads = match schedule {
            Schedule::Closed(concurrency) => options.threads.min(concurrency),
            _ => options.threads,
        }
        .min(total.max(1));
        let connections = split(total, threads)
            .into_iter()
            .map(|n| n.max(1))
            .collect();
        Ok(Plan {
            schedule,
            count,
            duration: options.duration,
            threads,
            connections,
        })
    }

    /// How the run is paced, as its report says: this shard's rate or concurrency.
    pub fn mode(&self) -> Mode {
        match self.schedule {
            Schedule::Rate(rate) => Mode::Open { rate: Some(rate) },
            Schedule::Recorded { .. } => Mode::Open { rate: None },
            Schedule::Closed(concurrency) => Mode::Closed { concurrency },
        }
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

    /// Whether request `i` (counted from 0) is beyond the run's count.
    fn past_count(&self, i: u64) -> bool {
        self.count.is_some_and(|c| i >= c)
    }
}

/// `total` split into `parts` near-equal shares.
fn split(total: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| total / parts + usize::from(i < total % parts))
        .collect()
}

/// The run's scoreboard, shared by every worker thread: the counts the progress hook
/// and the abort guard read, the closed loop's next request, and the stop flags.
struct Scoreboard {
    sent: AtomicU64,
    answered: AtomicU64,
    errors: AtomicU64,
    /// Responses with a 5xx status (for the abort guard).
    server_errors: AtomicU64,
    /// The closed loop's next request index.
    next: AtomicU64,
    stop: Arc<AtomicBool>,
    /// Raised by the abort guard; the caller's `stop` is left alone.
    aborted: AtomicBool,
    /// Connections opened by every worker's pool.
    connections_opened: AtomicU64,
}

impl Scoreboard {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.aborted.load(Ordering::SeqCst)
    }

    /// Finished requests and failed ones (no response, or a 5xx) so far.
    fn outcomes(&self) -> (u64, u64) {
        let answered = self.answered.load(Ordering::SeqCst);
        let errors = self.errors.load(Ordering::SeqCst);
        let server_errors = self.server_errors.load(Ordering::SeqCst);
        (answered + errors, errors + server_errors)
    }
}

/// Runs `plan` and records every outcome into `report`.
pub(crate) fn drive(
    options: &Options,
    plan: &Plan,
    traffic: Traffic,
    stop: &Arc<AtomicBool>,
    mut progress: impl FnMut(&Progress),
    report: &mut Report,
) -> Result<(), Error> {
    let dialer = Dialer::new(options.endpoint.clone(), &options.settings).map_err(Error::Client)?;
    let board = Arc::new(Scoreboard {
        sent: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        server_errors: AtomicU64::new(0),
        next: AtomicU64::new(0),
        stop: Arc::clone(stop),
        aborted: AtomicBool::new(false),
        connections_opened: AtomicU64::new(0),
    });
    let traffic = Arc::new(traffic);
    let start = Instant::now();
    let in_flight = split(options.max_in_flight, plan.threads);
    let mut workers = Vec::new();
    for worker in 0..plan.threads {
        let job = LoadThread {
            index: worker,
            plan: plan.clone(),
            traffic: Arc::clone(&traffic),
            board: Arc::clone(&board),
            dialer: dialer.clone(),
            timeout: options.timeout,
            max_in_flight: in_flight.get(worker).copied().unwrap_or(1).max(1),
            start,
            empty: report.empty(),
        };
        let spawned = thread::Builder::new()
            .name(format!("replay worker {worker}"))
            .spawn(move || job.run());
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(source) => {
                stop.store(true, Ordering::SeqCst);
                return Err(Error::Spawn { worker, source });
            }
        }
    }
    let progress_of = |board: &Scoreboard| Progress {
        sent: board.sent.load(Ordering::SeqCst),
        answered: board.answered.load(Ordering::SeqCst),
        errors: board.errors.load(Ordering::SeqCst),
        elapsed: start.elapsed(),
        planned: plan.planned(),
        planned_duration: plan.duration,
    };
    let mut guard = options.abort_on.clone().map(Guard::new);
    while workers.iter().any(|w| !w.is_finished()) {
        progress(&progress_of(&board));
        if let Some(watch) = &mut guard {
            let (finished, failed) = board.outcomes();
            if let Some(abort) = watch.observe(start.elapsed(), finished, failed) {
                board.aborted.store(true, Ordering::SeqCst);
                report.aborted = Some(abort);
                guard = None;
            }
        }
        thread::sleep(TICK);
    }
    let mut cut_short = false;
    for (worker, handle) in workers.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(outcome)) => {
                cut_short |= outcome.cut_short;
                report.merge(&outcome.report);
            }
            Ok(Err(source)) => return Err(Error::Runtime { worker, source }),
            Err(payload) => {
                return Err(Error::Panicked {
                    worker,
                    source: Panic::from_payload(payload.as_ref()),
                })
            }
        }
    }
    let finished = report.overall.requests();
    let sent = board.sent.load(Ordering::SeqCst);
    report.unfinished = sent.saturating_sub(finished);
    report.complete = !cut_short && report.unfinished == 0;
    report.duration = start.elapsed();
    report.connections = board.connections_opened.load(Ordering::SeqCst);
    progress(&progress_of(&board));
    Ok(())
}

/// One worker thread of the load: its share of the run, its own event loop and
/// connections.
struct LoadThread {
    index: usize,
    plan: Plan,
    traffic: Arc<Traffic>,
    board: Arc<Scoreboard>,
    dialer: Dialer,
    timeout: Duration,
    max_in_flight: usize,
    start: Instant,
    /// An empty report with the run's routes, to record into.
    empty: Report,
}

/// What a worker hands back.
struct Outcome {
    report: Report,
    cut_short: bool,
}

impl LoadThread {
    /// The worker's share of the run; the error of its event loop, if it has none
    /// (the other workers are stopped then).
    fn run(self) -> Result<Outcome, std::io::Error> {
        let report = Rc::new(RefCell::new(self.empty.clone()));
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                self.board.stop.store(true, Ordering::SeqCst);
                return Err(error);
            }
        };
        let local = tokio::task::LocalSet::new();
        let connections = self.plan.connections.get(self.index).copied().unwrap_or(1);
        let pool = Rc::new(Pool::new(self.dialer.clone(), connections));
        let cut_short = local.block_on(&runtime, async {
            let ctx = Rc::new(Context {
                pool,
                traffic: Arc::clone(&self.traffic),
                board: Arc::clone(&self.board),
                report: Rc::clone(&report),
                timeout: self.timeout,
            });
            let cut_short = match self.plan.schedule {
                Schedule::Closed(concurrency) => {
                    let clients = split(concurrency, self.plan.threads)
                        .get(self.index)
                        .copied()
                        .unwrap_or(0);
                    self.closed(&ctx, clients).await
                }
                Schedule::Rate(_) | Schedule::Recorded { .. } => self.open(&ctx).await,
            };
            cut_short
        });
        let report = Rc::try_unwrap(report)
            .map(RefCell::into_inner)
            .unwrap_or_else(|shared| shared.borrow().clone());
        Ok(Outcome { report, cut_short })
    }

    /// The closed loop's clients on this worker (watched by [`supervise`]); whether
    /// the stop flag cut it short.
    async fn closed(&self, ctx: &Rc<Context>, clients: usize) -> bool {
        let cut_short = Rc::new(Cell::new(false));
        let ended = Rc::new(tokio::sync::Notify::new());
        // A connection for each client: each keeps its own.
        let own_connection = ctx.pool.max >= clients;
        let spawn = |client: &Rc<Client>| {
            let (ctx, plan, cut_short, client, ended) = (
                Rc::clone(ctx),
                self.plan.clone(),
                Rc::clone(&cut_short),
                Rc::clone(client),
                Rc::clone(&ended),
            );
            let start = self.start;
            tokio::task::spawn_local(async move {
                let mut connection = None;
                loop {
                    let i = ctx.board.next.fetch_add(1, Ordering::Relaxed);
                    if plan.past_count(i) || plan.duration.is_some_and(|d| start.elapsed() >= d) {
                        break;
                    }
                    if ctx.board.stopping() {
                        cut_short.set(true);
                        break;
                    }
                    let item = ctx.traffic.item(i);
                    let sent_at = Instant::now();
                    client.started.set(Some(sent_at));
                    client.route.set(item.route);
                    ctx.begin();
                    let result = if own_connection {
                        ctx.pool.send_own(&mut connection, &item, &ctx.board).await
                    } else {
                        ctx.pool.send(&item, &ctx.board).await
                    };
                    client.started.set(None);
                    ctx.finish(item.route, sent_at.elapsed(), result);
                }
                ended.notify_one();
            })
        };
        supervise(ctx, clients, spawn, &ended).await;
        cut_short.get()
    }

    /// The open loop's share of this worker: every `threads`-th request from
    /// `index`, each at its due time; whether the stop flag cut it short.
    async fn open(&self, ctx: &Rc<Context>) -> bool {
        // Due requests wait in a queue for one of `max_in_flight` senders; a wait
        // counts in their latency, which runs from the due time.
        let queue: Rc<Due> = Rc::default();
        let wake = Rc::new(tokio::sync::Notify::new());
        let closed = Rc::new(Cell::new(false));
        let ended = Rc::new(tokio::sync::Notify::new());
        let senders = self.max_in_flight;
        let spawn = |client: &Rc<Client>| {
            let (ctx, queue, wake, closed, client, ended) = (
                Rc::clone(ctx),
                Rc::clone(&queue),
                Rc::clone(&wake),
                Rc::clone(&closed),
                Rc::clone(client),
                Rc::clone(&ended),
            );
            tokio::task::spawn_local(async move {
                loop {
                    let job = loop {
                        if let Some(job) = queue.borrow_mut().pop_front() {
                            break Some(job);
                        }
                        if closed.get() {
                            break None;
                        }
                        wake.notified().await;
                    };
                    let Some((item, due)) = job else {
                        break;
                    };
                    if ctx.board.stopping() {
                        ctx.skip();
                        continue;
                    }
                    client.started.set(Some(Instant::now()));
                    client.route.set(item.route);
                    let result = ctx.pool.send(&item, &ctx.board).await;
                    client.started.set(None);
                    ctx.finish(item.route, due.elapsed(), result);
                }
                ended.notify_one();
            })
        };
        let schedule = async {
            let cut_short = self.release(ctx, &queue, &wake).await;
            closed.set(true);
            for _ in 0..senders {
                wake.notify_one();
            }
            cut_short
        };
        let (cut_short, ()) = tokio::join!(schedule, supervise(ctx, senders, spawn, &ended));
        cut_short
    }

    /// Puts this worker's share of the requests (every `threads`-th from `index`) on
    /// the queue at their due times; whether the stop flag cut it short.
    async fn release(&self, ctx: &Rc<Context>, queue: &Due, wake: &tokio::sync::Notify) -> bool {
        let step = self.plan.threads as u64;
        let mut i = self.index as u64;
        loop {
            if ctx.board.stopping() {
                return true;
            }
            if self.plan.past_count(i) {
                return false;
            }
            let offset = match self.plan.schedule {
                Schedule::Rate(rate) => Duration::from_secs_f64(i as f64 / rate),
                Schedule::Recorded { speed } => match self.traffic.offset(i) {
                    Some(offset) => offset.div_f64(speed),
                    None => return false,
                },
                Schedule::Closed(_) => return false,
            };
            if let Some(bound) = self.plan.duration.filter(|&d| offset >= d) {
                // The run lasts its duration, even if the last request is due earlier.
                return !self.sleep_until(ctx, self.start + bound).await;
            }
            let due = self.start + offset;
            if !self.sleep_until(ctx, due).await {
                return true;
            }
            ctx.begin();
            queue.borrow_mut().push_back((self.traffic.item(i), due));
            wake.notify_one();
            i += step;
        }
    }

    /// Sleeps until `until`, waking early when the run stops; false if it did.
    ///
    /// Timers fire on a 1 ms wheel, so a request released by a timer alone would leave
    /// up to a millisecond late, and that lateness would show as latency the server
    /// never caused. So the last stretch before a due time is spent yielding to the
    /// worker's other tasks (I/O goes on) and looking at the clock.
    async fn sleep_until(&self, ctx: &Context, until: Instant) -> bool {
        const PRECISE: Duration = Duration::from_millis(2);
        loop {
            if ctx.board.stopping() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            let left = until - now;
            if left > PRECISE {
                tokio::time::sleep((left - PRECISE).min(TICK)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Runs `count` client tasks made by `spawn` until they have all ended, and watches
/// their requests: one in flight longer than the timeout is counted as a timeout, its
/// task (and connection) dropped and a fresh client put in its place.
///
/// The clients carry no timer per request: arming one for each of 100,000 requests a
/// second would cost the load generator a tenth of its speed, and a look at every
/// client a few times per timeout costs nothing by comparison.
async fn supervise(
    ctx: &Context,
    count: usize,
    spawn: impl Fn(&Rc<Client>) -> tokio::task::JoinHandle<()>,
    ended: &tokio::sync::Notify,
) {
    let mut running: Vec<(Rc<Client>, tokio::task::JoinHandle<()>)> = (0..count)
        .map(|_| {
            let client = Rc::new(Client::default());
            let handle = spawn(&client);
            (client, handle)
        })
        .collect();
    let every = (ctx.timeout / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
    // Once the run stops, the requests in flight get STOP_GRACE to finish; those
    // still out then are dropped with their tasks and reported as unfinished.
    let mut give_up: Option<Instant> = None;
    while running.iter().any(|(_, handle)| !handle.is_finished()) {
        if give_up.is_none() && ctx.board.stopping() {
            give_up = Some(Instant::now() + STOP_GRACE);
        }
        if give_up.is_some_and(|at| Instant::now() >= at) {
            for (_, handle) in &running {
                handle.abort();
            }
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = ended.notified() => {}
        }
        for (client, handle) in &mut running {
            let Some(started) = client.started.get() else {
                continue;
            };
            let waited = started.elapsed();
            if waited < ctx.timeout || handle.is_finished() {
                continue;
            }
            handle.abort();
            client.started.set(None);
            ctx.finish(client.route.get(), waited, Err(ErrorKind::Timeout));
            let fresh = Rc::new(Client::default());
            *handle = spawn(&fresh);
            *client = fresh;
        }
    }
}

/// The open loop's released requests with their due times, oldest first.
type Due = RefCell<VecDeque<(Arc<Prepared>, Instant)>>;

/// A client task: the request it has in flight, for the watchdog.
#[derive(Default)]
struct Client {
    started: Cell<Option<Instant>>,
    route: Cell<usize>,
}

/// What a worker's tasks share.
struct Context {
    pool: Rc<Pool>,
    traffic: Arc<Traffic>,
    board: Arc<Scoreboard>,
    report: Rc<RefCell<Report>>,
    timeout: Duration,
}

impl Context {
    fn begin(&self) {
        self.board.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn finish(&self, route: usize, latency: Duration, result: Result<Answer, ErrorKind>) {
        match result {
            Ok(answer) => {
                if answer.status >= 500 {
                    self.board.server_errors.fetch_add(1, Ordering::Relaxed);
                }
                self.board.answered.fetch_add(1, Ordering::Relaxed)
            }
            Err(_) => self.board.errors.fetch_add(1, Ordering::Relaxed),
        };
        self.report.borrow_mut().record(route, latency, result);
    }

    /// A request released but never sent (the run stopped first): not counted sent.
    fn skip(&self) {
        self.board.sent.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A worker's connections: HTTP/1.1 connections carry one request at a time (a
/// permit each), HTTP/2 connections are shared round robin.
struct Pool {
    dialer: Dialer,
    max: usize,
    permits: Semaphore,
    idle: RefCell<Vec<Connection>>,
    h2: RefCell<Vec<Connection>>,
    /// Learnt from the first connection (ALPN, or h2c by configuration).
    speaks_h2: Cell<Option<bool>>,
    next: Cell<usize>,
    /// HTTP/2 connections being opened, and the signal that one has been.
    opening: Cell<usize>,
    opened: tokio::sync::Notify,
}

impl Pool {
    fn new(dialer: Dialer, max: usize) -> Pool {
        let speaks_h2 = dialer.prior_knowledge_h2().then_some(true);
        Pool {
            dialer,
            max,
            permits: Semaphore::new(max),
            idle: RefCell::new(Vec::new()),
            h2: RefCell::new(Vec::new()),
            speaks_h2: Cell::new(speaks_h2),
            next: Cell::new(0),
            opening: Cell::new(0),
            opened: tokio::sync::Notify::new(),
        }
    }

    async fn connect(&self, board: &Scoreboard) -> Result<Connection, ErrorKind> {
        let connection = self.dialer.connect().await?;
        board.connections_opened.fetch_add(1, Ordering::Relaxed);
        self.speaks_h2.set(Some(connection.is_h2()));
        Ok(connection)
    }

    /// `item` as a request for this connection's HTTP version, from its parsed parts
    /// (made on first use).
    fn request(
        &self,
        h2: bool,
        item: &Prepared,
    ) -> Result<c4mesh_live::connection::Request, ErrorKind> {
        let request = &item.request;
        let cache = if h2 { &item.h2 } else { &item.h1 };
        let template = cache
            .get_or_init(|| {
                self.dialer
                    .template(h2, &request.method, &request.path, &request.headers)
            })
            .as_ref()
            .map_err(|kind| *kind)?;
        let body = if request.body.is_empty() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(&request.body)
        };
        Ok(template.request(body))
    }

    async fn send(&self, item: &Prepared, board: &Scoreboard) -> Result<Answer, ErrorKind> {
        if self.speaks_h2.get() == Some(true) {
            return self.send_h2(item, board).await;
        }
        let permit = self.permits.acquire().await.map_err(|_| ErrorKind::Io)?;
        if self.speaks_h2.get() == Some(true) {
            // Learnt while waiting: the first connection chose HTTP/2.
            drop(permit);
            return self.send_h2(item, board).await;
        }
        let mut slot = self.idle.borrow_mut().pop();
        let answer = self.send_h1(&mut slot, item, board).await;
        if let Some(connection) = slot {
            self.idle.borrow_mut().push(connection);
        }
        drop(permit);
        answer
    }

    /// `item` on a client's own connection in `slot`: a closed loop with a connection
    /// for each client needs no permits or idle list (they cost a tenth of the
    /// client's own time per request).
    async fn send_own(
        &self,
        slot: &mut Option<Connection>,
        item: &Prepared,
        board: &Scoreboard,
    ) -> Result<Answer, ErrorKind> {
        if self.speaks_h2.get() == Some(true) {
            return self.send_h2(item, board).await;
        }
        self.send_h1(slot, item, board).await
    }

    /// `item` on the HTTP/1.1 connection in `slot`, opened when there is none or it
    /// has closed; the connection stays in `slot` when another request may follow.
    async fn send_h1(
        &self,
        slot: &mut Option<Connection>,
        item: &Prepared,
        board: &Scoreboard,
    ) -> Result<Answer, ErrorKind> {
        let mut connection = match slot.take().filter(Connection::usable) {
            Some(connection) => connection,
            None => self.connect(board).await?,
        };
        if let Some(shared_handle) = connection.share() {
            // ALPN chose HTTP/2: the connection joins the shared ones.
            self.h2.borrow_mut().push(shared_handle);
        }
        let request = self.request(connection.is_h2(), item)?;
        let answer = connection.send(request).await;
        if answer.is_ok() && !connection.is_h2() && connection.usable() {
            *slot = Some(connection);
        }
        answer
    }

    async fn send_h2(&self, item: &Prepared, board: &Scoreboard) -> Result<Answer, ErrorKind> {
        let mut connection = loop {
            self.h2.borrow_mut().retain(Connection::usable);
            let open = self.h2.borrow().len();
            if open + self.opening.get() < self.max {
                self.opening.set(self.opening.get() + 1);
                let connected = self.connect(board).await;
                self.opening.set(self.opening.get().saturating_sub(1));
                self.opened.notify_waiters();
                let connection = connected?;
                if let Some(handle) = connection.share() {
                    self.h2.borrow_mut().push(handle);
                }
                break connection;
            }
            if open > 0 {
                let n = self.next.get();
                self.next.set(n.wrapping_add(1));
                let handle = self.h2.borrow().get(n % open).and_then(Connection::share);
                if let Some(handle) = handle {
                    break handle;
                }
            }
            // Every connection is still being opened: wait for one.
            self.opened.notified().await;
        };
        let request = self.request(true, item)?;
        connection.send(request).await
    }
}
