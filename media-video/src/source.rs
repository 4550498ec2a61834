//! The [`VideoSource`] trait and [`SourceHandle`], which runs any source on
//! its own thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::{EncodedFrame, SourceInfo, VideoError};

/// Something that produces JPEG frames: a camera, a test pattern, a file.
///
/// `next_frame` blocks until the next frame is due or captured, so a plain
/// loop runs a source at its own rate. To keep a slow consumer from
/// stalling capture, run the source behind a [`SourceHandle`].
pub trait VideoSource: Send {
    /// Name, size and nominal frame rate.
    fn info(&self) -> SourceInfo;

    /// Blocks until the next frame is ready and returns it.
    fn next_frame(&mut self) -> Result<EncodedFrame, VideoError>;
}

impl<S: VideoSource + ?Sized> VideoSource for Box<S> {
    fn info(&self) -> SourceInfo {
        (**self).info()
    }
    fn next_frame(&mut self) -> Result<EncodedFrame, VideoError> {
        (**self).next_frame()
    }
}

/// How many frames wait between the capture thread and the consumer.
/// Two absorbs jitter; more would only add latency.
const QUEUE: usize = 2;

/// A source running on its own thread.
///
/// Frames arrive over a bounded channel that drops the *oldest* frame when
/// the consumer falls behind (counted in [`dropped_frames`]); a capture
/// error arrives as the last item. Dropping the handle stops the thread
/// and joins it: within one frame interval, or the camera's 3 s timeout if
/// it has stalled.
///
/// [`dropped_frames`]: SourceHandle::dropped_frames
#[derive(Debug)]
pub struct SourceHandle {
    info: SourceInfo,
    frames: Receiver<Result<EncodedFrame, VideoError>>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl SourceHandle {
    /// Starts a thread that calls `open` and then pulls frames from the
    /// source it returns. The source is opened *on* that thread, so device
    /// handles never cross threads. Returns once `open` has finished, with
    /// its error if it failed.
    pub fn spawn<S, F>(name: &str, open: F) -> Result<SourceHandle, VideoError>
    where
        S: VideoSource + 'static,
        F: FnOnce() -> Result<S, VideoError> + Send + 'static,
    {
        let (opened_tx, opened_rx) = crossbeam_channel::bounded(1);
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (stop2, dropped2, drain) = (stop.clone(), dropped.clone(), rx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("video:{name}"))
            .spawn(move || {
                let mut source = match open() {
                    Ok(source) => source,
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let _ = opened_tx.send(Ok(source.info()));
                pump(&mut source, &tx, &drain, &stop2, &dropped2);
            })
            .map_err(VideoError::io("spawn", format!("thread video:{name}")))?;
        match opened_rx.recv() {
            Ok(Ok(info)) => Ok(SourceHandle {
                info,
                frames: rx,
                stop,
                dropped,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(VideoError::SourceStopped {
                name: name.to_owned(),
                panicked: thread.join().is_err(),
            }),
        }
    }

    /// The channel frames arrive on, for `crossbeam_channel::select!`.
    pub fn frames(&self) -> &Receiver<Result<EncodedFrame, VideoError>> {
        &self.frames
    }

    /// Waits up to `timeout` for a frame; `Ok(None)` when none came.
    pub fn next_frame_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        match self.frames.recv_timeout(timeout) {
            Ok(item) => item.map(Some),
            Err(RecvTimeoutError::Timeout) => {
                // The worker keeps a receiver for dropping old frames, so the
                // channel never reports "disconnected"; look at the thread.
                if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                    return Err(self.stopped());
                }
                Ok(None)
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.stopped()),
        }
    }

    /// Frames discarded because the consumer was slower than the source.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn stopped(&mut self) -> VideoError {
        let panicked = self.thread.take().is_some_and(|t| t.join().is_err());
        VideoError::SourceStopped {
            name: self.info.name.clone(),
            panicked,
        }
    }
}

/// The capture loop: pull frames and queue them, newest first, until told
/// to stop, the handle is gone, or the source fails (its error is queued
/// as the last item).
fn pump(
    source: &mut impl VideoSource,
    tx: &Sender<Result<EncodedFrame, VideoError>>,
    drain: &Receiver<Result<EncodedFrame, VideoError>>,
    stop: &AtomicBool,
    dropped: &AtomicU64,
) {
    while !stop.load(Ordering::Relaxed) {
        let mut item = source.next_frame();
        let failed = item.is_err();
        // Newest wins: make room by discarding the oldest frame.
        loop {
            match tx.try_send(item) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    if drain.try_recv().is_ok() {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    item = back;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        if failed {
            return;
        }
    }
}

impl VideoSource for SourceHandle {
    fn info(&self) -> SourceInfo {
        self.info.clone()
    }

    /// Blocks until the thread delivers a frame or has stopped.
    fn next_frame(&mut self) -> Result<EncodedFrame, VideoError> {
        loop {
            if let Some(frame) = self.next_frame_timeout(Duration::from_millis(200))? {
                return Ok(frame);
            }
        }
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Paces a source to its frame rate without drift: frame `n` is due at
/// `start + n * period`. A source that falls more than a frame behind
/// starts a new schedule instead of bursting to catch up.
#[derive(Debug)]
pub(crate) struct Pacer {
    period: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(fps: f64) -> Result<Pacer, VideoError> {
        if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
            return Err(VideoError::InvalidConfig {
                what: "fps",
                reason: format!("{fps} is outside (0, 1000]"),
            });
        }
        Ok(Pacer {
            period: Duration::from_secs_f64(1.0 / fps),
            next: None,
        })
    }

    /// Sleeps until the next frame is due.
    pub(crate) fn wait(&mut self) {
        let now = Instant::now();
        let due = self.next.unwrap_or(now);
        if due > now {
            std::thread::sleep(due - now);
        }
        self.next = Some(if now > due + self.period {
            now + self.period
        } else {
            due + self.period
        });
    }
}

/// `fps` as the protocol's thousandths.
pub(crate) fn fps_milli(fps: f64) -> u32 {
    (fps * 1000.0).round() as u32
}
