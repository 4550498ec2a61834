//! Scenario tests of [`ChatService`]: exact recipients and frames for each
//! rule, plus a property test that no sequence of requests breaks it.

use std::time::{Duration, Instant};

use lanlink_proto::chat::{
    ChatMessage, History, HistoryRequest, Join, Leave, NickChanged, Notice, Presence,
    PresenceChange, PrivateMessage, Roster, RosterRequest, SetNick,
};
use lanlink_proto::control::{Error, Ping};
use lanlink_proto::{ErrorCode, Message};
use lanlink_transport::{ConnId, Rate};

use super::{ChatConfig, ChatService, Now, Outgoing};

mod limits;
mod people;
mod props;
mod rooms;
mod talk;

const ADA: ConnId = ConnId(1);
const BOB: ConnId = ConnId(2);
const CAROL: ConnId = ConnId(3);

/// A service plus a clock the test moves by hand.
struct Chat {
    service: ChatService,
    now: Now,
}

impl Chat {
    fn new(config: ChatConfig) -> Chat {
        Chat {
            service: ChatService::new(config),
            now: Now {
                instant: Instant::now(),
                unix_ms: 1_700_000_000_000,
            },
        }
    }

    /// ada, bob and carol in the lobby, with the connect traffic discarded.
    fn trio(config: ChatConfig) -> Chat {
        let mut chat = Chat::new(config);
        for (conn, name) in [(ADA, "ada"), (BOB, "bob"), (CAROL, "carol")] {
            chat.connect(conn, name).expect("connects");
        }
        chat
    }

    /// Connects `conn` from an address of its own (10.0.0.CONN): address
    /// limits are tested on purpose (`connect_from`), not hit by accident.
    fn connect(&mut self, conn: ConnId, name: &str) -> Result<Vec<Outgoing>, (ErrorCode, String)> {
        self.connect_from(conn, [10, 0, 0, conn.0 as u8], name)
    }

    fn connect_from(
        &mut self,
        conn: ConnId,
        peer: [u8; 4],
        name: &str,
    ) -> Result<Vec<Outgoing>, (ErrorCode, String)> {
        let mut out = Vec::new();
        let result = self
            .service
            .connect(conn, peer.into(), name, &self.now, &mut out);
        self.service.assert_consistent();
        result.map(|()| out)
    }

    fn send(&mut self, conn: ConnId, message: impl Into<Message>) -> Vec<Outgoing> {
        let mut out = Vec::new();
        self.service
            .handle(conn, message.into(), &self.now, &mut out);
        self.service.assert_consistent();
        out
    }

    fn disconnect(&mut self, conn: ConnId, reason: &str) -> Vec<Outgoing> {
        let mut out = Vec::new();
        self.service.disconnect(conn, reason, &mut out);
        self.service.assert_consistent();
        out
    }

    fn advance(&mut self, ms: u64) {
        self.now.instant += Duration::from_millis(ms);
        self.now.unix_ms += ms;
    }
}

fn to(conn: ConnId, message: impl Into<Message>) -> Outgoing {
    Outgoing::control(conn, message)
}

fn said(room: &str, text: &str) -> ChatMessage {
    ChatMessage::say(room, text)
}

fn pm(target: &str, text: &str) -> PrivateMessage {
    PrivateMessage {
        to: target.into(),
        from: String::new(),
        text: text.into(),
        action: false,
        timestamp_ms: 0,
    }
}

fn join(room: &str, password: Option<&str>) -> Join {
    Join {
        room: room.into(),
        password: password.map(Into::into),
    }
}

fn presence(room: &str, name: &str, change: PresenceChange, reason: &str) -> Presence {
    Presence {
        room: room.into(),
        name: name.into(),
        change,
        reason: reason.into(),
    }
}

fn roster(room: &str, members: &[&str]) -> Roster {
    Roster {
        room: room.into(),
        members: members.iter().map(|m| m.to_string()).collect(),
    }
}

fn history(room: &str, messages: Vec<ChatMessage>) -> History {
    History {
        room: room.into(),
        messages,
    }
}

fn error(conn: ConnId, code: ErrorCode, message: &str) -> Vec<Outgoing> {
    vec![to(
        conn,
        Error {
            code,
            message: message.into(),
        },
    )]
}
