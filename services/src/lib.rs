//! lanlink services: chat rooms, file transfer, and audio and video relays,
//! written as sans-IO state machines on top of `lanlink-proto` (frames and a
//! clock in, frames to send out) and wired to connections by `lanlink-transport`.
//! They hold no device code and open no sockets.
