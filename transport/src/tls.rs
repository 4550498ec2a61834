//! TLS for lanlink connections: the server's self-signed identity, the
//! client's pinning of it, and the handshakes.
//!
//! lanlink servers are run by anyone on a LAN, so there is no certificate
//! authority to ask. Instead, like SSH, a server has a long-lived self-signed
//! certificate ([`ServerIdentity`], created once and kept in its data folder)
//! and clients identify it by the SHA-256 [`Fingerprint`] of that
//! certificate: pinned on first use by the application, or given up front
//! ([`ClientTls::pin`]). The certificate's signature over the handshake is
//! still verified, so only the holder of the private key can present it.
//!
//! TLS 1.3 only, through rustls with the *ring* provider.
//!
//! The same port carries TLS and plain lanlink, told apart by the first
//! byte (a TLS record starts with `0x16`, lanlink with `L`): a server
//! answers a client of the other kind with a plain lanlink refusal that
//! says what to change, never with a hang.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::handshake::{read_before, FirstFrameError};
use crate::TransportError;

/// The first byte of every TLS handshake record.
pub(crate) const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// The SHA-256 digest of a server's DER certificate: how clients recognise
/// a server.
///
/// Written as `SHA256:` and 64 hex digits; parsing also accepts the bare
/// digits, upper or lower case, with or without `:` separators (as
/// `openssl x509 -fingerprint -sha256` prints them).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short form for people to compare by eye or read out: the first
    /// 16 bytes in eight groups of four hex digits (`3f9a 12c4 …`). Two
    /// certificates agreeing on it agree on 128 bits: enough to tell
    /// the right server from an impostor, not a replacement for
    /// [`Display`](std::fmt::Display) in files and scripts.
    pub fn grouped(&self) -> String {
        let mut out = String::with_capacity(39);
        for (i, pair) in self.0[..16].chunks_exact(2).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&format!("{:02x}{:02x}", pair[0], pair[1]));
        }
        out
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SHA256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A string that is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 fingerprint (expected SHA256: and 64 hex digits): {0:?}")]
pub struct BadFingerprint(pub String);

impl std::str::FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadFingerprint(s.to_owned());
        let trimmed = s.trim();
        let hex = ["SHA256:", "sha256:", "SHA256=", "sha256="]
            .iter()
            .find_map(|p| trimmed.strip_prefix(p))
            .unwrap_or(trimmed);
        let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

/// ring's provider with AES-128-GCM preferred: as safe for this use and,
/// with AES instructions, measurably cheaper per byte than AES-256-GCM on
/// file transfers, which are CPU-bound on loopback.
///
/// rustls 0.23.48 deprecates ring's provider because it has no
/// post-quantum key exchange; lanlink keeps ring, which rcgen also makes
/// its certificates with, rather than add a second crypto library
/// (aws-lc-rs), and builds without the warning whichever 0.23 it gets.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != TLS13_AES_128_GCM_SHA256.suite());
    Arc::new(provider)
}

/// A server's certificate and private key, ready to accept TLS clients.
#[derive(Clone)]
pub struct ServerIdentity {
    config: Arc<rustls::ServerConfig>,
    fingerprint: Fingerprint,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// File names of the identity inside a server's data folder.
const CERT_FILE: &str = "tls-cert.pem";
const KEY_FILE: &str = "tls-key.pem";

impl ServerIdentity {
    /// A new self-signed identity (ECDSA P-256), kept in memory only.
    pub fn generate() -> Result<ServerIdentity, TransportError> {
        let (cert_pem, key_pem) = generate_pem()?;
        ServerIdentity::from_pem(&cert_pem, &key_pem)
    }

    /// Loads the identity kept in `dir`, creating it (and `dir`, readable by
    /// its owner only) on first use. Returns whether it was created now.
    pub fn load_or_create(dir: &Path) -> Result<(ServerIdentity, bool), TransportError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        if cert_path.exists() || key_path.exists() {
            let cert = read_file(&cert_path)?;
            let key = read_file(&key_path)?;
            return Ok((ServerIdentity::from_pem(&cert, &key)?, false));
        }
        create_private_dir(dir)?;
        let (cert_pem, key_pem) = generate_pem()?;
        // Each file is complete before it gets its name, the key first:
        // a crash leaves either nothing, or a key alone (an error that
        // names it), never a half-written file.
        write_new_file(&key_path, key_pem.as_bytes(), 0o600)?;
        write_new_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
        Ok((ServerIdentity::from_pem(&cert_pem, &key_pem)?, true))
    }

    /// An identity from a PEM certificate and PEM private key (PKCS#8,
    /// SEC1 or PKCS#1).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ServerIdentity, TransportError> {
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|source| {
            TransportError::Pem {
                what: "certificate",
                source,
            }
        })?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|source| {
            TransportError::Pem {
                what: "private key",
                source,
            }
        })?;
        let fingerprint = Fingerprint::of_der(&cert);
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .and_then(|b| b.with_no_client_auth().with_single_cert(vec![cert], key))
            .map_err(|source| TransportError::Tls {
                context: "unusable certificate or key".into(),
                source,
            })?;
        Ok(ServerIdentity {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// The fingerprint clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub(crate) fn new_connection(&self) -> Result<rustls::ServerConnection, rustls::Error> {
        rustls::ServerConnection::new(self.config.clone())
    }
}

fn generate_pem() -> Result<(String, String), TransportError> {
    let mut names = vec!["lanlink".to_owned()];
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "lanlink" {
            names.push(host.to_owned());
        }
    }
    let certified = rcgen::generate_simple_self_signed(names)?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

fn read_file(path: &Path) -> Result<String, TransportError> {
    std::fs::read_to_string(path).map_err(|e| {
        let context = format!(
            "read {} (a server identity is both {CERT_FILE} and {KEY_FILE}; move the folder \
             away to create a new one, which clients will see as a changed server)",
            path.display()
        );
        TransportError::io(context, e)
    })
}

fn create_private_dir(dir: &Path) -> Result<(), TransportError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| TransportError::io(format!("create {}", dir.display()), e))
}

fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TransportError> {
    let tmp = path.with_extension("new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let context = || format!("write {}", path.display());
    let mut file = options
        .open(&tmp)
        .map_err(|e| TransportError::io(context(), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::hard_link(&tmp, path))
        .and_then(|()| std::fs::remove_file(&tmp))
        .map_err(|e| TransportError::io(context(), e))
}

/// The path of the certificate inside a server data folder (for messages).
pub fn certificate_path(dir: &Path) -> PathBuf {
    dir.join(CERT_FILE)
}

/// How a client checks the server's identity.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The fingerprint the server must present. `None` accepts any
    /// certificate that signs the handshake and reports its fingerprint
    /// ([`crate::Client::server_fingerprint`]) for the application to pin:
    /// trust on first use.
    pub pin: Option<Fingerprint>,
}

/// Accepts exactly the pinned certificate (or, unpinned, any), after
/// checking that it signed the handshake; records what it saw.
#[derive(Debug)]
struct PinVerifier {
    pin: Option<Fingerprint>,
    seen: Arc<Mutex<Option<Fingerprint>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let found = Fingerprint::of_der(end_entity);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(found);
        match self.pin {
            Some(pin) if pin != found => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client TLS session as every lanlink client makes it: TLS 1.3 only,
/// the server's certificate accepted by its fingerprint as `tls` says
/// (after checking that it signed the handshake), and the fingerprint it
/// presented written to `seen`.
///
/// [`Client::connect`](crate::Client::connect) runs it over its socket;
/// a tool that writes raw bytes inside TLS (a hostile-peer test) drives
/// one itself, e.g. with `rustls::StreamOwned`.
pub fn client_connection(
    tls: &ClientTls,
    seen: Arc<Mutex<Option<Fingerprint>>>,
) -> Result<rustls::ClientConnection, TransportError> {
    let provider = provider();
    let verifier = Arc::new(PinVerifier {
        pin: tls.pin,
        seen,
        provider: provider.clone(),
    });
    let setup = |source| TransportError::Tls {
        context: "client setup".into(),
        source,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(setup)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // Certificates are checked by their pinned fingerprint, not by a name,
    // so every server is "lanlink".
    let name = ServerName::try_from("lanlink")?;
    rustls::ClientConnection::new(Arc::new(config), name).map_err(setup)
}

/// What happened to a client's TLS handshake.
pub(crate) enum ClientHandshake {
    /// The session, the server's fingerprint, and raw bytes that arrived
    /// after the handshake and were not yet handed to rustls.
    Done(Box<rustls::ClientConnection>, Fingerprint, Vec<u8>),
    /// The server answered in plain lanlink (it runs without TLS): its bytes.
    PlainAnswer(Vec<u8>),
}

/// Runs the client side of the TLS handshake on `tcp` until `deadline`.
pub(crate) fn client_handshake(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    tls: &ClientTls,
    deadline: Instant,
) -> Result<ClientHandshake, TransportError> {
    let secs = deadline
        .saturating_duration_since(Instant::now())
        .as_secs_f64();
    let seen = Arc::new(Mutex::new(None));
    let mut conn = client_connection(tls, seen.clone())?;

    let mut first = true;
    let mut raw = vec![0u8; 16 * 1024];
    let mut leftover = Vec::new();
    'handshake: while conn.is_handshaking() {
        flush_handshake(&mut conn, tcp).map_err(|e| handshake_io(peer, e))?;
        if !conn.is_handshaking() {
            break;
        }
        let n =
            read_before(tcp, deadline, None, || (&*tcp).read(&mut raw)).map_err(|e| match e {
                FirstFrameError::Timeout => TransportError::HandshakeTimeout { peer, secs },
                FirstFrameError::Closed => TransportError::TlsClosed { peer },
                FirstFrameError::Io(e) => handshake_io(peer, e),
                FirstFrameError::Malformed(e) => TransportError::Protocol { peer, source: e },
            })?;
        let data = raw.get(..n).unwrap_or_default();
        if first && data.first() == Some(&lanlink_proto::MAGIC[0]) {
            // A plain lanlink server refusing our TLS hello.
            return Ok(ClientHandshake::PlainAnswer(data.to_vec()));
        }
        first = false;
        let mut rest = data;
        while !rest.is_empty() {
            if !conn.is_handshaking() {
                leftover = rest.to_vec();
                break 'handshake;
            }
            // 0: the server sent close_notify; nothing more is read.
            if conn
                .read_tls(&mut rest)
                .map_err(|e| handshake_io(peer, e))?
                == 0
            {
                return Err(TransportError::ClosedDuringHandshake { peer });
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the server why (an alert), then report.
                let _ = flush_handshake(&mut conn, tcp);
                let found = *seen.lock().unwrap_or_else(|p| p.into_inner());
                return Err(match (tls.pin, found) {
                    (Some(expected), Some(found)) if expected != found => {
                        TransportError::FingerprintMismatch {
                            peer,
                            expected,
                            found,
                        }
                    }
                    _ => TransportError::Tls {
                        context: format!("handshake with {peer}"),
                        source: e,
                    },
                });
            }
        }
    }
    flush_handshake(&mut conn, tcp).map_err(|e| handshake_io(peer, e))?;
    let found = (*seen.lock().unwrap_or_else(|p| p.into_inner()))
        .ok_or(TransportError::NoCertificate { peer })?;
    Ok(ClientHandshake::Done(Box::new(conn), found, leftover))
}

/// What happened to a server's TLS handshake.
pub(crate) enum ServerHandshakeError {
    Timeout,
    Closed,
    Tls(rustls::Error),
    Io(io::Error),
}

/// Runs the server side of the TLS handshake on `tcp` until `deadline`.
/// Returns the session and raw bytes that arrived after the handshake and
/// were not yet handed to rustls.
pub(crate) fn server_handshake(
    tcp: &mut TcpStream,
    identity: &ServerIdentity,
    deadline: Instant,
    shutdown: &crate::Shutdown,
) -> Result<(rustls::ServerConnection, Vec<u8>), ServerHandshakeError> {
    let mut conn = identity
        .new_connection()
        .map_err(ServerHandshakeError::Tls)?;
    let mut raw = vec![0u8; 16 * 1024];
    let mut leftover = Vec::new();
    'handshake: while conn.is_handshaking() {
        flush_handshake(&mut conn, tcp).map_err(ServerHandshakeError::Io)?;
        if !conn.is_handshaking() {
            break;
        }
        let n =
            read_before(tcp, deadline, Some(shutdown), || (&*tcp).read(&mut raw)).map_err(|e| {
                match e {
                    FirstFrameError::Timeout | FirstFrameError::Malformed(_) => {
                        ServerHandshakeError::Timeout
                    }
                    FirstFrameError::Closed => ServerHandshakeError::Closed,
                    FirstFrameError::Io(e) => ServerHandshakeError::Io(e),
                }
            })?;
        match feed_server_handshake(&mut conn, raw.get(..n).unwrap_or_default()) {
            Ok(Some(rest)) => {
                leftover = rest;
                break 'handshake;
            }
            Ok(None) => {}
            Err(e) => {
                // Tell the client why (an alert) where there is a reason.
                let _ = flush_handshake(&mut conn, tcp);
                return Err(e);
            }
        }
    }
    flush_handshake(&mut conn, tcp).map_err(ServerHandshakeError::Io)?;
    Ok((conn, leftover))
}

/// The server side of a TLS handshake for a protocol other than lanlink's
/// on a socket of its own (the browser server's HTTPS), with this server's
/// identity, run until `deadline` (or `shutdown`). Returns the session with
/// whatever arrived right behind the handshake already handed to it, ready
/// for `rustls::StreamOwned`.
pub fn accept_tls(
    tcp: &mut TcpStream,
    identity: &ServerIdentity,
    deadline: Instant,
    shutdown: &crate::Shutdown,
) -> Result<rustls::ServerConnection, TransportError> {
    let peer = tcp
        .peer_addr()
        .map_err(|e| TransportError::io("TLS handshake", e))?;
    let secs = deadline
        .saturating_duration_since(Instant::now())
        .as_secs_f64();
    let tls_error = |source| TransportError::Tls {
        context: format!("handshake with {peer}"),
        source,
    };
    let (mut conn, rest) =
        server_handshake(tcp, identity, deadline, shutdown).map_err(|e| match e {
            ServerHandshakeError::Timeout => TransportError::HandshakeTimeout { peer, secs },
            ServerHandshakeError::Closed => TransportError::ClosedDuringHandshake { peer },
            ServerHandshakeError::Tls(source) => tls_error(source),
            ServerHandshakeError::Io(e) => handshake_io(peer, e),
        })?;
    let mut rest = rest.as_slice();
    while !rest.is_empty() {
        if conn
            .read_tls(&mut rest)
            .map_err(|e| handshake_io(peer, e))?
            == 0
        {
            break;
        }
        conn.process_new_packets().map_err(&tls_error)?;
    }
    Ok(conn)
}

/// Hands one read's worth of bytes to a server session that is still
/// handshaking. `Some(rest)`: the handshake completed and `rest` (maybe
/// empty) came right behind it, for the connection's reader.
pub(crate) fn feed_server_handshake(
    conn: &mut rustls::ServerConnection,
    mut data: &[u8],
) -> Result<Option<Vec<u8>>, ServerHandshakeError> {
    while !data.is_empty() {
        if !conn.is_handshaking() {
            return Ok(Some(data.to_vec()));
        }
        // 0: the client sent close_notify; nothing more is read, and
        // looping on would never end.
        if conn.read_tls(&mut data).map_err(ServerHandshakeError::Io)? == 0 {
            return Err(ServerHandshakeError::Closed);
        }
        conn.process_new_packets()
            .map_err(ServerHandshakeError::Tls)?;
    }
    Ok((!conn.is_handshaking()).then(Vec::new))
}

fn flush_handshake<D>(
    conn: &mut rustls::ConnectionCommon<D>,
    tcp: &mut TcpStream,
) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(tcp)?;
    }
    tcp.flush()
}

fn handshake_io(peer: SocketAddr, e: io::Error) -> TransportError {
    TransportError::io(format!("TLS handshake with {peer}"), e)
}
