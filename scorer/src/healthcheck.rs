//! `scorer healthcheck`: a dependency-free HTTP probe for container HEALTHCHECKs.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Asks the sidecar at `addr` for `/healthz`; an unspecified address (0.0.0.0) means loopback.
///
/// # Errors
/// A message saying what failed: connect, I/O, or a non-200 status.
pub fn probe(mut addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("cannot send request: {e}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("no HTTP response: {e}"))?;
    let status = String::from_utf8_lossy(&head[9..12]).into_owned();
    if status == "200" {
        Ok(())
    } else {
        Err(format!("GET /healthz answered {status}"))
    }
}
