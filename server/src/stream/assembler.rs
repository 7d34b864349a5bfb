//! Reassembles H.264 access units from RTP packets: a small jitter buffer that orders
//! packets by sequence number and hands a frame on as soon as every packet up to its last
//! one (marker bit) is in.
//!
//! A generic sample builder only emits a frame when the *next* frame's first packet shows
//! up, which costs one frame interval (33 ms at 30 fps) per hop; this one costs nothing
//! while no packet is lost. A lost packet holds the frames behind it for up to
//! [`MAX_WAIT`], the time a NACK retransmission needs (the NACK generator asks every
//! 100 ms, so two rounds fit); a frame still incomplete then is reported lost and skipped.

use bytes::Bytes;
use rtc::rtp::{codec::h264::H264Packet, packet::Packet, packetizer::Depacketizer};
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// How long a gap may hold later frames back before the frame with the gap is given up.
pub const MAX_WAIT: Duration = Duration::from_millis(250);

/// At most this many packets are held (a megabyte or so); past it the oldest frame goes.
const MAX_PACKETS: usize = 1024;

/// A completed access unit, or the news that one was lost.
#[derive(Debug, PartialEq)]
pub enum Assembled {
    /// Annex-B data of one frame.
    Frame(Vec<u8>),
    /// A frame was incomplete (lost or late packets): ask the sender for a keyframe.
    Lost,
}

/// Packets by extended (unwrapped) sequence number, and where the next frame starts.
#[derive(Default)]
pub struct FrameAssembler {
    packets: BTreeMap<u64, Packet>,
    /// The extended sequence number the next frame starts at.
    next: Option<u64>,
    /// The highest extended sequence number seen (to unwrap the next one).
    highest: u64,
    /// Since when a gap at the head has held later packets back.
    blocked_since: Option<Instant>,
}

impl FrameAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a packet arriving now; returns the frames (and losses) it completes, in order.
    pub fn push(&mut self, packet: Packet) -> Vec<Assembled> {
        self.push_at(packet, Instant::now())
    }

    /// Adds a packet arriving at `now`; returns the frames (and losses) it completes.
    pub fn push_at(&mut self, packet: Packet, now: Instant) -> Vec<Assembled> {
        let seq = self.extend(packet.header.sequence_number);
        let next = *self.next.get_or_insert(seq);
        if seq < next {
            return Vec::new(); // late: its frame was handed on or given up already
        }
        self.packets.entry(seq).or_insert(packet);
        let mut out = Vec::new();
        loop {
            if let Some(end) = self.complete_head() {
                out.push(self.take_frame(end));
                self.blocked_since = None;
                continue;
            }
            if self.packets.is_empty() {
                break;
            }
            let within = if self.has_gap() {
                let since = *self.blocked_since.get_or_insert(now);
                now.duration_since(since) < MAX_WAIT
            } else {
                // The head frame is still arriving: nothing is missing yet.
                self.blocked_since = None;
                true
            };
            if within && self.packets.len() < MAX_PACKETS {
                break;
            }
            // Give the head frame up: everything through the first marker after it.
            let end = self
                .packets
                .iter()
                .find(|(_, p)| p.header.marker)
                .map(|(s, _)| *s);
            match end {
                Some(end) => {
                    self.packets = self.packets.split_off(&(end + 1));
                    self.next = Some(end + 1);
                }
                None => {
                    // No frame end at all: drop what is here and start after it.
                    self.next = Some(self.highest + 1);
                    self.packets.clear();
                }
            }
            self.blocked_since = None;
            out.push(Assembled::Lost);
        }
        out
    }

    /// The extended sequence number of `seq`: the one nearest the highest seen.
    fn extend(&mut self, seq: u16) -> u64 {
        if self.next.is_none() {
            // Start a cycle up so that a packet reordered before the first never goes negative.
            self.highest = (1 << 16) | u64::from(seq);
            return self.highest;
        }
        let base = self.highest & !0xffff;
        let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
        let ext = candidates
            .into_iter()
            .map(|c| c | u64::from(seq))
            .min_by_key(|c| c.abs_diff(self.highest))
            .unwrap_or(base | u64::from(seq));
        self.highest = self.highest.max(ext);
        ext
    }

    /// Whether a packet is missing between the head frame's start and the newest packet.
    fn has_gap(&self) -> bool {
        match (
            self.next,
            self.packets.keys().next(),
            self.packets.keys().next_back(),
        ) {
            (Some(next), Some(&first), Some(&last)) => {
                first != next || (last - first + 1) as usize != self.packets.len()
            }
            _ => false,
        }
    }

    /// The last sequence number of the head frame, when all its packets are in.
    fn complete_head(&self) -> Option<u64> {
        let next = self.next?;
        for (expect, (&seq, p)) in (next..).zip(self.packets.range(next..)) {
            if seq != expect {
                return None;
            }
            if p.header.marker {
                return Some(seq);
            }
        }
        None
    }

    /// Removes the head frame (through `end`) and depacketizes it.
    fn take_frame(&mut self, end: u64) -> Assembled {
        let rest = self.packets.split_off(&(end + 1));
        let frame = std::mem::replace(&mut self.packets, rest);
        self.next = Some(end + 1);
        let mut depacketizer = H264Packet::default();
        let mut data = Vec::new();
        for p in frame.values() {
            match depacketizer.depacketize(&Bytes::clone(&p.payload)) {
                Ok(nals) => data.extend_from_slice(&nals),
                Err(_) => return Assembled::Lost,
            }
        }
        if data.is_empty() {
            Assembled::Lost
        } else {
            Assembled::Frame(data)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::header::Header;

    fn pkt(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Packet {
        Packet {
            header: Header {
                sequence_number: seq,
                timestamp: ts,
                marker,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        }
    }

    /// A single-NAL packet (type 1, non-IDR slice).
    fn single(seq: u16, ts: u32, marker: bool) -> Packet {
        pkt(seq, ts, marker, &[0x41, 0x9a, seq as u8])
    }

    /// FU-A fragments of one NAL (type 5).
    fn fu(seq: u16, ts: u32, start: bool, end: bool) -> Packet {
        let header = (0x80 * start as u8) | (0x40 * end as u8) | 5;
        pkt(seq, ts, end, &[0x7c, header, 0xab, seq as u8])
    }

    fn frame(out: Vec<Assembled>) -> Vec<u8> {
        match <[Assembled; 1]>::try_from(out) {
            Ok([Assembled::Frame(au)]) => au,
            Ok([other]) => panic!("{other:?}"),
            Err(out) => panic!("{out:?}"),
        }
    }

    #[test]
    fn emits_on_the_marker_packet() {
        let mut a = FrameAssembler::new();
        assert_eq!(a.push(single(10, 3000, false)), []);
        let au = frame(a.push(single(11, 3000, true)));
        assert_eq!(au, [0, 0, 0, 1, 0x41, 0x9a, 10, 0, 0, 0, 1, 0x41, 0x9a, 11]);
    }

    #[test]
    fn joins_fragments_in_sequence_order_across_the_wrap() {
        let mut a = FrameAssembler::new();
        assert_eq!(a.push(fu(65535, 90, true, false)), []);
        let au = frame(a.push(fu(0, 90, false, true)));
        // One NAL: start code, reconstructed header (type 5), both fragments' bytes.
        assert_eq!(au, [0, 0, 0, 1, 0x65, 0xab, 0xff, 0xab, 0x00]);
        // Reordered: the middle fragment last.
        assert_eq!(a.push(fu(1, 180, true, false)), []);
        assert_eq!(a.push(fu(3, 180, false, true)), []);
        let au = frame(a.push(fu(2, 180, false, false)));
        assert_eq!(au, [0, 0, 0, 1, 0x65, 0xab, 0x01, 0xab, 0x02, 0xab, 0x03]);
    }

    #[test]
    fn a_retransmission_in_time_completes_the_frames_it_held() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new();
        frame(a.push_at(single(1, 0, true), t0));
        // Packet 2 (frame 3000's first) is lost; its frame and the next wait.
        assert_eq!(a.push_at(single(3, 3000, true), t0), []);
        assert_eq!(a.push_at(single(4, 6000, true), t0), []);
        // The NACK brings it back 120 ms later: both frames come out, in order.
        let out = a.push_at(single(2, 3000, false), t0 + Duration::from_millis(120));
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            out[0],
            Assembled::Frame(vec![0, 0, 0, 1, 0x41, 0x9a, 2, 0, 0, 0, 1, 0x41, 0x9a, 3])
        );
        assert_eq!(out[1], Assembled::Frame(vec![0, 0, 0, 1, 0x41, 0x9a, 4]));
        // A duplicate of a packet already handed on is ignored.
        assert_eq!(a.push_at(single(3, 3000, true), t0), []);
    }

    #[test]
    fn a_gap_past_the_wait_is_reported_lost_and_skipped() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new();
        frame(a.push_at(single(1, 0, true), t0));
        // Packet 2 never comes back.
        assert_eq!(a.push_at(single(3, 3000, true), t0), []);
        let later = t0 + MAX_WAIT + Duration::from_millis(1);
        let out = a.push_at(single(4, 6000, true), later);
        assert_eq!(out[0], Assembled::Lost);
        assert_eq!(out[1], Assembled::Frame(vec![0, 0, 0, 1, 0x41, 0x9a, 4]));
        // The given-up packet arriving now is late and ignored.
        assert_eq!(a.push_at(single(2, 3000, false), later), []);
        // A frame whose end never came, then nothing but new frames: lost once the wait is over.
        assert_eq!(a.push_at(single(5, 9000, false), later), []);
        assert_eq!(a.push_at(single(7, 12000, true), later), []);
        let out = a.push_at(single(8, 15000, true), later + MAX_WAIT);
        assert_eq!(
            out,
            [
                Assembled::Lost,
                Assembled::Frame(vec![0, 0, 0, 1, 0x41, 0x9a, 8])
            ]
        );
    }

    #[test]
    fn a_large_frame_arriving_slowly_is_not_given_up() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new();
        for (i, seq) in (10..40).enumerate() {
            let at = t0 + Duration::from_millis(50) * i as u32;
            assert_eq!(a.push_at(fu(seq, 90, seq == 10, false), at), []);
        }
        let au = frame(a.push_at(fu(40, 90, false, true), t0 + Duration::from_secs(2)));
        assert_eq!(au.len(), 5 + 31 * 2);
    }

    #[test]
    fn a_flood_of_held_packets_is_bounded() {
        let t0 = Instant::now();
        let mut a = FrameAssembler::new();
        frame(a.push_at(single(1, 0, true), t0));
        // Packet 2 is lost, and a burst far larger than the buffer follows within the wait.
        let mut lost = 0;
        let mut frames = 0;
        for seq in 3..3 + 2 * MAX_PACKETS as u16 {
            for out in a.push_at(single(seq, u32::from(seq) * 3000, true), t0) {
                match out {
                    Assembled::Lost => lost += 1,
                    Assembled::Frame(_) => frames += 1,
                }
            }
            assert!(a.packets.len() <= MAX_PACKETS);
        }
        assert_eq!(lost, 1);
        assert_eq!(frames, 2 * MAX_PACKETS - 1);
    }
}
