//! Opus encoding and decoding (libopus through the `opus` crate).
//!
//! Always 48 kHz, mono or stereo, one 10 or 20 ms frame per packet. The
//! encoder puts in-band FEC (a low-bitrate copy of the previous frame) into
//! each packet, so the decoder can rebuild a lost frame from the packet that
//! follows it; without that packet it falls back to Opus's packet-loss
//! concealment.

use crate::jitter::Playout;
use crate::{AudioError, Format, FrameDuration, SAMPLE_RATE};

/// Room for any single Opus packet this crate produces (the format's limit
/// for one frame is 1275 bytes plus the table-of-contents byte).
pub const MAX_PACKET_BYTES: usize = 1500;

/// What the encoder tunes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpusApplication {
    /// Speech: favours intelligibility, enables the speech-only modes.
    Voip,
    /// Music and mixed content: favours fidelity.
    Audio,
    /// Lowest algorithmic delay (no speech modes, so no FEC).
    LowDelay,
}

/// Encoder settings. Start from [`OpusConfig::voice`] or
/// [`OpusConfig::music`] and change fields as needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
    /// Audio per packet.
    pub frame: FrameDuration,
    /// Target bitrate in bits per second (6,000..=510,000).
    pub bitrate: u32,
    /// Speech, music or low delay.
    pub application: OpusApplication,
    /// Whether packets carry in-band FEC for the previous frame. Only speech
    /// and hybrid modes use it; at music bitrates Opus codes in CELT mode and
    /// loss is covered by concealment alone.
    pub fec: bool,
    /// Packet loss the encoder should expect, 0..=100 percent. FEC is only
    /// emitted when this is above zero; higher values spend more bits on it.
    pub expected_loss_percent: u8,
    /// CPU effort, 0..=10. 10 is libopus's best quality (what `opusenc`
    /// uses) and costs well under 1 % of a core for one voice stream.
    pub complexity: u8,
    /// Variable bitrate (better quality per bit; packet sizes vary).
    pub vbr: bool,
}

impl OpusConfig {
    /// Speech: 24 kbit/s mono or 32 kbit/s stereo, 20 ms, FEC on for 10 %
    /// expected loss.
    pub fn voice(channels: u16) -> Self {
        OpusConfig {
            channels,
            frame: FrameDuration::Ms20,
            bitrate: if channels == 1 { 24_000 } else { 32_000 },
            application: OpusApplication::Voip,
            fec: true,
            expected_loss_percent: 10,
            complexity: 10,
            vbr: true,
        }
    }

    /// Music: 96 kbit/s mono or 128 kbit/s stereo, 20 ms, FEC on for 5 %
    /// expected loss (it only takes effect if the encoder drops to a hybrid
    /// mode).
    pub fn music(channels: u16) -> Self {
        OpusConfig {
            channels,
            frame: FrameDuration::Ms20,
            bitrate: if channels == 1 { 96_000 } else { 128_000 },
            application: OpusApplication::Audio,
            fec: true,
            expected_loss_percent: 5,
            complexity: 10,
            vbr: true,
        }
    }

    /// The 48 kHz format frames must have.
    pub fn format(&self) -> Format {
        Format::new(SAMPLE_RATE, self.channels)
    }

    fn validate(&self) -> Result<(), AudioError> {
        let bad = |what, detail: String| Err(AudioError::InvalidConfig { what, detail });
        if !(1..=2).contains(&self.channels) {
            return bad("opus channels", format!("{} (1 or 2)", self.channels));
        }
        if !(6_000..=510_000).contains(&self.bitrate) {
            return bad(
                "opus bitrate",
                format!("{} bit/s (6000..=510000)", self.bitrate),
            );
        }
        if self.expected_loss_percent > 100 {
            return bad(
                "opus expected loss",
                format!("{} %", self.expected_loss_percent),
            );
        }
        if self.complexity > 10 {
            return bad("opus complexity", format!("{} (0..=10)", self.complexity));
        }
        Ok(())
    }
}

fn opus_channels(channels: u16) -> Result<opus::Channels, AudioError> {
    match channels {
        1 => Ok(opus::Channels::Mono),
        2 => Ok(opus::Channels::Stereo),
        n => Err(AudioError::InvalidConfig {
            what: "opus channels",
            detail: format!("{n} (1 or 2)"),
        }),
    }
}

fn opus_err(op: &'static str) -> impl FnOnce(opus::Error) -> AudioError {
    move |source| AudioError::Opus { op, source }
}

/// Turns 48 kHz frames into Opus packets.
pub struct OpusEncoder {
    inner: opus::Encoder,
    config: OpusConfig,
    frame_samples: usize,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// An encoder with `config`.
    pub fn new(config: OpusConfig) -> Result<Self, AudioError> {
        config.validate()?;
        let application = match config.application {
            OpusApplication::Voip => opus::Application::Voip,
            OpusApplication::Audio => opus::Application::Audio,
            OpusApplication::LowDelay => opus::Application::LowDelay,
        };
        let mut inner =
            opus::Encoder::new(SAMPLE_RATE, opus_channels(config.channels)?, application)
                .map_err(opus_err("encoder create"))?;
        inner
            .set_bitrate(opus::Bitrate::Bits(config.bitrate as i32))
            .map_err(opus_err("set bitrate"))?;
        inner.set_vbr(config.vbr).map_err(opus_err("set vbr"))?;
        inner
            .set_complexity(i32::from(config.complexity))
            .map_err(opus_err("set complexity"))?;
        inner
            .set_inband_fec(config.fec)
            .map_err(opus_err("set fec"))?;
        inner
            .set_packet_loss_perc(i32::from(config.expected_loss_percent))
            .map_err(opus_err("set packet loss"))?;
        Ok(OpusEncoder {
            inner,
            frame_samples: config.frame.samples(config.format()),
            config,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &OpusConfig {
        &self.config
    }

    /// Interleaved samples `encode` takes per call.
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Encodes one frame (exactly [`frame_samples`](Self::frame_samples)
    /// interleaved samples) into `out`, which should hold
    /// [`MAX_PACKET_BYTES`]; returns the packet length.
    pub fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize, AudioError> {
        if pcm.len() != self.frame_samples {
            return Err(AudioError::FrameLength {
                what: "opus encode",
                len: pcm.len(),
                expected: self.frame_samples,
            });
        }
        self.inner
            .encode_float(pcm, out)
            .map_err(opus_err("encode"))
    }

    /// [`encode`](Self::encode) into a new `Vec`.
    pub fn encode_to_vec(&mut self, pcm: &[f32]) -> Result<Vec<u8>, AudioError> {
        let mut out = vec![0; MAX_PACKET_BYTES];
        let n = self.encode(pcm, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Changes the target bitrate (bits per second) from the next frame on.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), AudioError> {
        let config = OpusConfig {
            bitrate,
            ..self.config
        };
        config.validate()?;
        self.inner
            .set_bitrate(opus::Bitrate::Bits(bitrate as i32))
            .map_err(opus_err("set bitrate"))?;
        self.config = config;
        Ok(())
    }

    /// Changes the packet loss the FEC is sized for (percent), for example
    /// from the loss a receiver reports.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), AudioError> {
        let config = OpusConfig {
            expected_loss_percent: percent,
            ..self.config
        };
        config.validate()?;
        self.inner
            .set_packet_loss_perc(i32::from(percent))
            .map_err(opus_err("set packet loss"))?;
        self.config = config;
        Ok(())
    }
}

/// How a decoder produced its frames so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Frames decoded from their own packet.
    pub decoded: u64,
    /// Lost frames rebuilt from the FEC in the next packet.
    pub fec: u64,
    /// Frames synthesised by packet-loss concealment.
    pub concealed: u64,
    /// Packets libopus rejected as corrupt (concealed instead).
    pub corrupt: u64,
}

/// Turns Opus packets back into 48 kHz frames, concealing lost ones.
pub struct OpusDecoder {
    inner: opus::Decoder,
    channels: u16,
    frame_samples: usize,
    stats: DecoderStats,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("channels", &self.channels)
            .field("frame_samples", &self.frame_samples)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A decoder for `channels` (1 or 2) that conceals in units of `frame`
    /// (the sender's frame duration).
    pub fn new(channels: u16, frame: FrameDuration) -> Result<Self, AudioError> {
        let inner = opus::Decoder::new(SAMPLE_RATE, opus_channels(channels)?)
            .map_err(opus_err("decoder create"))?;
        Ok(OpusDecoder {
            inner,
            channels,
            frame_samples: frame.samples(Format::new(SAMPLE_RATE, channels)),
            stats: DecoderStats::default(),
        })
    }

    /// Interleaved samples in one frame.
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Counts of decoded, FEC-rebuilt and concealed frames.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    fn check(&self, out: &[f32], what: &'static str) -> Result<(), AudioError> {
        if out.len() < self.frame_samples {
            return Err(AudioError::FrameLength {
                what,
                len: out.len(),
                expected: self.frame_samples,
            });
        }
        Ok(())
    }

    /// Decodes `packet` into `out` (at least one frame long); returns the
    /// interleaved samples written.
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32]) -> Result<usize, AudioError> {
        self.check(out, "opus decode")?;
        if packet.is_empty() {
            // libopus reads an empty packet as "lost"; say so explicitly.
            return self.conceal(out);
        }
        let n = self
            .inner
            .decode_float(packet, out, false)
            .map_err(opus_err("decode"))?;
        self.stats.decoded += 1;
        Ok(n * usize::from(self.channels))
    }

    /// Rebuilds the frame *before* `next` from the FEC data `next` carries,
    /// writing one frame to `out`. If `next` has no FEC, libopus conceals
    /// instead. Decode `next` itself afterwards as usual.
    pub fn decode_fec(&mut self, next: &[u8], out: &mut [f32]) -> Result<usize, AudioError> {
        self.check(out, "opus fec decode")?;
        let frame = &mut out[..self.frame_samples];
        let n = self
            .inner
            .decode_float(next, frame, true)
            .map_err(opus_err("fec decode"))?;
        self.stats.fec += 1;
        Ok(n * usize::from(self.channels))
    }

    /// Synthesises one frame to cover a lost packet (packet-loss
    /// concealment: continues the last pitch and fades out).
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<usize, AudioError> {
        self.check(out, "opus conceal")?;
        let frame = &mut out[..self.frame_samples];
        let n = self
            .inner
            .decode_float(&[], frame, false)
            .map_err(opus_err("conceal"))?;
        self.stats.concealed += 1;
        Ok(n * usize::from(self.channels))
    }

    /// Produces the frame a [`JitterBuffer`](crate::JitterBuffer) decided on:
    /// decodes a packet, rebuilds a lost one from the next packet's FEC, or
    /// conceals. A corrupt packet is concealed and counted, never an error,
    /// since it came from the network. Returns the interleaved samples
    /// written: one frame, or 0 (and `out` untouched) for
    /// [`Playout::Empty`], when there is nothing to play yet.
    pub fn play(&mut self, playout: &Playout, out: &mut [f32]) -> Result<usize, AudioError> {
        self.check(out, "opus play")?;
        let result = match playout {
            Playout::Empty => return Ok(0),
            Playout::Packet { payload, .. } => self.decode(payload, out),
            Playout::Conceal {
                next: Some(next), ..
            } => self.decode_fec(next, out),
            Playout::Conceal { next: None, .. } => self.conceal(out),
        };
        match result {
            Ok(n) => Ok(n),
            Err(AudioError::Opus { .. }) => {
                self.stats.corrupt += 1;
                self.conceal(out)
            }
            Err(e) => Err(e),
        }
    }
}
