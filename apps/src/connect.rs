//! Connecting the way every `lanlink` command does: the command-line flags
//! turned into a [`lanlink_client::SessionBuilder`], and what the library
//! reports about trust turned into lines for a person.

use lanlink_client::{
    ClientError, Events, KnownServers, Session, SessionBuilder, Trust, TrustOutcome,
};
use lanlink_proto::Capabilities;
use lanlink_transport::Fingerprint;

/// How to reach one server: its address, token, and how to trust it.
#[derive(Debug, Clone)]
pub struct Server {
    /// `HOST:PORT` (the default port added).
    pub addr: String,
    /// The server's access token, if it requires one.
    pub token: Option<String>,
    /// TLS or not, and which certificate to accept.
    pub trust: Trust,
}

impl Server {
    /// What the flags ask for: `--plain`, `--server-fingerprint`, or TLS
    /// with the certificate pinned on first use in the user's
    /// known-servers file.
    pub fn from_flags(
        host: &str,
        token: Option<String>,
        plain: bool,
        pin: Option<Fingerprint>,
    ) -> Server {
        let trust = match (plain, pin) {
            (true, _) => Trust::Plain,
            (false, Some(fp)) => Trust::Fingerprint(fp),
            (false, None) => Trust::FirstUse(std::sync::Arc::new(KnownServers::default_location())),
        };
        Server {
            addr: lanlink_client::with_default_port(host),
            token,
            trust,
        }
    }

    /// A builder for this server, as `name` with `capabilities`.
    pub fn builder(&self, name: &str, capabilities: Capabilities) -> SessionBuilder {
        Session::builder(&self.addr)
            .name(name)
            .token_opt(self.token.clone())
            .trust(self.trust.clone())
            .capabilities(capabilities)
    }

    /// Connects as `name`; on first contact with a TLS server, says on
    /// stderr which certificate was pinned and where.
    pub fn connect(
        &self,
        name: &str,
        capabilities: Capabilities,
    ) -> Result<(Session, Events), ClientError> {
        connect(self.builder(name, capabilities), &self.addr)
    }
}

/// Connects with `builder` (to `addr`), telling the user about a
/// certificate pinned on first use.
pub fn connect(builder: SessionBuilder, addr: &str) -> Result<(Session, Events), ClientError> {
    let (session, events) = builder.connect()?;
    tell_trust(&session, addr);
    Ok((session, events))
}

/// Tells the user about a certificate `session` pinned on first use.
pub fn tell_trust(session: &Session, addr: &str) {
    let (fingerprint, store, how) = match session.trust() {
        TrustOutcome::PinnedOnFirstUse { fingerprint, store } => {
            (fingerprint, store, "compare with what the server printed")
        }
        TrustOutcome::PinnedAsExpected { fingerprint, store } => {
            (fingerprint, store, "as its announcement on the LAN said")
        }
        _ => return,
    };
    eprintln!("lanlink: first connection to {addr}: its certificate is {fingerprint}");
    eprintln!("lanlink:   short form {} ({how})", fingerprint.grouped());
    if let Some(path) = store {
        eprintln!(
            "lanlink: pinned in {}; you will be warned if it ever changes",
            path.display()
        );
    }
}

/// An error as a person should read it: a changed certificate is a
/// warning that says what to do.
pub fn describe(e: &ClientError) -> String {
    match e {
        ClientError::CertificateChanged {
            addr,
            expected,
            found,
            pins: Some(path),
        } => format!(
            "WARNING: the server at {addr} presented certificate\n  {found}\n\
             but this one was pinned for it on first use:\n  {expected}\n\
             Someone may be impersonating the server, or it was reinstalled and lost its \
             data folder. Nothing was sent.\n\
             If you know the server was reinstalled, forget the old certificate with\n  \
             lanlink forget {addr}\n(pins are kept in {})",
            path.display()
        ),
        ClientError::CertificateChanged {
            addr,
            expected,
            found,
            pins: None,
        } => format!(
            "the server at {addr} presented certificate {found}, not the expected {expected}; \
             refusing to connect (nothing was sent)"
        ),
        ClientError::NoServer {
            found,
            unusable,
            ignored,
        } => crate::discover::explain(found, unusable, *ignored),
        // A name in use: say how to choose another (it defaults to the
        // login, which two sessions of one person share).
        other if other.code() == Some(lanlink_proto::ErrorCode::NAME_TAKEN) => format!(
            "{}; choose another with --name NAME",
            lanlink_services::text::display_safe(&other.to_string())
        ),
        // Peer text inside errors is escaped where the error is built;
        // this is the last line of defence for whatever was missed.
        other => lanlink_services::text::display_safe(&other.to_string()).into_owned(),
    }
}
