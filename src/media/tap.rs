//! The interceptor that lets the engine see the RTCP it acts on.
//!
//! The library's interceptor chain ends inbound RTCP at its terminus: only packets an
//! interceptor marks `DeliverToApplication` reach the application. Without this tap a
//! subscriber's PLI, FIR or REMB would die inside the peer connection. It marks compound
//! packets holding one of those (receiver reports and NACKs stay with the chain, which
//! acts on them itself) and passes everything else through untouched.

use std::collections::VecDeque;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;

/// Where the tap sits: application-most, after every interceptor of the library.
pub const SLOT: usize = 20_000;

#[derive(Default)]
pub struct FeedbackTap {
    /// Deliver NACKs too (tests count them; the engine leaves them to the chain).
    nacks: bool,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl FeedbackTap {
    /// A tap that also delivers NACKs.
    #[cfg(test)]
    pub fn with_nacks() -> Self {
        Self {
            nacks: true,
            ..Default::default()
        }
    }

    fn wanted(&self, p: &dyn rtc::rtcp::Packet) -> bool {
        let any = p.as_any();
        any.is::<PictureLossIndication>()
            || any.is::<FullIntraRequest>()
            || any.is::<ReceiverEstimatedMaximumBitrate>()
            || (self.nacks && any.is::<TransportLayerNack>())
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = std::time::Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && packets.iter().any(|p| self.wanted(p.as_ref()))
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.writes.pop_front()
    }
}

impl Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}
