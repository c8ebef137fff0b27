//! SFTP access with verified host keys, timeouts and capped reads.
//!
//! `ssh2` is blocking, so every call here is meant to run inside
//! `tokio::task::spawn_blocking`. The server's host key is checked against a
//! known_hosts file before any credential is sent: an unknown key and a
//! changed key are both refused.

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh2::{CheckResult, KnownHostFileKind, Session, Sftp};

/// Where to connect and how to prove who we are.
#[derive(Debug, Clone)]
pub struct SftpEndpoint {
    /// The server's host name or IP address.
    pub host: String,
    /// The SSH port (the feed's `port`, 22 by default).
    pub port: u16,
    /// The account to log in as.
    pub user: String,
    /// Private key file (ed25519 or RSA); the credential is referenced by
    /// path, never stored in config.
    pub private_key: PathBuf,
    /// OpenSSH known_hosts file holding the server's host key.
    pub known_hosts: PathBuf,
    /// Connect, handshake and per-operation timeout.
    pub timeout: Duration,
}

/// Why an SFTP operation failed, and whether a retry can help.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    /// The TCP connection could not be made (name resolution, connect or socket setup
    /// failed); retryable.
    #[error("connecting to {endpoint}: {source}")]
    Connect {
        /// The server, as `user@host:port`.
        endpoint: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An SSH or SFTP step failed (handshake, authentication, a remote file operation);
    /// retryable, though a rejected key will fail again.
    #[error("SSH {step} with {endpoint}: {source}")]
    Ssh {
        /// The step that failed (`handshake`, `public-key authentication`, `readdir`,
        /// `open`...).
        step: &'static str,
        /// The server, as `user@host:port`.
        endpoint: String,
        /// The libssh2 error.
        #[source]
        source: ssh2::Error,
    },
    /// The server's host key is not in the known_hosts file (or it offered none): refused,
    /// not retryable.
    #[error("host key of {endpoint} is not in {known_hosts}: refusing to connect")]
    UnknownHostKey {
        /// The server, as `user@host:port`.
        endpoint: String,
        /// The known_hosts file checked.
        known_hosts: PathBuf,
    },
    /// The server's host key differs from the one in the known_hosts file: refused, not
    /// retryable.
    #[error(
        "host key of {endpoint} does not match {known_hosts}: refusing to connect (possible man-in-the-middle)"
    )]
    ChangedHostKey {
        /// The server, as `user@host:port`.
        endpoint: String,
        /// The known_hosts file checked.
        known_hosts: PathBuf,
    },
    /// The file holds more than the read cap allows: not read, not retryable.
    #[error("reading {path} on {endpoint}: file exceeds the {max_bytes}-byte limit")]
    TooLarge {
        /// The server, as `user@host:port`.
        endpoint: String,
        /// The remote file's path.
        path: String,
        /// The cap the file exceeds, in bytes.
        max_bytes: u64,
    },
    /// Reading an opened remote file failed midway; retryable.
    #[error("reading {path} on {endpoint}: {source}")]
    Read {
        /// The server, as `user@host:port`.
        endpoint: String,
        /// The remote file's path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The entry is a symlink, a FIFO, a device or a directory: never read
    /// (a FIFO blocks, a symlink can point anywhere the account can read).
    #[error("{path} on {endpoint} is not a regular file: not read")]
    NotARegularFile {
        /// The server, as `user@host:port`.
        endpoint: String,
        /// The remote path refused.
        path: String,
    },
    /// What was read is not the size the listing gave: the file changed
    /// (or was cut) while it was read. Retried on the next poll.
    #[error("{path} on {endpoint}: listed at {listed} bytes, {read} read: it changed while read")]
    ChangedWhileRead {
        /// The server, as `user@host:port`.
        endpoint: String,
        /// The remote file's path.
        path: String,
        /// The size the listing gave, in bytes.
        listed: u64,
        /// The bytes actually read.
        read: u64,
    },
}

impl SftpError {
    /// Network trouble is worth retrying; a refused host key or an oversized
    /// file is not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SftpError::Connect { .. }
                | SftpError::Ssh { .. }
                | SftpError::Read { .. }
                | SftpError::ChangedWhileRead { .. }
        )
    }
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// The remote path: the listed directory joined with the entry's name (or the path
    /// given to `stat`).
    pub path: String,
    /// Size in bytes; 0 when the server does not say.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// A directory, as the server's attributes say.
    pub is_dir: bool,
    /// A regular file (not a symlink, FIFO, device or directory), as the
    /// listing (an lstat) says.
    pub is_file: bool,
}

/// An authenticated SFTP session.
pub struct SftpSession {
    endpoint: String,
    // Kept alive for as long as `sftp` is used.
    _session: Session,
    sftp: Sftp,
}

impl SftpSession {
    /// Connects, verifies the host key, authenticates with the key file.
    pub fn connect(ep: &SftpEndpoint) -> Result<SftpSession, SftpError> {
        let endpoint = format!("{}@{}:{}", ep.user, ep.host, ep.port);
        let io_err = |source| SftpError::Connect {
            endpoint: endpoint.clone(),
            source,
        };
        let addr = (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(io_err)?
            .next()
            .ok_or_else(|| io_err(std::io::Error::other("host resolved to no address")))?;
        let tcp = TcpStream::connect_timeout(&addr, ep.timeout).map_err(io_err)?;
        tcp.set_read_timeout(Some(ep.timeout)).map_err(io_err)?;
        tcp.set_write_timeout(Some(ep.timeout)).map_err(io_err)?;
        let ssh = |step| {
            let endpoint = endpoint.clone();
            move |source| SftpError::Ssh {
                step,
                endpoint,
                source,
            }
        };
        let mut session = Session::new().map_err(ssh("session setup"))?;
        session.set_timeout(ep.timeout.as_millis().min(u32::MAX as u128) as u32);
        session.set_tcp_stream(tcp);
        session.handshake().map_err(ssh("handshake"))?;
        verify_host_key(&session, ep, &endpoint)?;
        session
            .userauth_pubkey_file(&ep.user, None, &ep.private_key, None)
            .map_err(ssh("public-key authentication"))?;
        let sftp = session.sftp().map_err(ssh("sftp subsystem start"))?;
        Ok(SftpSession {
            endpoint,
            _session: session,
            sftp,
        })
    }

    /// Lists `dir` (without `.` and `..`).
    pub fn list(&self, dir: &str) -> Result<Vec<RemoteFile>, SftpError> {
        let entries = self
            .sftp
            .readdir(Path::new(dir))
            .map_err(|source| SftpError::Ssh {
                step: "readdir",
                endpoint: self.endpoint.clone(),
                source,
            })?;
        Ok(entries
            .into_iter()
            .filter(|(p, _)| {
                !matches!(
                    p.file_name().and_then(|n| n.to_str()),
                    Some(".") | Some("..")
                )
            })
            .map(|(p, st)| RemoteFile {
                path: p.to_string_lossy().into_owned(),
                size: st.size.unwrap_or(0),
                mtime: st.mtime.unwrap_or(0),
                is_dir: st.is_dir(),
                is_file: st.file_type().is_file(),
            })
            .collect())
    }

    /// Stats one path.
    pub fn stat(&self, path: &str) -> Result<RemoteFile, SftpError> {
        let st = self
            .sftp
            .stat(Path::new(path))
            .map_err(|source| SftpError::Ssh {
                step: "stat",
                endpoint: self.endpoint.clone(),
                source,
            })?;
        Ok(RemoteFile {
            path: path.to_string(),
            size: st.size.unwrap_or(0),
            mtime: st.mtime.unwrap_or(0),
            is_dir: st.is_dir(),
            is_file: st.file_type().is_file(),
        })
    }

    /// Renames (moves) a remote file.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), SftpError> {
        self.sftp
            .rename(Path::new(from), Path::new(to), None)
            .map_err(|source| SftpError::Ssh {
                step: "rename",
                endpoint: self.endpoint.clone(),
                source,
            })
    }

    /// Reads a file a listing gave as `listed_size` bytes: only if it is
    /// still a regular file (an lstat, so a symlink is refused, not
    /// followed), and only if exactly that many bytes come back.
    pub fn read_listed(
        &self,
        path: &str,
        listed_size: u64,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SftpError> {
        let st = self
            .sftp
            .lstat(Path::new(path))
            .map_err(|source| SftpError::Ssh {
                step: "lstat",
                endpoint: self.endpoint.clone(),
                source,
            })?;
        if !st.file_type().is_file() {
            return Err(SftpError::NotARegularFile {
                endpoint: self.endpoint.clone(),
                path: path.to_string(),
            });
        }
        let bytes = self.read(path, max_bytes)?;
        if bytes.len() as u64 != listed_size {
            return Err(SftpError::ChangedWhileRead {
                endpoint: self.endpoint.clone(),
                path: path.to_string(),
                listed: listed_size,
                read: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    /// Reads a whole file, refusing more than `max_bytes`.
    pub fn read(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, SftpError> {
        let file = self
            .sftp
            .open(Path::new(path))
            .map_err(|source| SftpError::Ssh {
                step: "open",
                endpoint: self.endpoint.clone(),
                source,
            })?;
        let mut out = Vec::new();
        file.take(max_bytes + 1)
            .read_to_end(&mut out)
            .map_err(|source| SftpError::Read {
                endpoint: self.endpoint.clone(),
                path: path.to_string(),
                source,
            })?;
        if out.len() as u64 > max_bytes {
            return Err(SftpError::TooLarge {
                endpoint: self.endpoint.clone(),
                path: path.to_string(),
                max_bytes,
            });
        }
        Ok(out)
    }
}

fn verify_host_key(session: &Session, ep: &SftpEndpoint, endpoint: &str) -> Result<(), SftpError> {
    let ssh = |step| {
        let endpoint = endpoint.to_string();
        move |source| SftpError::Ssh {
            step,
            endpoint,
            source,
        }
    };
    let (key, _) = session
        .host_key()
        .ok_or_else(|| SftpError::UnknownHostKey {
            endpoint: endpoint.to_string(),
            known_hosts: ep.known_hosts.clone(),
        })?;
    let mut known = session.known_hosts().map_err(ssh("known_hosts setup"))?;
    known
        .read_file(&ep.known_hosts, KnownHostFileKind::OpenSSH)
        .map_err(ssh("reading known_hosts"))?;
    match known.check_port(&ep.host, ep.port, key) {
        CheckResult::Match => Ok(()),
        CheckResult::Mismatch => Err(SftpError::ChangedHostKey {
            endpoint: endpoint.to_string(),
            known_hosts: ep.known_hosts.clone(),
        }),
        CheckResult::NotFound | CheckResult::Failure => Err(SftpError::UnknownHostKey {
            endpoint: endpoint.to_string(),
            known_hosts: ep.known_hosts.clone(),
        }),
    }
}
