//! Reassembles H.264 access units from RTP packets as soon as the frame's last packet
//! (marker bit) arrives. A generic sample builder only emits a frame when the *next* frame's
//! first packet shows up, which costs one frame interval (33 ms at 30 fps) per hop.

use bytes::Bytes;
use rtc::rtp::{codec::h264::H264Packet, packet::Packet, packetizer::Depacketizer};

/// A completed access unit, or the news that one was lost.
#[derive(Debug, PartialEq)]
pub enum Assembled {
    /// Annex-B data of one frame.
    Frame(Vec<u8>),
    /// A frame was incomplete (lost or late packets): ask the sender for a keyframe.
    Lost,
}

/// Collects the packets of the current frame (same RTP timestamp).
#[derive(Default)]
pub struct FrameAssembler {
    packets: Vec<Packet>,
    timestamp: Option<u32>,
    /// Sequence number of the last packet of the previous complete frame.
    last_end: Option<u16>,
}

impl FrameAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a packet; returns a frame when this packet completes one.
    pub fn push(&mut self, packet: Packet) -> Option<Assembled> {
        let mut lost = false;
        if self.timestamp != Some(packet.header.timestamp) {
            // A new frame: whatever is left of the previous one never completed.
            lost = !self.packets.is_empty();
            self.packets.clear();
            self.timestamp = Some(packet.header.timestamp);
        }
        let marker = packet.header.marker;
        self.packets.push(packet);
        if !marker {
            return lost.then_some(Assembled::Lost);
        }
        let mut packets = std::mem::take(&mut self.packets);
        self.timestamp = None;
        // Order by sequence number (wrapping), relative to the first one.
        let base = packets[0].header.sequence_number;
        packets.sort_by_key(|p| p.header.sequence_number.wrapping_sub(base));
        let first = packets[0].header.sequence_number;
        let last = packets[packets.len() - 1].header.sequence_number;
        let contiguous = last.wrapping_sub(first) as usize + 1 == packets.len();
        let follows = self.last_end.is_none_or(|end| end.wrapping_add(1) == first);
        self.last_end = Some(last);
        if !contiguous || !follows {
            return Some(Assembled::Lost);
        }
        let mut depacketizer = H264Packet::default();
        let mut data = Vec::new();
        for p in &packets {
            match depacketizer.depacketize(&Bytes::clone(&p.payload)) {
                Ok(nals) => data.extend_from_slice(&nals),
                Err(_) => return Some(Assembled::Lost),
            }
        }
        if data.is_empty() {
            Some(Assembled::Lost)
        } else {
            Some(Assembled::Frame(data))
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

    #[test]
    fn emits_on_the_marker_packet() {
        let mut a = FrameAssembler::new();
        assert_eq!(a.push(single(10, 3000, false)), None);
        let Some(Assembled::Frame(au)) = a.push(single(11, 3000, true)) else {
            panic!()
        };
        assert_eq!(au, [0, 0, 0, 1, 0x41, 0x9a, 10, 0, 0, 0, 1, 0x41, 0x9a, 11]);
    }

    #[test]
    fn joins_fragments_in_sequence_order() {
        let mut a = FrameAssembler::new();
        assert_eq!(a.push(fu(65535, 90, true, false)), None);
        let Some(Assembled::Frame(au)) = a.push(fu(0, 90, false, true)) else {
            panic!()
        };
        // One NAL: start code, reconstructed header (type 5), both fragments' bytes.
        assert_eq!(au, [0, 0, 0, 1, 0x65, 0xab, 0xff, 0xab, 0x00]);
    }

    #[test]
    fn a_gap_is_reported_as_lost() {
        let mut a = FrameAssembler::new();
        assert!(matches!(
            a.push(single(1, 0, true)),
            Some(Assembled::Frame(_))
        ));
        // Packet 2 (a whole frame) never arrives.
        assert_eq!(a.push(single(3, 6000, true)), Some(Assembled::Lost));
        assert!(matches!(
            a.push(single(4, 9000, true)),
            Some(Assembled::Frame(_))
        ));
        // A frame whose marker never came.
        assert_eq!(a.push(single(5, 12000, false)), None);
        assert_eq!(a.push(single(7, 15000, false)), Some(Assembled::Lost));
    }
}
