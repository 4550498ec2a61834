//! Whatever clients send, in whatever order, the service neither panics nor
//! breaks its invariants, and only ever writes to registered clients.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Step {
    Connect(u64, &'static str),
    Disconnect(u64),
    Send(u64, Message),
    Advance(u64),
}

const NAMES: &[&str] = &["ada", "Ada", "bob", "carol", "", "a b", "#x"];
const ROOMS: &[&str] = &["lobby", "Lobby", "ops", "den", "", "a b"];

fn step() -> impl Strategy<Value = Step> {
    let conn = 0u64..5;
    let name = prop::sample::select(NAMES);
    let room = prop::sample::select(ROOMS).prop_map(String::from);
    let text = prop::sample::select(&["hi", "", "a long line of text"][..]).prop_map(String::from);
    let password =
        prop::option::of(prop::sample::select(&["pw", "other"][..]).prop_map(String::from));
    let message = prop_oneof![
        (room.clone(), password)
            .prop_map(|(room, password)| Message::from(Join { room, password })),
        room.clone().prop_map(|room| Leave { room }.into()),
        (room.clone(), text.clone(), any::<bool>()).prop_map(|(room, text, action)| {
            ChatMessage {
                action,
                ..said(&room, &text)
            }
            .into()
        }),
        (name.clone(), text).prop_map(|(to, text)| pm(to, &text).into()),
        name.clone().prop_map(|n| SetNick { name: n.into() }.into()),
        room.clone().prop_map(|room| RosterRequest { room }.into()),
        (room, any::<u16>()).prop_map(|(room, limit)| HistoryRequest { room, limit }.into()),
        Just(Message::from(Ping { nonce: 0 })),
    ];
    prop_oneof![
        1 => (conn.clone(), name).prop_map(|(c, n)| Step::Connect(c, n)),
        1 => conn.clone().prop_map(Step::Disconnect),
        4 => (conn, message).prop_map(|(c, m)| Step::Send(c, m)),
        1 => (0u64..3000).prop_map(Step::Advance),
    ]
}

/// Runs the steps, checking after each that errors went to the sender alone
/// and everything else to registered clients (`Chat` itself checks the
/// service's invariants after every call).
fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut chat = Chat::new(ChatConfig {
        history_len: 3,
        max_message_len: 8,
        rate_burst: 4,
        ..ChatConfig::default()
    });
    for step in steps {
        let (sender, out) = match step {
            Step::Connect(c, n) => (ConnId(c), chat.connect(ConnId(c), n).unwrap_or_default()),
            Step::Disconnect(c) => (ConnId(c), chat.disconnect(ConnId(c), "gone")),
            Step::Send(c, m) => (ConnId(c), chat.send(ConnId(c), m)),
            Step::Advance(ms) => {
                chat.advance(ms);
                continue;
            }
        };
        for o in &out {
            let registered = chat.service.name_of(o.to).is_some();
            match o.frame.message {
                Message::Error(_) => prop_assert_eq!(o.to, sender),
                _ => prop_assert!(registered, "{:?} to an unregistered client", o),
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn any_sequence_keeps_the_service_consistent(steps in prop::collection::vec(step(), 1..60)) {
        run(steps)?;
    }
}
