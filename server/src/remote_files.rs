//! Other servers as connections of this server's file service
//! (scale-out through NATS, see `nats/files.rs` and docs/SCALE-OUT.md).
//!
//! Each other server a file goes to or comes from gets a connection id of
//! its own, from [`FIRST_OTHER_SERVER`] up: an offer to `bob@c` is
//! relayed to server `c`'s id as to a local user, and what `c` sends back
//! arrives from it. A transfer keeps the stream id its sender's server
//! chose (even, as server-chosen streams are); the other server knows it
//! as the next odd id, as a client's own transfers are odd. So on either
//! server, even ids under another server's connection are transfers
//! started here, odd ones were started there.

use std::collections::HashMap;

use lanlink_proto::StreamId;
use lanlink_services::file::{is_other_server, FIRST_OTHER_SERVER};
use lanlink_transport::ConnId;

use crate::nats::valid_server_id;

/// The most other servers with a connection id at once.
const MAX_SERVERS: usize = 1024;

/// The connection ids of other servers, both ways.
#[derive(Default)]
pub(crate) struct RemoteFiles {
    by_server: HashMap<String, ConnId>,
    by_conn: HashMap<ConnId, String>,
}

/// Where a frame for another server goes.
pub(crate) struct Route<'a> {
    /// The server it goes to.
    pub to: &'a str,
    /// Whether this server started its transfer (else `to` did).
    pub started_here: bool,
    /// The starting server's stream id of the transfer.
    pub stream: StreamId,
}

impl RemoteFiles {
    /// `server`'s connection id, made if new (`None` for this server, an
    /// invalid id, or past [`MAX_SERVERS`]).
    pub fn conn_of(&mut self, own: &str, server: &str) -> Option<ConnId> {
        if server == own || !valid_server_id(server) {
            return None;
        }
        if let Some(conn) = self.by_server.get(server) {
            return Some(*conn);
        }
        if self.by_server.len() >= MAX_SERVERS {
            return None;
        }
        let conn = ConnId(FIRST_OTHER_SERVER + self.by_server.len() as u64);
        self.by_server.insert(server.to_owned(), conn);
        self.by_conn.insert(conn, server.to_owned());
        Some(conn)
    }

    /// The connection id of the server of `user@server`, if it has one.
    pub fn lookup(&self, name: &str) -> Option<ConnId> {
        let (_, server) = name.rsplit_once('@')?;
        self.known(server)
    }

    /// `server`'s connection id, if it has one.
    pub fn known(&self, server: &str) -> Option<ConnId> {
        self.by_server.get(server).copied()
    }

    /// The server behind `conn`, if it stands for one.
    pub fn server_of(&self, conn: ConnId) -> Option<&str> {
        is_other_server(conn)
            .then(|| self.by_conn.get(&conn).map(String::as_str))
            .flatten()
    }

    /// Where a frame to `conn` on `stream` goes, if `conn` is a server.
    pub fn route(&self, conn: ConnId, stream: StreamId) -> Option<Route<'_>> {
        let to = self.server_of(conn)?;
        let started_here = stream % 2 == 0;
        Some(Route {
            to,
            started_here,
            stream: if started_here { stream } else { stream - 1 },
        })
    }

    /// The stream id here of a transfer that the frame's sender knows as
    /// `stream` of the server that started it.
    pub fn local_stream(started_here: bool, stream: StreamId) -> StreamId {
        if started_here {
            stream
        } else {
            stream + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_get_ids_and_streams_map_both_ways() {
        let mut r = RemoteFiles::default();
        assert_eq!(r.conn_of("a", "a"), None);
        assert_eq!(r.conn_of("a", "no such server!"), None);
        let c = r.conn_of("a", "c").unwrap();
        assert!(is_other_server(c));
        assert_eq!(r.conn_of("a", "c"), Some(c));
        assert_eq!(r.lookup("bob@c"), Some(c));
        assert_eq!(r.lookup("bob@b"), None);
        assert_eq!(r.lookup("bob"), None);
        // Started here on 6: 6 there as theirs; started there on 6: 7 here.
        let mine = r.route(c, 6).unwrap();
        assert_eq!((mine.to, mine.started_here, mine.stream), ("c", true, 6));
        let theirs = r.route(c, 7).unwrap();
        assert_eq!((theirs.started_here, theirs.stream), (false, 6));
        assert_eq!(RemoteFiles::local_stream(true, 6), 6);
        assert_eq!(RemoteFiles::local_stream(false, 6), 7);
        assert!(r.route(ConnId(5), 7).is_none());
    }
}
