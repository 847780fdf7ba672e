//! Real Redis servers for the remote tier's tests: each starts its own `redis-server`
//! on a free loopback port in a temporary folder and stops it when dropped (as
//! redis-rs's own test harness does); never a system service, never a fixed port.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// A plain server.
    pub fn start() -> RedisServer {
        Self::with_args(&[])
    }

    /// A server with extra `redis-server` arguments (e.g. `--requirepass x`).
    pub fn with_args(extra: &[&str]) -> RedisServer {
        retry_start(|| Self::try_with_args(extra))
    }

    /// A server on a port free a moment ago; Err if another process took the port (or
    /// one named in `extra`) meanwhile, or the server did not come up.
    pub fn try_with_args(extra: &[&str]) -> Result<RedisServer, String> {
        let mut s = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        s.try_launch()?;
        Ok(s)
    }

    fn launch(&mut self) {
        if let Err(why) = self.try_launch() {
            panic!("redis-server did not start again on {}: {why}", self.port);
        }
    }

    /// Starts the server and waits until it says it is ready (every listener bound):
    /// a connection alone could reach another process that holds the port.
    fn try_launch(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("redis.log");
        let _ = std::fs::remove_file(&log);
        let port = self.port.to_string();
        let dir = self.dir.path().to_string_lossy().to_string();
        let mut args = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
            "--daemonize",
            "no",
            "--logfile",
            "redis.log",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
        args.extend(self.args.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("exited ({status}): {}", text.trim_end()));
            }
            if text.contains("Ready to accept connections") {
                wait_listening(self.listen_port());
                return Ok(());
            }
            if Instant::now() >= give_up {
                self.kill();
                return Err(format!("not ready after 10 s: {}", text.trim_end()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The port the readiness check connects to (the TLS port for a TLS server).
    fn listen_port(&self) -> u16 {
        match self.args.iter().position(|a| a == "--tls-port") {
            Some(i) => self.args[i + 1].parse().unwrap(),
            None => self.port,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Runs `redis-cli` against it (for checks and raw writes).
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The bytes it holds (`INFO memory`'s `used_memory`).
    pub fn used_memory(&self) -> u64 {
        let info = self.cli(&["INFO", "memory"]);
        let used = info.lines().find_map(|l| l.strip_prefix("used_memory:"));
        used.and_then(|u| u.trim().parse().ok())
            .unwrap_or_else(|| panic!("INFO memory: {info}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed (apt-get install redis-tools)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn wait_listening(port: u16) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < give_up,
            "redis-server did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `start` until it succeeds (a port found free can be taken by another process
/// before the server binds it), at most 5 times.
pub fn retry_start<T>(mut start: impl FnMut() -> Result<T, String>) -> T {
    let mut errors = Vec::new();
    for _ in 0..5 {
        match start() {
            Ok(t) => return t,
            Err(e) => errors.push(e),
        }
    }
    panic!("redis-server did not start in 5 tries: {errors:#?}");
}

/// A temporary folder path for a cache file.
pub fn cache_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// A Redis Cluster of `masters` servers (no replicas) made with
/// `redis-cli --cluster create`, each in its own folder; stopped when dropped.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(masters: usize) -> RedisCluster {
        retry_start(|| Self::try_start(masters, 0))
    }

    /// `start`, with `replicas` replicas of each master (nodes after the masters).
    pub fn with_replicas(masters: usize, replicas: usize) -> RedisCluster {
        retry_start(|| Self::try_start(masters, replicas))
    }

    fn try_start(masters: usize, replicas: usize) -> Result<RedisCluster, String> {
        let nodes = (0..masters * (1 + replicas))
            .map(|_| Self::try_node())
            .collect::<Result<Vec<RedisServer>, String>>()?;
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed (apt-get install redis-tools)");
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let cluster = RedisCluster { nodes };
        cluster.wait_ok();
        Ok(cluster)
    }

    /// A cluster of one master, serving every slot (`redis-cli --cluster create` wants
    /// three): a node that never met another, which does not know its own address.
    pub fn one_node() -> RedisCluster {
        retry_start(|| {
            let node = Self::try_node()?;
            let added = node.cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
            if added != "OK" {
                return Err(format!("CLUSTER ADDSLOTSRANGE: {added}"));
            }
            let cluster = RedisCluster { nodes: vec![node] };
            cluster.wait_ok();
            Ok(cluster)
        })
    }

    /// A server with cluster mode on, in no cluster yet.
    fn try_node() -> Result<RedisServer, String> {
        RedisServer::try_with_args(&cluster_node_args(&free_port().to_string()))
    }

    /// Waits until every live node sees the cluster as whole (all slots served).
    pub fn wait_ok(&self) {
        let give_up = Instant::now() + Duration::from_secs(30);
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            while !n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < give_up, "the cluster did not become ok");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The node id of each server, in order.
    pub fn id(&self, i: usize) -> String {
        self.nodes[i].cli(&["CLUSTER", "MYID"])
    }

    /// The number of hash slots each server owns, in order (from its own line of
    /// `CLUSTER NODES`: ranges `a-b` and single slots; `[slot->-id]` entries are moves
    /// under way, not owned).
    pub fn slots(&self) -> Vec<u64> {
        (0..self.nodes.len())
            .map(|i| {
                self.slot_ranges(i)
                    .iter()
                    .map(|r| r.end() - r.start() + 1)
                    .sum()
            })
            .collect()
    }

    /// The hash slots server `i` owns, as ranges (from its own line of `CLUSTER NODES`).
    pub fn slot_ranges(&self, i: usize) -> Vec<RangeInclusive<u64>> {
        let nodes = self.nodes[i].cli(&["CLUSTER", "NODES"]);
        let mine = nodes.lines().find(|l| l.contains("myself")).unwrap();
        mine.split_whitespace()
            .skip(8)
            .filter(|r| !r.starts_with('['))
            .map(|r| match r.split_once('-') {
                Some((a, b)) => a.parse().unwrap()..=b.parse().unwrap(),
                None => r.parse().unwrap()..=r.parse().unwrap(),
            })
            .collect()
    }

    /// The hash slot of Redis key `key`.
    pub fn keyslot(&self, key: &str) -> u64 {
        let found = self.nodes[0].cli(&["CLUSTER", "KEYSLOT", key]);
        found
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {key}: {found:?}"))
    }

    /// The server that owns hash slot `slot`.
    pub fn owner_of(&self, slot: u64) -> usize {
        (0..self.nodes.len())
            .find(|&i| self.slot_ranges(i).iter().any(|r| r.contains(&slot)))
            .unwrap_or_else(|| panic!("no server owns slot {slot}"))
    }

    /// The number of keys on each server, in order.
    pub fn sizes(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| n.cli(&["DBSIZE"]).parse().unwrap())
            .collect()
    }
}

/// The arguments of a server with cluster mode on and bus port `bus` (chosen, not left
/// at its default of the port + 10000, which may be taken, or above 65535).
pub fn cluster_node_args(bus: &str) -> [&str; 8] {
    [
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        bus,
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-node-timeout",
        "2000",
    ]
}

/// A CA and a server certificate it signed (for 127.0.0.1), made by `openssl` in `dir`.
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn make(dir: &Path) -> TlsFiles {
        std::fs::create_dir_all(dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl must be installed");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &[
                    "req",
                    "-x509",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=BackLite test CA",
                ][..],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.crt"],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec[..],
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        TlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

impl RedisServer {
    /// A server that speaks only TLS, with `tls`'s certificate (clients not checked).
    pub fn with_tls(tls: &TlsFiles) -> RedisServer {
        retry_start(|| Self::try_with_tls(tls, &[]))
    }

    /// `with_tls`, tried once, with `extra` arguments too (its `port` is the TLS one).
    pub fn try_with_tls(tls: &TlsFiles, extra: &[&str]) -> Result<RedisServer, String> {
        let tls_port = free_port();
        let path = |p: &PathBuf| p.to_string_lossy().to_string();
        let (port, cert, key, ca) = (
            tls_port.to_string(),
            path(&tls.cert),
            path(&tls.key),
            path(&tls.ca),
        );
        let args = [
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ];
        let mut s = Self::try_with_args(&[&args[..], extra].concat())?;
        s.port = tls_port;
        Ok(s)
    }

    /// `rediss://` to this server's TLS port.
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}
