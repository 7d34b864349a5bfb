//! The input side of a stream: a ring of at most [`INPUT_CAPACITY`] decoded frames, the
//! oldest dropped when full, from which the processor takes uniformly sampled chunks.

use engine::{frame::Frame, pipeline::uniform_sample};
use std::{
    collections::VecDeque,
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Frames kept waiting for the pipeline (as the original's `deque(maxlen=30)`).
pub const INPUT_CAPACITY: usize = 30;

/// A frame with the moment it arrived (for latency).
#[derive(Clone, Debug)]
pub struct TimedFrame {
    pub frame: Frame,
    /// When it was decoded from the network (or, for generators, when its chunk started).
    pub origin: Instant,
}

/// Bounded, oldest-drop frame buffer shared by the decoder thread and the processor thread.
pub struct InputBuffer {
    frames: Mutex<VecDeque<TimedFrame>>,
    ready: Condvar,
    capacity: usize,
    dropped: Arc<AtomicU64>,
}

impl InputBuffer {
    pub fn new(capacity: usize) -> Self {
        Self::counting_into(capacity, Arc::default())
    }

    /// A buffer whose drops are counted in `dropped` (a stream's `StreamStats::dropped_in`).
    pub fn counting_into(capacity: usize, dropped: Arc<AtomicU64>) -> Self {
        Self {
            frames: Mutex::new(VecDeque::with_capacity(capacity)),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            dropped,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<TimedFrame>> {
        self.frames.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a frame, dropping the oldest when full.
    pub fn push(&self, frame: TimedFrame) {
        let mut q = self.lock();
        if q.len() == self.capacity {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(frame);
        self.ready.notify_one();
    }

    /// Frames the pipeline never saw because it fell behind: dropped when the buffer was
    /// full, skipped between the frames a chunk took, or cleared by a reset.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every waiting frame (after `reset_cache`: stale frames would feed the new state).
    pub fn clear(&self) {
        let mut q = self.lock();
        self.dropped.fetch_add(q.len() as u64, Ordering::Relaxed);
        q.clear();
    }

    /// Waits up to `timeout` for `n` frames, then takes `n` frames spread uniformly over the
    /// buffer and discards everything up to the last one taken. `None` on timeout.
    pub fn take_chunk(&self, n: usize, timeout: Duration) -> Option<Vec<TimedFrame>> {
        let deadline = Instant::now() + timeout;
        let mut q = self.lock();
        loop {
            if let Some(indices) = uniform_sample(q.len(), n) {
                let chunk = indices.iter().map(|&i| q[i].clone()).collect();
                let last = *indices.last().expect("n > 0");
                self.dropped
                    .fetch_add((last + 1 - n) as u64, Ordering::Relaxed);
                q.drain(..=last);
                return Some(chunk);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            q = self
                .ready
                .wait_timeout(q, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tf(i: u8) -> TimedFrame {
        TimedFrame {
            frame: Frame::filled(2, 2, [i, 0, 0]),
            origin: Instant::now(),
        }
    }

    fn reds(chunk: &[TimedFrame]) -> Vec<u8> {
        chunk.iter().map(|f| f.frame.pixel(0, 0)[0]).collect()
    }

    #[test]
    fn keeps_the_newest_frames_and_counts_drops() {
        let b = InputBuffer::new(4);
        for i in 0..6 {
            b.push(tf(i));
        }
        assert_eq!(b.len(), 4);
        assert_eq!(b.dropped(), 2);
        let chunk = b.take_chunk(4, Duration::ZERO).unwrap();
        assert_eq!(reds(&chunk), [2, 3, 4, 5]);
        assert!(b.is_empty());
    }

    #[test]
    fn samples_uniformly_and_discards_what_it_skipped() {
        let b = InputBuffer::new(30);
        for i in 0..10 {
            b.push(tf(i));
        }
        let chunk = b.take_chunk(4, Duration::ZERO).unwrap();
        assert_eq!(reds(&chunk), [0, 3, 6, 9]);
        assert!(b.is_empty());
        assert_eq!(b.dropped(), 6);
        for i in 0..3 {
            b.push(tf(i));
        }
        // One frame at a time: the newest.
        assert_eq!(reds(&b.take_chunk(1, Duration::ZERO).unwrap()), [2]);
        assert_eq!(b.dropped(), 8);
    }

    #[test]
    fn waits_for_enough_frames_or_times_out() {
        let b = std::sync::Arc::new(InputBuffer::new(30));
        assert!(b.take_chunk(2, Duration::from_millis(20)).is_none());
        let producer = {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..2 {
                    std::thread::sleep(Duration::from_millis(20));
                    b.push(tf(i));
                }
            })
        };
        let chunk = b.take_chunk(2, Duration::from_secs(5)).unwrap();
        assert_eq!(reds(&chunk), [0, 1]);
        producer.join().unwrap();
        assert_eq!(b.dropped(), 0);
        b.push(tf(7));
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.dropped(), 1);
    }
}
