//! Real Redis servers for the remote tier's tests: each starts its own `redis-server`
//! on a free loopback port in a temporary folder and stops it when dropped (as
//! redis-rs's own test harness does); never a system service, never a fixed port.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
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
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut s = RedisServer {
            port,
            dir,
            args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
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
        wait_listening(self.listen_port());
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

/// A temporary folder path for a cache file.
pub fn cache_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}
