//! A connection to one Redis server on which a round trip, the request and its whole
//! reply, ends within the timeout. The `redis` crate's synchronous connection bounds each
//! wait of its socket, not the reply: a server sending a reply a byte at a time, each
//! sooner than the timeout, held a get for minutes. Here every read and write of a round
//! trip may wait only for what is left of its time. Commands are still packed and replies
//! parsed by the crate (`Cmd`, `Parser`); this file moves bytes and keeps time.

use redis::{
    ConnectionAddr, ConnectionInfo, ConnectionLike, ErrorKind, Parser, RedisError, RedisResult,
    Value,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use socket2::{Domain, SockAddr, SockRef, Type};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A socket whose waits can be bounded.
trait Socket: Read + AsFd {
    fn set_read_wait(&self, wait: Duration) -> io::Result<()>;
    fn set_write_wait(&self, wait: Duration) -> io::Result<()>;
}

/// Writes with MSG_NOSIGNAL: a write to a connection the server has closed must be an
/// error (EPIPE), never a SIGPIPE, which kills a C program that does not ignore it. std
/// passes the flag for `TcpStream::write`, but not for `write_vectored` (writev), which
/// rustls uses to send its records: a `rediss://` server closing while a large value
/// went out (a value over its `proto-max-bulk-len`) killed the calling process.
fn send(socket: &impl AsFd, buf: &[u8]) -> io::Result<usize> {
    SockRef::from(socket).send_with_flags(buf, libc::MSG_NOSIGNAL)
}

impl Socket for TcpStream {
    fn set_read_wait(&self, wait: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(wait))
    }
    fn set_write_wait(&self, wait: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(wait))
    }
}

impl Socket for UnixStream {
    fn set_read_wait(&self, wait: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(wait))
    }
    fn set_write_wait(&self, wait: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(wait))
    }
}

/// A socket and the deadline of the round trip under way.
struct Timed<S> {
    socket: S,
    deadline: Instant,
    /// The socket's read and write timeouts as last set.
    read_wait: Duration,
    write_wait: Duration,
    /// How far a wait may end from the deadline before the socket's timeout is set again:
    /// a reply read in one go, the usual case, costs no system call for it, and a round
    /// trip ends at most this long after its deadline.
    slack: Duration,
}

/// Whether a wait of `set` would end more than `slack` away from `left`.
fn far(set: Duration, left: Duration, slack: Duration) -> bool {
    set.max(left) - set.min(left) > slack
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the remote did not answer in full within the timeout",
    )
}

impl<S: Socket> Timed<S> {
    fn new(socket: S, timeout: Duration, deadline: Instant) -> io::Result<Timed<S>> {
        socket.set_read_wait(timeout)?;
        socket.set_write_wait(timeout)?;
        Ok(Timed {
            socket,
            deadline,
            read_wait: timeout,
            write_wait: timeout,
            slack: timeout / 8,
        })
    }

    /// What is left of the round trip's time, or an error when nothing is.
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        Ok(left)
    }
}

impl<S: Socket> Timed<S> {
    /// Bounds the next read by what is left of the round trip's time.
    fn fit_read(&mut self) -> io::Result<()> {
        let left = self.left()?;
        if far(self.read_wait, left, self.slack) {
            self.socket.set_read_wait(left)?;
            self.read_wait = left;
        }
        Ok(())
    }

    /// Bounds the next write by what is left of the round trip's time.
    fn fit_write(&mut self) -> io::Result<()> {
        let left = self.left()?;
        if far(self.write_wait, left, self.slack) {
            self.socket.set_write_wait(left)?;
            self.write_wait = left;
        }
        Ok(())
    }
}

impl<S: Socket> Read for Timed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fit_read()?;
        self.socket.read(buf)
    }
}

impl<S: Socket> Write for Timed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.fit_write()?;
        send(&self.socket, buf)
    }

    /// TLS hands over its records together; they are sent one `send` each (a record is
    /// up to 16 KiB), as `send`, unlike writev, takes MSG_NOSIGNAL.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        self.write(first)
    }

    /// Nothing is buffered: each write is a system call.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Stream {
    Tcp(Timed<TcpStream>),
    Unix(Timed<UnixStream>),
    Tls(Box<StreamOwned<ClientConnection, Timed<TcpStream>>>),
}

impl Stream {
    fn set_deadline(&mut self, deadline: Instant) {
        match self {
            Stream::Tcp(t) => t.deadline = deadline,
            Stream::Unix(t) => t.deadline = deadline,
            Stream::Tls(s) => s.sock.deadline = deadline,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(t) => t.read(buf),
            Stream::Unix(t) => t.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(t) => t.write(buf),
            Stream::Unix(t) => t.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(t) => t.flush(),
            Stream::Unix(t) => t.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A TCP connection to `host:port`, tried on each of its addresses until `deadline`.
fn tcp(
    host: &str,
    port: u16,
    timeout: Duration,
    deadline: Instant,
) -> io::Result<Timed<TcpStream>> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(socket) => {
                // A request is one write; nothing is gained by holding it back.
                socket.set_nodelay(true)?;
                return Timed::new(socket, timeout, deadline);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address")))
}

/// A connection to the Unix socket at `path`, made by `deadline`. A server that does not
/// accept (paused, overloaded) fills its listen queue, and a blocking connect to a full
/// queue waits for room without bound unless the socket has a send timeout: with one,
/// it gives up (EAGAIN) when the time is up.
fn unix(path: &Path, timeout: Duration, deadline: Instant) -> io::Result<Timed<UnixStream>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    let socket = socket2::Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_write_timeout(Some(left))?;
    socket.connect(&SockAddr::unix(path)?)?;
    Timed::new(UnixStream::from(socket), timeout, deadline)
}

/// The TLS settings the `redis` crate would use: the system's roots, or the bundle
/// `SSL_CERT_FILE` names, read at each connect as the crate does.
fn tls_config() -> RedisResult<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let mut found = rustls_native_certs::load_native_certs();
    if let Some(e) = found.errors.pop() {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "cannot read the trusted certificates",
            e.to_string(),
        )));
    }
    for cert in found.certs {
        roots.add(cert)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

pub(crate) struct BoundedConnection {
    stream: Stream,
    parser: Parser,
    /// Where it connects, to connect again when the server closed it while it was idle.
    info: Box<ConnectionInfo>,
    /// The time a round trip may take.
    timeout: Duration,
    /// False after an error on the socket or in a reply: the stream may stand in the middle
    /// of a reply, so nothing more is read from it.
    open: bool,
    /// Whether a round trip has succeeded on this socket (it has been idle since).
    used: bool,
    /// Whether the round trip under way has read anything.
    heard: bool,
}

/// The reads of a reply, noting that something came.
struct Heard<'a> {
    stream: &'a mut Stream,
    heard: &'a mut bool,
}

impl Read for Heard<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        *self.heard |= n > 0;
        Ok(n)
    }
}

impl BoundedConnection {
    /// Connects, and sends AUTH and SELECT when the URL asks for them, all within
    /// `timeout`.
    pub(crate) fn open(info: &ConnectionInfo, timeout: Duration) -> RedisResult<Self> {
        Self::open_until(info, timeout, Instant::now() + timeout)
    }

    /// `open`, by `deadline`.
    fn open_until(
        info: &ConnectionInfo,
        timeout: Duration,
        deadline: Instant,
    ) -> RedisResult<Self> {
        let stream = match &info.addr {
            ConnectionAddr::Tcp(host, port) => Stream::Tcp(tcp(host, *port, timeout, deadline)?),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            } => {
                let name = ServerName::try_from(host.clone()).map_err(|e| {
                    RedisError::from((
                        ErrorKind::InvalidClientConfig,
                        "not a host name for TLS",
                        e.to_string(),
                    ))
                })?;
                let tls = ClientConnection::new(Arc::new(tls_config()?), name)?;
                let socket = tcp(host, *port, timeout, deadline)?;
                Stream::Tls(Box::new(StreamOwned::new(tls, socket)))
            }
            ConnectionAddr::Unix(path) => Stream::Unix(unix(path, timeout, deadline)?),
            // Our URLs never ask for these (a fragment such as `#insecure` is refused).
            _ => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "unsupported connection settings",
                )))
            }
        };
        let mut c = BoundedConnection {
            stream,
            parser: Parser::new(),
            info: Box::new(info.clone()),
            timeout,
            open: true,
            used: false,
            heard: false,
        };
        if let Some(password) = &info.redis.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &info.redis.username {
                auth.arg(user);
            }
            auth.arg(password);
            c.setup(&auth, deadline)?;
        }
        if info.redis.db != 0 {
            c.setup(redis::cmd("SELECT").arg(info.redis.db), deadline)?;
        }
        Ok(c)
    }

    /// A set-up command, within the connect's own deadline.
    fn setup(&mut self, cmd: &redis::Cmd, deadline: Instant) -> RedisResult<()> {
        self.send_until(&cmd.get_packed_command(), deadline)?;
        self.recv()?.extract_error().map(drop)
    }

    fn broken() -> RedisError {
        RedisError::from(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "the connection failed earlier",
        ))
    }

    /// One round trip: sends `request`, then reads its replies with `replies`, all
    /// within the timeout. A socket the server closed while it lay idle in the pool (a
    /// `CLIENT KILL`, its idle `timeout`, a restart) fails at once, before any reply
    /// came: the request is sent again, once, on a new connection, within the same
    /// deadline, instead of failing the call and backing the remote off. A connection
    /// that never served a round trip, or that heard part of a reply, is not retried.
    fn round_trip<T>(
        &mut self,
        request: &[u8],
        mut replies: impl FnMut(&mut Self) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let deadline = Instant::now() + self.timeout;
        let retry = self.open && self.used;
        let first = self
            .send_until(request, deadline)
            .and_then(|()| replies(self));
        let result = match first {
            Err(e) if retry && !self.heard && e.is_connection_dropped() => {
                *self = Self::open_until(&self.info, self.timeout, deadline)?;
                self.send_until(request, deadline)
                    .and_then(|()| replies(self))
            }
            other => other,
        };
        self.used |= result.is_ok();
        result
    }

    fn send_until(&mut self, bytes: &[u8], deadline: Instant) -> RedisResult<()> {
        if !self.open {
            return Err(Self::broken());
        }
        self.heard = false;
        self.stream.set_deadline(deadline);
        let sent = self
            .stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush());
        sent.map_err(|e| {
            self.open = false;
            e.into()
        })
    }

    /// Reads one reply of the round trip under way (an error reply is a value).
    fn recv(&mut self) -> RedisResult<Value> {
        if !self.open {
            return Err(Self::broken());
        }
        let reply = self.parser.parse_value(Heard {
            stream: &mut self.stream,
            heard: &mut self.heard,
        });
        if reply.is_err() {
            self.open = false;
        }
        reply
    }
}

impl ConnectionLike for BoundedConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.round_trip(cmd, Self::recv)
    }

    /// As the crate's own connection does: the replies from `offset` on, or the first
    /// error reply before it.
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.round_trip(cmd, |c| {
            let mut replies = Vec::with_capacity(count);
            let mut first_error = None;
            for i in 0..offset + count {
                match c.recv()? {
                    Value::ServerError(e) if i < offset => {
                        first_error.get_or_insert(RedisError::from(e));
                    }
                    _ if i < offset => {}
                    reply => replies.push(reply),
                }
            }
            first_error.map_or(Ok(replies), Err)
        })
    }

    fn get_db(&self) -> i64 {
        self.info.redis.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::IntoConnectionInfo;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::thread::sleep;

    /// A server that answers request `n` (from 0) with `reply`, after `delay(n)`, the
    /// bytes of its first answer `gap` apart.
    fn server(reply: &'static [u8], delay: fn(usize) -> Duration, gap: Duration) -> ConnectionInfo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            for n in 0.. {
                if conn.read(&mut buf).unwrap_or(0) == 0 {
                    return;
                }
                sleep(delay(n));
                let pieces = if n == 0 { 1 } else { reply.len() };
                for piece in reply.chunks(pieces) {
                    if conn.write_all(piece).is_err() {
                        return;
                    }
                    if n == 0 {
                        sleep(gap);
                    }
                }
            }
        });
        format!("redis://127.0.0.1:{port}")
            .into_connection_info()
            .unwrap()
    }

    fn ping(c: &mut BoundedConnection) -> RedisResult<String> {
        redis::cmd("PING").query(c)
    }

    /// A server that answers request `i` of each connection with `replies[i]`, then
    /// closes it after the last (as a `CLIENT KILL` or an idle `timeout` would),
    /// counting the connections.
    fn closing_server(replies: &'static [&'static [u8]]) -> (ConnectionInfo, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                count.fetch_add(1, SeqCst);
                let mut buf = [0u8; 1024];
                for reply in replies {
                    if conn.read(&mut buf).unwrap_or(0) == 0 || conn.write_all(reply).is_err() {
                        break;
                    }
                }
            }
        });
        let info = format!("redis://127.0.0.1:{port}")
            .into_connection_info()
            .unwrap();
        (info, accepted)
    }

    #[test]
    fn a_socket_closed_while_idle_is_replaced_once_within_the_round_trip() {
        let (info, accepted) = closing_server(&[b"+PONG\r\n"]);
        let mut c = BoundedConnection::open(&info, Duration::from_secs(5)).unwrap();
        assert_eq!(ping(&mut c).unwrap(), "PONG");
        // The server has closed it: the next round trip connects again and succeeds.
        assert_eq!(ping(&mut c).unwrap(), "PONG");
        assert_eq!(accepted.load(SeqCst), 2);
        assert!(c.is_open());
    }

    #[test]
    fn a_new_socket_or_a_reply_cut_short_is_not_sent_again() {
        // Closed before its first reply: a connection that never served is not retried.
        let (info, accepted) = closing_server(&[]);
        let mut c = BoundedConnection::open(&info, Duration::from_secs(5)).unwrap();
        assert!(ping(&mut c).unwrap_err().is_connection_dropped());
        assert_eq!(accepted.load(SeqCst), 1);
        // Part of a reply came before the close: the request may have run, and the
        // failure is the server's, not the idle socket's.
        let (info, accepted) = closing_server(&[b"+PONG\r\n", b"$5\r\nab"]);
        let mut c = BoundedConnection::open(&info, Duration::from_secs(5)).unwrap();
        assert_eq!(ping(&mut c).unwrap(), "PONG");
        assert!(ping(&mut c).unwrap_err().is_connection_dropped());
        assert_eq!(accepted.load(SeqCst), 1);
        assert!(!c.is_open());
    }

    #[test]
    fn a_reply_dripped_past_the_timeout_is_cut_off_near_it() {
        let info = server(
            b"$100000000\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            |_| Duration::ZERO,
            Duration::from_millis(20),
        );
        let timeout = Duration::from_millis(300);
        let mut c = BoundedConnection::open(&info, timeout).unwrap();
        let start = Instant::now();
        let e = ping(&mut c).unwrap_err();
        let took = start.elapsed();
        assert!(e.is_timeout() || e.kind() == ErrorKind::IoError, "{e:?}");
        // Each byte came sooner than the timeout: only the round trip's deadline ends it.
        assert!(took >= timeout && took < timeout * 3, "{took:?}");
        assert!(!c.is_open());
        assert!(
            ping(&mut c).is_err(),
            "nothing more is read from a broken connection"
        );
    }

    #[test]
    fn a_slow_reply_within_the_timeout_is_read_and_the_next_round_trip_has_all_its_time() {
        // The first reply comes a byte every 60 ms (420 ms of a 700 ms timeout), which
        // shortens the socket's wait to about 300 ms; the second comes whole after 500 ms.
        let info = server(
            b"+PONG\r\n",
            |n| Duration::from_millis(if n == 0 { 0 } else { 500 }),
            Duration::from_millis(60),
        );
        let mut c = BoundedConnection::open(&info, Duration::from_millis(700)).unwrap();
        assert_eq!(ping(&mut c).unwrap(), "PONG");
        assert_eq!(ping(&mut c).unwrap(), "PONG");
    }
}
