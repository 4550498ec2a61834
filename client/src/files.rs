//! File transfer on a [`Session`]: list the share, download, upload, offer
//! files to a user and answer their offers.
//!
//! Each operation blocks the calling thread until it is done and runs on
//! streams of its own, so several can run at once from different threads
//! (the server allows a few per client) while chat and media go on.
//! Progress is reported to a [`Progress`]: a progress bar, a log line,
//! [`ProgressFn`] around a closure, or [`Quiet`].
//!
//! Everything is verified with BLAKE3; a partial file is kept under a
//! hidden name and renamed only once verified, and running the same
//! transfer again resumes it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanlink_proto::file::DirEntry;
use lanlink_proto::ErrorCode;
use lanlink_services::file::FileClient;
pub use lanlink_services::file::{Progress, TransferSummary};
use lanlink_services::ServiceError;

use crate::event::IncomingOffer;
use crate::session::RouteLink;
use crate::{Capabilities, ClientError, Event, Events, Session};

/// Progress that reports nothing.
pub use lanlink_services::file::Quiet;

/// How a transfer runs.
#[derive(Debug, Clone, Default)]
pub struct TransferOptions {
    /// Overwrite a file that exists already and differs (downloads and
    /// offers; a download skips one that is the same as the server's).
    pub force: bool,
    /// Cap the rate, in bytes per second.
    pub rate_limit: Option<u64>,
    /// The name to give an upload on the server (one file only), or to
    /// save an accepted offer under (`name (1).txt` beside a `name.txt`).
    pub as_name: Option<String>,
    /// How long to wait for the other user to accept an offer (default:
    /// two minutes); then it is withdrawn.
    pub accept_timeout: Option<Duration>,
    /// How long an upload the server refuses as busy now is tried again
    /// (default [`BUSY_PATIENCE`]; zero: not at all).
    pub busy_patience: Option<Duration>,
}

/// One step of a transfer, as [`ProgressFn`] reports it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum TransferProgress<'a> {
    /// A file starts: its name, size, and where it resumes from.
    Started {
        /// The file's name.
        name: &'a str,
        /// Its size in bytes.
        total: u64,
        /// Bytes already there from an earlier attempt.
        resumed_from: u64,
    },
    /// `done` of `total` bytes are through.
    Advanced {
        /// Bytes through so far.
        done: u64,
        /// The file's size.
        total: u64,
    },
    /// The file arrived, verified.
    Finished(&'a TransferSummary),
    /// The connection was lost; the transfer resumes over a new one in
    /// `retry_in` (see [`Resuming`](crate::Resuming)).
    Interrupted {
        /// What happened, for a person.
        why: &'a str,
        /// How long until the next attempt.
        retry_in: Duration,
    },
}

/// A [`Progress`] that calls a closure.
///
/// ```no_run
/// # use lanlink_client::{ProgressFn, TransferProgress};
/// let mut progress = ProgressFn::new(|p| {
///     if let TransferProgress::Advanced { done, total } = p {
///         eprint!("\r{done}/{total}");
///     }
/// });
/// ```
#[derive(Debug)]
pub struct ProgressFn<F> {
    f: F,
    total: u64,
}

impl<F: FnMut(TransferProgress<'_>)> ProgressFn<F> {
    /// Reports to `f`.
    pub fn new(f: F) -> ProgressFn<F> {
        ProgressFn { f, total: 0 }
    }
}

impl<F: FnMut(TransferProgress<'_>)> Progress for ProgressFn<F> {
    fn start(&mut self, name: &str, total: u64, resumed_from: u64) {
        self.total = total;
        (self.f)(TransferProgress::Started {
            name,
            total,
            resumed_from,
        });
    }
    fn advance(&mut self, done: u64) {
        let total = self.total;
        (self.f)(TransferProgress::Advanced { done, total });
    }
    fn finish(&mut self, summary: &TransferSummary) {
        (self.f)(TransferProgress::Finished(summary));
    }
    fn interrupted(&mut self, why: &str, retry_in: Duration) {
        (self.f)(TransferProgress::Interrupted { why, retry_in });
    }
}

/// A file client on `link`, set up as `options` say.
fn file_client<'a>(link: &'a RouteLink, options: &TransferOptions) -> FileClient<'a, RouteLink> {
    let mut files = FileClient::new(link);
    files.rate_limit = options.rate_limit;
    if let Some(t) = options.accept_timeout {
        files.accept_timeout = t;
    }
    files
}

impl Session {
    /// Lists `path` of the server's share (`""` for its root), everything
    /// below it if `recursive`.
    pub fn list(&self, path: &str, recursive: bool) -> Result<Vec<DirEntry>, ClientError> {
        let link = RouteLink::reliable(self);
        FileClient::new(&link)
            .list(path, recursive)
            .map_err(|e| self.unanswered(e))
    }

    /// Downloads `name` (a file or a whole folder) from the share into the
    /// folder `dest` (created if missing), resuming an earlier interrupted
    /// download: partial files continue, complete ones the server confirms
    /// are the same are skipped ([`TransferSummary::unchanged`]).
    pub fn get(
        &self,
        name: &str,
        dest: &Path,
        options: &TransferOptions,
        progress: &mut dyn Progress,
    ) -> Result<Vec<TransferSummary>, ClientError> {
        create_folder(dest)?;
        let link = RouteLink::reliable(self);
        file_client(&link, options)
            .get(name, dest, options.force, progress)
            .map_err(|e| self.unanswered(e))
    }

    /// Uploads `local` (a file or a folder) into the server's inbox,
    /// resuming an earlier interrupted upload (see
    /// [`FileClient::put`](lanlink_services::file::FileClient::put)). A
    /// file the server refuses only because it is busy is tried again,
    /// backing off, for up to [`TransferOptions::busy_patience`].
    pub fn put(
        &self,
        local: &Path,
        options: &TransferOptions,
        progress: &mut dyn Progress,
    ) -> Result<Vec<TransferSummary>, ClientError> {
        let link = RouteLink::reliable(self);
        let mut client = file_client(&link, options);
        let mut once =
            |progress: &mut dyn Progress| client.put(local, options.as_name.as_deref(), progress);
        if !local.is_file() {
            return once(progress).map_err(|e| self.unanswered(e));
        }
        // A server busy with everyone's uploads refuses one for now: try
        // again (resuming what it kept), for a while.
        let give_up = Instant::now() + options.busy_patience.unwrap_or(BUSY_PATIENCE);
        let mut wait = Duration::from_millis(250);
        loop {
            match once(progress) {
                Err(e) if is_busy(&e) && Instant::now() + wait < give_up => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(8));
                }
                other => return other.map_err(|e| self.unanswered(e)),
            }
        }
    }

    /// Offers `local` (a file or a folder) to the user `to`; blocks until
    /// they accept and it arrived (verified), or they decline. The server
    /// relays the bytes without storing them.
    pub fn send_file(
        &self,
        to: &str,
        local: &Path,
        options: &TransferOptions,
        progress: &mut dyn Progress,
    ) -> Result<Vec<TransferSummary>, ClientError> {
        let link = RouteLink::reliable(self);
        file_client(&link, options)
            .send_to(to, local, progress)
            .map_err(|e| self.unanswered(e))
    }

    /// Accepts an offer ([`Event::FileOffered`](crate::Event::FileOffered)):
    /// receives the file into the folder `dest` (created if missing; as
    /// `options.as_name` if given), resuming a partial one of the same
    /// name, and verifies it.
    /// Refuses to overwrite an existing file unless `options.force`.
    ///
    /// It returns once the file is in: run it on a thread of its own (or
    /// use [`receive_files`](Self::receive_files), which does) and keep
    /// reading the session's events meanwhile. The session hands events on
    /// in order and waits for room among them, so events left unread (a
    /// busy room's lines) hold up this transfer's data behind them, and
    /// it fails with "no answer" after 30 s.
    pub fn accept_file(
        &self,
        offer: &IncomingOffer,
        dest: &Path,
        options: &TransferOptions,
        progress: &mut dyn Progress,
    ) -> Result<TransferSummary, ClientError> {
        create_folder(dest)?;
        let link = RouteLink::reliable(self);
        link.adopt(offer.stream);
        let local = options.as_name.as_deref().unwrap_or(&offer.offer.name);
        file_client(&link, options)
            .accept_as(
                offer.stream,
                &offer.offer,
                dest,
                local,
                options.force,
                progress,
            )
            .map_err(|e| self.unanswered(e))
    }

    /// `e` as a [`ClientError`], saying why when a transfer got no answer
    /// because this session's events stand unread: nothing after them is
    /// handed on, the transfer's data included.
    fn unanswered(&self, e: ServiceError) -> ClientError {
        let held_up = matches!(e, ServiceError::NoAnswer { .. })
            && self.inner.shared.events_waiting.load(Ordering::Relaxed);
        let e = ClientError::from(e);
        if held_up {
            e.with_hint(
                "this session's events are not being read, and the transfer's data waits \
                 behind them: read them on another thread while it runs",
            )
        } else {
            e
        }
    }

    /// Declines an offer; the sender is told `reason`.
    pub fn decline_file(&self, offer: &IncomingOffer, reason: &str) -> Result<(), ClientError> {
        let link = RouteLink::reliable(self);
        Ok(FileClient::new(&link).decline(offer.stream, reason)?)
    }

    /// Answers the file offers that come on `events`, each with `answer`,
    /// and receives those it accepts into `dest` (created if missing):
    /// set how many files to wait for, a progress reporter per file and
    /// what to hear when each ends on the [`Receiving`] this returns, then
    /// [`run`](Receiving::run) it.
    ///
    /// `answer` decides each offer, on the calling thread (ask the user;
    /// [`TransferOptions::on_conflict`] handles a name already taken: with
    /// plain `TransferOptions::default()` a file of that name already in
    /// `dest` makes the transfer fail, the same file or not).
    ///
    /// The session must have asked for offers: [`Capabilities::CHAT`], or
    /// [`Capabilities::OFFERS`] beside `FILE` (see
    /// [`SessionBuilder::capabilities`](crate::SessionBuilder::capabilities));
    /// without, [`run`](Receiving::run) fails at once with
    /// [`ClientError::NotAsked`].
    ///
    /// ```no_run
    /// use lanlink_client::{Capabilities, OfferAnswer, OnConflict, Session, TransferOptions};
    ///
    /// let (session, events) = Session::builder("192.168.1.20")
    ///     .name("bob")
    ///     .capabilities(Capabilities::FILE | Capabilities::OFFERS)
    ///     .connect()?;
    /// let got = session
    ///     .receive_files(&events, "inbox", |offer| {
    ///         println!("{} offers {} ({} bytes)", offer.from(), offer.name(), offer.size());
    ///         // Beside a file of that name, as "name (1).ext".
    ///         let options = TransferOptions::default();
    ///         match options.on_conflict("inbox".as_ref(), offer.name(), OnConflict::Rename) {
    ///             Some(options) => OfferAnswer::Accept(options),
    ///             None => OfferAnswer::Decline("no free name for it".into()),
    ///         }
    ///     })
    ///     .count(1)
    ///     .on_end(|offer, result| println!("{}: {result:?}", offer.name()))
    ///     .run()?;
    /// assert_eq!(got, 1);
    /// # Ok::<(), lanlink_client::ClientError>(())
    /// ```
    pub fn receive_files<'a, A>(
        &'a self,
        events: &'a Events,
        dest: impl AsRef<Path>,
        answer: A,
    ) -> Receiving<'a, A, NoProgress, NotHeard>
    where
        A: FnMut(&IncomingOffer) -> OfferAnswer,
    {
        Receiving {
            setup: Setup {
                session: self,
                events,
                dest: dest.as_ref().to_owned(),
                count: None,
            },
            answer,
            progress: || Quiet,
            ended: |_, _| {},
        }
    }
}

/// [`Receiving`]'s reporters by default: none.
type NoProgress = fn() -> Quiet;
/// [`Receiving`]'s ends by default: nobody hears them.
type NotHeard = fn(&IncomingOffer, Result<TransferSummary, ClientError>);

/// A receiving loop for file offers ([`Session::receive_files`]): set it
/// up, then [`run`](Self::run) it.
#[must_use = "nothing is received until it is run"]
pub struct Receiving<'a, A, P, E> {
    setup: Setup<'a>,
    answer: A,
    progress: P,
    ended: E,
}

/// What a [`Receiving`] receives on, and how much.
struct Setup<'a> {
    session: &'a Session,
    events: &'a Events,
    dest: PathBuf,
    count: Option<usize>,
}

impl<A, P, E> std::fmt::Debug for Receiving<'_, A, P, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiving")
            .field("dest", &self.setup.dest)
            .field("count", &self.setup.count)
            .finish_non_exhaustive()
    }
}

impl<'a, A, P, E> Receiving<'a, A, P, E> {
    /// Ends the loop once `count` files were received (by default it runs
    /// until the session ends).
    pub fn count(self, count: usize) -> Self {
        self.count_opt(Some(count))
    }

    /// Ends the loop once `count` files were received, or runs it until
    /// the session ends (`None`, the default).
    pub fn count_opt(mut self, count: Option<usize>) -> Self {
        self.setup.count = count;
        self
    }

    /// A reporter for each accepted file, made as it starts (by default
    /// [`Quiet`]).
    pub fn progress<Q, R>(self, progress: Q) -> Receiving<'a, A, Q, E>
    where
        Q: FnMut() -> R,
        R: Progress + Send + 'static,
    {
        let Receiving {
            setup,
            answer,
            ended,
            ..
        } = self;
        Receiving {
            setup,
            answer,
            progress,
            ended,
        }
    }

    /// Hears how each accepted file ended, on the calling thread (by
    /// default nothing does).
    pub fn on_end<F>(self, ended: F) -> Receiving<'a, A, P, F>
    where
        F: FnMut(&IncomingOffer, Result<TransferSummary, ClientError>),
    {
        let Receiving {
            setup,
            answer,
            progress,
            ..
        } = self;
        Receiving {
            setup,
            answer,
            progress,
            ended,
        }
    }

    /// Answers offers until the files wanted were received (or the
    /// session ends), and returns how many were.
    ///
    /// Accepted files arrive side by side, up to [`RECEIVING_AT_ONCE`]
    /// moving at once (those that stall, less than 1 MiB in the last
    /// 5 s, or none in the first 2 s, do not count, up to
    /// [`MAX_ARRIVING`] in all), each on a thread
    /// of its own with a reporter of its own: a sender that stalls holds
    /// up its own file only. A second offer of a name
    /// still arriving waits for the first to end (one: a third, while the
    /// first arrives and the second waits, is declined). With a
    /// [`count`](Self::count), no more files arrive at once than are
    /// still wanted, not counting those that stall (less than 1 MiB in
    /// the last 5 s): the other offers wait (unanswered) until one ends or
    /// stalls. Once the last file wanted is in, the offers still waiting
    /// are declined and the files still arriving (past a stalled one) are
    /// cancelled, their senders told the receiver has all it wanted, and
    /// their partial files kept; so nothing is left arriving when this
    /// returns. (Files that stalled and then finish at the moment the last
    /// one wanted does are received too: the number returned may be
    /// larger than the count.) A file that failed (a wrong hash, a name that cannot be
    /// written here, a sender gone) does not end the loop, and the next
    /// offer takes its place. Losing the connection ends it, with its
    /// error (files still arriving then keep their partial files, to be
    /// resumed). Other events on the session's events are dropped while
    /// it runs.
    pub fn run<R>(self) -> Result<usize, ClientError>
    where
        A: FnMut(&IncomingOffer) -> OfferAnswer,
        P: FnMut() -> R,
        R: Progress + Send + 'static,
        E: FnMut(&IncomingOffer, Result<TransferSummary, ClientError>),
    {
        let Receiving {
            setup,
            answer,
            progress,
            ended,
        } = self;
        let asked = setup.session.capabilities();
        if !asked.contains(Capabilities::CHAT) && !asked.contains(Capabilities::OFFERS) {
            // Nothing would ever come: the server sends it no offers.
            return Err(ClientError::NotAsked {
                what: "file offers",
                needs: "Capabilities::CHAT, or Capabilities::FILE | Capabilities::OFFERS",
            });
        }
        create_folder(&setup.dest)?;
        let (done_tx, done) = crossbeam_channel::unbounded();
        let mut run = Run {
            setup,
            answer,
            progress,
            ended,
            done_tx,
            done,
            busy: Vec::new(),
            waiting: VecDeque::new(),
            received: 0,
            // Far enough back that a new file's first turn (a mark
            // before now) never goes below zero.
            epoch: Instant::now()
                .checked_sub(STALLED_AFTER)
                .unwrap_or_else(Instant::now),
        };
        loop {
            while let Ok(one) = run.done.try_recv() {
                run.end(one)?;
            }
            if run.has_enough() {
                return Ok(run.finish());
            }
            if let Some(offer) = run.next_offer()? {
                run.take(offer)?;
            }
        }
    }
}

/// How one accepted file ended, as its thread tells [`Run`].
type Ended = (IncomingOffer, Result<TransferSummary, ClientError>);

/// One [`Receiving::run`] under way: the files arriving, the offers
/// waiting for one of them to end, and the files received so far.
struct Run<'a, A, P, E> {
    setup: Setup<'a>,
    answer: A,
    progress: P,
    ended: E,
    done_tx: crossbeam_channel::Sender<Ended>,
    done: crossbeam_channel::Receiver<Ended>,
    busy: Vec<Arriving>,
    waiting: VecDeque<IncomingOffer>,
    received: usize,
    epoch: Instant,
}

impl<A, P, E, R> Run<'_, A, P, E>
where
    A: FnMut(&IncomingOffer) -> OfferAnswer,
    P: FnMut() -> R,
    R: Progress + Send + 'static,
    E: FnMut(&IncomingOffer, Result<TransferSummary, ClientError>),
{
    /// One file ended: counted, and heard. A file lost with the connection
    /// ends the run.
    fn end(&mut self, (offer, result): Ended) -> Result<(), ClientError> {
        self.busy.retain(|b| b.stream != offer.stream);
        match result {
            Ok(summary) => {
                self.received += 1;
                (self.ended)(&offer, Ok(summary));
            }
            Err(e) if self.setup.session.is_connected() => (self.ended)(&offer, Err(e)),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn has_enough(&self) -> bool {
        self.setup.count.is_some_and(|c| self.received >= c)
    }

    /// The count is reached: the offers waiting are declined, the files
    /// still arriving cancelled and waited for (a while); how many files
    /// were received.
    fn finish(mut self) -> usize {
        let session = self.setup.session;
        for offer in std::mem::take(&mut self.waiting) {
            // Told, if the connection still allows it.
            let _ = session.decline_file(&offer, ENOUGH);
        }
        for file in &self.busy {
            session.cancel_incoming(file.stream, ENOUGH);
        }
        // They end at the cancel, behind what already came for them; one
        // that was finishing may still be received.
        let deadline = Instant::now() + CANCEL_PATIENCE;
        while !self.busy.is_empty() {
            let Ok(one) = self.done.recv_deadline(deadline) else {
                break;
            };
            if self.end(one).is_err() {
                break;
            }
        }
        self.received
    }

    /// An offer that may start now, if one is waiting and the files
    /// arriving allow another; else waits a little for an event (`None`).
    fn next_offer(&mut self) -> Result<Option<IncomingOffer>, ClientError> {
        let now_ms = millis_since(self.epoch);
        let moving = self.busy.iter().filter(|b| !b.stalled(now_ms)).count();
        let free = self.waiting.iter().position(|o| {
            let name = arriving(o);
            !self.busy.iter().any(|b| b.name == name)
        });
        let count = self.setup.count;
        match free {
            Some(i) if may_start(moving, self.busy.len(), self.received, count) => {
                Ok(self.waiting.remove(i))
            }
            _ => {
                let events = self.setup.events.receiver();
                match events.recv_timeout(Duration::from_millis(100)) {
                    Ok(event) => {
                        take_event(self.setup.session, event, &mut self.waiting, &self.busy)?;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        return Err(ClientError::Disconnected(
                            lanlink_transport::CloseReason::Local("session over".into()),
                        ))
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                }
                Ok(None)
            }
        }
    }

    /// Answers `offer` and, if accepted (and not withdrawn meanwhile),
    /// starts receiving it on a thread of its own.
    fn take(&mut self, offer: IncomingOffer) -> Result<(), ClientError> {
        let session = self.setup.session;
        let answered = (self.answer)(&offer);
        // The sender may have withdrawn it while the answer was thought
        // over (a person asked): not accepted then.
        let mut withdrawn = None;
        while let Some(event) = self.setup.events.try_recv() {
            if let Some(gone) = take_event(session, event, &mut self.waiting, &self.busy)? {
                if gone.stream == offer.stream {
                    withdrawn = Some(gone.message);
                }
            }
        }
        if let Some(message) = withdrawn {
            let refused = lanlink_services::file::client::refused(offer.name(), message);
            let withdrawn = ClientError::from(refused).with_hint("the sender withdrew the offer");
            return self.end((offer, Err(withdrawn)));
        }
        let options = match answered {
            OfferAnswer::Accept(options) => options,
            OfferAnswer::Decline(reason) => return session.decline_file(&offer, &reason),
        };
        let moved = Arc::new(AtomicU64::new(first_turn(self.epoch)));
        self.busy.push(Arriving {
            name: arriving(&offer),
            stream: offer.stream,
            moved: moved.clone(),
        });
        let mut report = Moving {
            inner: (self.progress)(),
            mark: 0,
            moved,
            epoch: self.epoch,
        };
        let (session, dest, done_tx) = (
            session.clone(),
            self.setup.dest.clone(),
            self.done_tx.clone(),
        );
        std::thread::Builder::new()
            .name("lanlink-receive".into())
            .spawn(move || {
                let result = session.accept_file(&offer, &dest, &options, &mut report);
                let _ = done_tx.send((offer, result));
            })
            .map_err(ClientError::Thread)?;
        Ok(())
    }
}

/// Takes an event [`Receiving::run`] gets while it waits: an offer joins
/// those waiting (a sender repeating them gets no more than a few), an
/// offer withdrawn while it waited (its stream is no one's yet) leaves
/// them and is returned, a lost connection ends the run; the rest is
/// dropped.
fn take_event(
    session: &Session,
    event: Event,
    waiting: &mut VecDeque<IncomingOffer>,
    busy: &[Arriving],
) -> Result<Option<lanlink_proto::Frame>, ClientError> {
    match event {
        Event::FileOffered(offer) if waiting.len() >= MAX_WAITING => {
            session.decline_file(&offer, "too many offers are waiting")?;
        }
        // One offer of a name waits behind the file of that name arriving:
        // more would each hold one of the receiver's places on the server
        // for nothing (an outside attack kept a receiver full with one
        // trickling file and fifteen offers of its name).
        Event::FileOffered(offer)
            if busy.iter().any(|b| b.name == arriving(&offer))
                && waiting.iter().any(|o| arriving(o) == arriving(&offer)) =>
        {
            session.decline_file(
                &offer,
                "an offer of that name is already waiting; offer it again once it has arrived",
            )?;
        }
        Event::FileOffered(offer) => waiting.push_back(offer),
        Event::Other(frame)
            if matches!(
                frame.message,
                lanlink_proto::Message::FileCancel(_) | lanlink_proto::Message::FileReject(_)
            ) =>
        {
            waiting.retain(|o| o.stream != frame.stream);
            return Ok(Some(frame));
        }
        Event::Disconnected(reason) => return Err(ClientError::Disconnected(reason)),
        _ => {}
    }
    Ok(None)
}

/// Why [`Receiving::run`] declines the offers still waiting once it has
/// the files it wanted.
const ENOUGH: &str = "the receiver has all the files it wanted";

/// How long [`Receiving::run`] waits for the files it cancelled to end.
const CANCEL_PATIENCE: Duration = Duration::from_secs(5);

/// A file that moves less than this in [`STALLED_AFTER`] (about 200 KB/s)
/// stalls: it no longer counts against [`RECEIVING_AT_ONCE`] or
/// [`Receiving::count`], so another offer starts. Slower senders cannot
/// hold the turns and leave every other offer waiting unanswered.
const STALL_STEP: u64 = 1024 * 1024;

/// See [`STALL_STEP`].
const STALLED_AFTER: Duration = Duration::from_secs(5);

/// A file [`Receiving::run`] receives: the name it is written under, its
/// stream, and when it last moved by [`STALL_STEP`] (milliseconds into
/// the run).
struct Arriving {
    name: String,
    stream: lanlink_proto::StreamId,
    moved: Arc<AtomicU64>,
}

impl Arriving {
    fn stalled(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.moved.load(Ordering::Relaxed))
            >= STALLED_AFTER.as_millis() as u64
    }
}

/// A file just accepted holds its turn this long before it has moved
/// [`STALL_STEP`] (its first MiB comes in well under this on a LAN; a
/// sender first hashing a resume's prefix gives its turn up meanwhile).
/// Not all of [`STALLED_AFTER`]: senders taking turns they never used,
/// one after another, kept every other offer waiting unanswered
/// (helper-87: 8 addresses at 323 KB/s, or 16 at 0 B/s, for 3 minutes).
const FIRST_TURN: Duration = Duration::from_secs(2);

/// The mark of a file that starts now: stalled once [`FIRST_TURN`] has
/// passed without its first step.
fn first_turn(epoch: Instant) -> u64 {
    let earlier = STALLED_AFTER.saturating_sub(FIRST_TURN).as_millis() as u64;
    millis_since(epoch).saturating_sub(earlier)
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Passes a file's progress on, and notes when it last moved by
/// [`STALL_STEP`] (a sender that drips keeps no slot).
struct Moving<R> {
    inner: R,
    mark: u64,
    moved: Arc<AtomicU64>,
    epoch: Instant,
}

impl<R: Progress> Progress for Moving<R> {
    fn start(&mut self, name: &str, total: u64, resumed_from: u64) {
        self.mark = resumed_from;
        self.moved.store(first_turn(self.epoch), Ordering::Relaxed);
        self.inner.start(name, total, resumed_from);
    }

    fn advance(&mut self, done: u64) {
        if done >= self.mark.saturating_add(STALL_STEP) {
            self.mark = done;
            self.moved
                .store(millis_since(self.epoch), Ordering::Relaxed);
        }
        self.inner.advance(done);
    }

    fn finish(&mut self, summary: &TransferSummary) {
        self.inner.finish(summary);
    }

    fn interrupted(&mut self, why: &str, retry_in: Duration) {
        self.inner.interrupted(why, retry_in);
    }
}

/// How long [`Session::put`] of one file keeps trying while the server
/// says it is busy (its buffers for everyone's uploads are full).
pub const BUSY_PATIENCE: Duration = Duration::from_secs(60);

/// The most offers [`Session::receive_files`] holds while others arrive
/// (a server keeps 16 waiting per user).
const MAX_WAITING: usize = 64;

/// What an offered file is kept apart by while it arrives: the name it
/// is written under (composed, as `validate_target` makes it), so that
/// `café` sent composed and decomposed are one name, not two transfers
/// writing one partial file.
fn arriving(offer: &IncomingOffer) -> String {
    lanlink_services::file::path::validate_target(offer.name()).map_or_else(
        |_| offer.name().to_owned(),
        |p| p.to_string_lossy().into_owned(),
    )
}

/// Whether the server refused a transfer only because it is busy now
/// (older servers said so with `RATE_LIMITED` and the reason's words).
fn is_busy(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Refused { code, reason, .. }
        if *code == ErrorCode::BUSY
            || (*code == ErrorCode::RATE_LIMITED && reason.starts_with("server busy")))
}

/// Files [`Session::receive_files`] receives at once, not counting those
/// that stall.
pub const RECEIVING_AT_ONCE: usize = 3;

/// Files [`Session::receive_files`] receives at once, stalled ones
/// included (each holds a thread and a partial file; the reference server
/// keeps at most 16 offers to one user open): senders that drip cannot
/// keep every other offer waiting.
pub const MAX_ARRIVING: usize = 16;

/// Whether [`Receiving::run`] may start another file: fewer than
/// [`RECEIVING_AT_ONCE`] `moving`, fewer than [`MAX_ARRIVING`]
/// `arriving` in all, and (with a `count`) fewer moving than are still
/// wanted.
fn may_start(moving: usize, arriving: usize, received: usize, count: Option<usize>) -> bool {
    moving < RECEIVING_AT_ONCE
        && arriving < MAX_ARRIVING
        && count.is_none_or(|c| received + moving < c)
}

/// What [`Session::receive_files`] does with one offer.
#[derive(Debug, Clone)]
pub enum OfferAnswer {
    /// Receive it, so.
    Accept(TransferOptions),
    /// Decline it; the sender is told this reason.
    Decline(String),
}

/// What to do with an offered file whose name is already taken in the
/// destination folder (see [`TransferOptions::on_conflict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Replace the file there.
    Overwrite,
    /// Save it beside it as `name (1).ext` (the first free such name).
    Rename,
    /// Decline it.
    Skip,
}

/// Whether a file of the name `name` (as offered or asked for) is already
/// in the folder `dest`. A name that could never be saved (absolute,
/// `..`) is not "taken": receiving it is refused anyway.
pub fn name_taken(dest: &Path, name: &str) -> bool {
    lanlink_services::file::path::validate_target(name).is_ok_and(|rel| dest.join(rel).is_file())
}

/// `name (1).ext` for `name.ext`, in the same subfolder: the first such
/// name (up to `(999)`) not taken in `dest`. The extension is what follows
/// the last dot of the file name (`x.tar.gz` becomes `x.tar (1).gz`); a
/// leading dot is not one (`.bashrc (1)`).
pub fn free_name(dest: &Path, name: &str) -> Option<String> {
    let (folder, file) = match name.rsplit_once('/') {
        Some((folder, file)) => (format!("{folder}/"), file),
        None => (String::new(), name),
    };
    let (stem, ext) = match file.rfind('.') {
        Some(i) if i > 0 => file.split_at(i),
        _ => (file, ""),
    };
    (1..1000)
        .map(|n| format!("{folder}{stem} ({n}){ext}"))
        .find(|candidate| !dest.join(candidate).exists())
}

impl TransferOptions {
    /// The options to receive a file offered as `name` into `dest` with,
    /// when that name may be taken there: these options unchanged when it
    /// is free, else as `policy` says — with [`force`](Self::force) to
    /// overwrite, with a free [`as_name`](Self::as_name) to rename — or
    /// `None` to skip it (also when no free name is left).
    pub fn on_conflict(&self, dest: &Path, name: &str, policy: OnConflict) -> Option<Self> {
        if !name_taken(dest, name) {
            return Some(self.clone());
        }
        match policy {
            OnConflict::Overwrite => Some(TransferOptions {
                force: true,
                ..self.clone()
            }),
            OnConflict::Rename => free_name(dest, name).map(|renamed| TransferOptions {
                as_name: Some(renamed),
                ..self.clone()
            }),
            OnConflict::Skip => None,
        }
    }
}

/// Creates the folder `dest` (and those above it) if it is missing.
fn create_folder(dest: &Path) -> Result<(), ClientError> {
    std::fs::create_dir_all(dest).map_err(|e| ServiceError::io("create folder", dest, e).into())
}

#[cfg(test)]
mod tests {
    use super::{
        free_name, is_busy, may_start, name_taken, OnConflict, TransferOptions, MAX_ARRIVING,
    };

    /// A file just accepted holds its turn for [`FIRST_TURN`] before its
    /// first step, not all of [`STALLED_AFTER`].
    #[test]
    fn a_new_file_holds_its_turn_briefly_until_it_moves() {
        use super::{first_turn, millis_since, Arriving, FIRST_TURN};
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        let epoch = Instant::now() - Duration::from_secs(10);
        let start = millis_since(epoch);
        let file = Arriving {
            name: "x.bin".into(),
            stream: 1,
            moved: Arc::new(AtomicU64::new(first_turn(epoch))),
        };
        let turn = FIRST_TURN.as_millis() as u64;
        assert!(!file.stalled(start + turn - 100));
        assert!(file.stalled(start + turn + 100));
    }

    /// Stalled files free their turn but not without end: three senders
    /// that drip no longer keep every other offer waiting, and no more
    /// than [`MAX_ARRIVING`] arrive at once.
    #[test]
    fn stalled_files_free_their_turn_within_a_bound() {
        // One wanted, one moving: no other.
        assert!(!may_start(1, 1, 0, Some(1)));
        // One wanted, three arriving but stalled: another starts.
        assert!(may_start(0, 3, 0, Some(1)));
        // Without a count: three moving at most.
        assert!(may_start(2, 10, 0, None));
        assert!(!may_start(3, 3, 0, None));
        // Stalled or not, MAX_ARRIVING at most.
        assert!(!may_start(0, MAX_ARRIVING, 0, None));
        // Enough received.
        assert!(!may_start(0, 0, 2, Some(2)));
    }
    use lanlink_proto::ErrorCode;
    use lanlink_services::ServiceError;

    /// Only the server's "busy now" refusals are tried again; a quota, a
    /// rate limit on requests or a name in use are not.
    #[test]
    fn only_busy_refusals_are_retried() {
        let refused = |code, reason: &str| ServiceError::Refused {
            name: "x".into(),
            reason: reason.into(),
            code,
        };
        let busy = ServiceError::Busy {
            reason: "data sent faster than acknowledged",
        };
        assert!(is_busy(&refused(busy.code(), &busy.to_string())));
        assert_eq!(busy.code(), ErrorCode::BUSY);
        // What an older server said.
        assert!(is_busy(&refused(
            ErrorCode::RATE_LIMITED,
            &busy.to_string()
        )));
        assert!(!is_busy(&refused(
            ErrorCode::RATE_LIMITED,
            "too many requests from your address"
        )));
        assert!(!is_busy(&refused(ErrorCode::NO_SPACE, "server busy: no")));
        assert!(!is_busy(&busy), "a local error is not the server's answer");
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lanlink-client-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("album")).unwrap();
        dir
    }

    #[test]
    fn renamed_copies_keep_their_extension() {
        let dir = scratch("free");
        assert_eq!(free_name(&dir, "a.txt").unwrap(), "a (1).txt");
        std::fs::write(dir.join("a (1).txt"), b"").unwrap();
        assert_eq!(free_name(&dir, "a.txt").unwrap(), "a (2).txt");
        assert_eq!(free_name(&dir, ".bashrc").unwrap(), ".bashrc (1)");
        assert_eq!(free_name(&dir, "README").unwrap(), "README (1)");
        assert_eq!(
            free_name(&dir, "album/x.tar.gz").unwrap(),
            "album/x.tar (1).gz"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_taken_name_is_overwritten_renamed_or_skipped_as_asked() {
        let dir = scratch("conflict");
        std::fs::write(dir.join("song.ogg"), b"x").unwrap();
        let base = TransferOptions::default();
        assert!(name_taken(&dir, "song.ogg"));
        assert!(!name_taken(&dir, "album"), "a folder is not a file");
        assert!(!name_taken(&dir, "../song.ogg"), "never a name outside");

        let free = base.on_conflict(&dir, "new.ogg", OnConflict::Skip).unwrap();
        assert!(
            !free.force && free.as_name.is_none(),
            "a free name is untouched"
        );
        let over = base
            .on_conflict(&dir, "song.ogg", OnConflict::Overwrite)
            .unwrap();
        assert!(over.force && over.as_name.is_none());
        let renamed = base
            .on_conflict(&dir, "song.ogg", OnConflict::Rename)
            .unwrap();
        assert_eq!(renamed.as_name.as_deref(), Some("song (1).ogg"));
        assert!(!renamed.force);
        assert!(base
            .on_conflict(&dir, "song.ogg", OnConflict::Skip)
            .is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
