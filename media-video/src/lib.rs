//! Video for lanlink: camera capture (V4L2), JPEG encoding and decoding
//! (libjpeg-turbo), a moving test-pattern source, and display.
//!
//! This crate depends on `lanlink-proto` at most and owns no sockets. Its
//! contents arrive with the live-video work; today it only reserves the name
//! and its place in the workspace.
