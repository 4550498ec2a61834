//! Audio for lanlink: capture and playback through cpal, Opus encoding and
//! decoding, a jitter buffer, and hardware-free sources and sinks (tone, WAV
//! file, null) behind the same traits as real devices.
//!
//! This crate depends on `lanlink-proto` at most and owns no sockets. Its
//! contents arrive with the live-audio work; today it only reserves the name
//! and its place in the workspace.
