//! lanlink over TCP: the handshake, framed reads and writes, bounded
//! per-connection queues, timeouts and shutdown, on `std::net` and threads.
