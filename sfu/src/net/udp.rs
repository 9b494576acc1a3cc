//! Batched UDP I/O on the shared media socket, IPv4 and IPv6.
//!
//! [`UdpPort`] is the socket: bound to one address, or to every address (`[::]`: IPv6 and,
//! dual-stack, IPv4 too; `0.0.0.0`: IPv4). Bound to every address it learns each datagram's
//! local address (`IP_PKTINFO` / `IPV6_RECVPKTINFO`) and sends the answer from that address,
//! so a host with several addresses answers from the one the client reached.
//!
//! A worker queues every datagram its peers produce during one wake-up in a [`SendBatch`] and
//! sends them together, grouped by path (each path's in their order): on Linux with one
//! `sendmmsg` per 256 messages, a run of same-sized datagrams on one path (a subscriber's
//! packets of one video frame) going out as one UDP GSO message (`UDP_SEGMENT`); elsewhere
//! with one `send_to` per datagram. Datagrams on ICE-TCP paths go to the TCP thread. The
//! receive thread reads with a [`RecvBatch`]: on Linux up to [`RECV_BATCH`] datagrams per
//! `recvmmsg`, elsewhere one per `recv_from`.

use std::io;
use std::net::{SocketAddr, SocketAddrV6, UdpSocket};
use std::ops::Range;
use std::time::Duration;

use socket2::Type;

use super::tcp::TcpOutlet;
use super::{Path, Proto, canonical};

/// The shared media socket.
#[derive(Debug)]
pub(crate) struct UdpPort {
    socket: UdpSocket,
    /// An IPv6 socket: IPv4 destinations are written IPv4-mapped.
    v6: bool,
}

impl UdpPort {
    /// Binds `addr`. An unspecified IPv6 address takes IPv4 too (dual-stack); an unspecified
    /// address of either family reports each datagram's local address.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = super::socket_for(addr, Type::DGRAM)?;
        socket.bind(&addr.into())?;
        let socket: UdpSocket = socket.into();
        #[cfg(target_os = "linux")]
        if addr.ip().is_unspecified() {
            linux::receive_local_addresses(&socket, addr.is_ipv6())?;
        }
        Ok(Self {
            socket,
            v6: addr.is_ipv6(),
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Whether IPv4 clients reach this socket (an IPv4 socket, or a dual-stack IPv6 one).
    pub(crate) fn takes_ipv4(&self) -> bool {
        !self.v6 || self.local_addr().is_ok_and(|a| a.ip().is_unspecified())
    }

    /// Whether IPv6 clients reach this socket.
    pub(crate) fn takes_ipv6(&self) -> bool {
        self.v6
    }

    /// Bounds each wait of a receive.
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.set_read_timeout(timeout)
    }

    /// Sends one datagram to `to` (source address chosen by the kernel).
    pub(crate) fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(data, self.target(to))
    }

    /// Receives one datagram: its length and its source.
    pub(crate) fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = self.socket.recv_from(buf)?;
        Ok((n, canonical(from)))
    }

    /// `to` as this socket's family writes it.
    fn target(&self, to: SocketAddr) -> SocketAddr {
        match to {
            SocketAddr::V4(a) if self.v6 => {
                SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
            }
            other => other,
        }
    }
}

/// Datagrams waiting to be sent, in order: their bytes one after another in one buffer that
/// is reused from wake-up to wake-up (no allocation per datagram).
#[derive(Default)]
pub(crate) struct SendBatch {
    bytes: Vec<u8>,
    queue: Vec<(Path, Range<usize>)>,
}

impl SendBatch {
    /// Queues one datagram (copied).
    pub(crate) fn push(&mut self, to: Path, data: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.queue.push((to, start..self.bytes.len()));
    }

    /// Sends every queued datagram: UDP ones on `udp`, ICE-TCP ones to `tcp`. Send errors
    /// (e.g. an ICMP error surfacing from an earlier send) drop that datagram only.
    pub(crate) fn send(&mut self, udp: &UdpPort, tcp: &TcpOutlet) {
        if self.queue.is_empty() {
            return;
        }
        // Each path's datagrams together, in their order (by path, then by position: no
        // allocation, no key copies): a subscriber's packets of one wake-up (a video frame's)
        // become one run, sent as one GSO message. TCP paths sort after UDP ones.
        self.queue
            .sort_unstable_by(|(a, x), (b, y)| a.cmp(b).then(x.start.cmp(&y.start)));
        let queue: Vec<(Path, &[u8])> = self
            .queue
            .iter()
            .map(|(to, range)| (*to, &self.bytes[range.clone()]))
            .collect();
        let tcp_from = queue.partition_point(|(to, _)| to.proto == Proto::Udp);
        let (datagrams, frames) = queue.split_at(tcp_from);
        #[cfg(target_os = "linux")]
        linux::send_all(udp, datagrams);
        #[cfg(not(target_os = "linux"))]
        for (to, data) in datagrams {
            send_one(udp, *to, data);
        }
        tcp.send(frames);
        self.queue.clear();
        self.bytes.clear();
    }
}

/// Datagrams read by one [`RecvBatch::recv`], at most.
pub(crate) const RECV_BATCH: usize = 32;
/// The largest datagram read (longer ones are truncated, and then fail to parse).
const RECV_BUF: usize = 2048;

/// A control message buffer: room for UDP_SEGMENT and one PKTINFO, aligned for `cmsghdr`.
type Cmsg = [u64; 8];

/// Datagrams read together, in buffers allocated once.
pub(crate) struct RecvBatch {
    bufs: Vec<[u8; RECV_BUF]>,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    cmsgs: Vec<Cmsg>,
    got: Vec<(Path, usize)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            bufs: vec![[0; RECV_BUF]; RECV_BATCH],
            cmsgs: vec![[0; 8]; RECV_BATCH],
            got: Vec::with_capacity(RECV_BATCH),
        }
    }
}

impl RecvBatch {
    /// Waits (up to the socket's read timeout) for at least one datagram and reads what has
    /// arrived, up to [`RECV_BATCH`]; how many.
    pub(crate) fn recv(&mut self, port: &UdpPort) -> io::Result<usize> {
        self.got.clear();
        #[cfg(target_os = "linux")]
        linux::recv_some(&port.socket, &mut self.bufs, &mut self.cmsgs, &mut self.got)?;
        #[cfg(not(target_os = "linux"))]
        {
            let (n, from) = port.recv_from(&mut self.bufs[0])?;
            self.got.push((Path::udp(from), n));
        }
        Ok(self.got.len())
    }

    /// The datagrams of the last [`RecvBatch::recv`]: their paths and bytes.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (Path, &[u8])> {
        self.got
            .iter()
            .zip(&self.bufs)
            .map(|((from, n), buf)| (*from, &buf[..*n]))
    }
}

#[cfg(not(target_os = "linux"))]
fn send_one(port: &UdpPort, to: Path, data: &[u8]) {
    if let Err(e) = port.send_to(data, to.remote) {
        tracing::trace!("send to {to} failed: {e}");
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::mem::{size_of, zeroed};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    use tracing::{debug, trace};

    use super::{Cmsg, Path, Proto, RECV_BUF, UdpPort};

    /// Messages per `sendmmsg` call.
    const CHUNK: usize = 256;
    /// Most segments in one GSO message (the kernel allows 64).
    const MAX_SEGMENTS: usize = 32;
    /// Most bytes in one GSO message (one IP datagram's payload).
    const MAX_GSO_BYTES: usize = 65_000;

    /// Cleared when the kernel refuses GSO; runs are then sent as separate messages.
    static GSO: AtomicBool = AtomicBool::new(true);

    /// Asks the kernel for each datagram's local address (both families on an IPv6 socket:
    /// a dual-stack one receives IPv4 too).
    pub(super) fn receive_local_addresses(socket: &UdpSocket, v6: bool) -> std::io::Result<()> {
        set_option(socket, libc::IPPROTO_IP, libc::IP_PKTINFO).or_else(|e| {
            // An IPv6-only socket may refuse the IPv4 option; it needs only the other.
            if v6 { Ok(()) } else { Err(e) }
        })?;
        if v6 {
            set_option(socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)?;
        }
        Ok(())
    }

    fn set_option(socket: &UdpSocket, level: i32, name: i32) -> std::io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket, and an int option of the size given.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&raw const on).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Length of the run starting at `queue[0]` that may go out as one GSO message: same
    /// path, every segment the size of the first except a shorter last one.
    fn run_len(queue: &[(Path, &[u8])]) -> usize {
        let (to, first) = (&queue[0].0, queue[0].1.len());
        if !GSO.load(Relaxed) || first == 0 {
            return 1;
        }
        let mut n = 1;
        let mut bytes = first;
        while n < queue.len() && n < MAX_SEGMENTS {
            let (path, data) = &queue[n];
            if path != to
                || data.len() > first
                || data.is_empty()
                || bytes + data.len() > MAX_GSO_BYTES
            {
                break;
            }
            bytes += data.len();
            n += 1;
            if data.len() < first {
                break;
            }
        }
        n
    }

    /// `addr` as a socket address of the socket's family (IPv4 mapped into IPv6 on an IPv6
    /// socket).
    fn sockaddr(addr: &SocketAddr, v6: bool) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: an all-zero sockaddr_storage is valid; the family-specific view written
        // below fits inside it.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let (ip6, port, flowinfo, scope) = match addr {
            SocketAddr::V4(a) if !v6 => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_in is smaller than sockaddr_storage.
                unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
                return (storage, size_of::<libc::sockaddr_in>() as libc::socklen_t);
            }
            SocketAddr::V4(a) => (a.ip().to_ipv6_mapped(), a.port(), 0, 0),
            SocketAddr::V6(a) => (*a.ip(), a.port(), a.flowinfo(), a.scope_id()),
        };
        let sin6 = libc::sockaddr_in6 {
            sin6_family: libc::AF_INET6 as libc::sa_family_t,
            sin6_port: port.to_be(),
            sin6_flowinfo: flowinfo,
            sin6_addr: libc::in6_addr {
                s6_addr: ip6.octets(),
            },
            sin6_scope_id: scope,
        };
        // SAFETY: sockaddr_in6 is smaller than sockaddr_storage.
        unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
        (storage, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
    }

    /// The address in `storage` (as the kernel filled it for a datagram's source).
    fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The local address in a received message's control data (`IP_PKTINFO` or
    /// `IPV6_PKTINFO`), if the kernel gave one.
    fn local_address(hdr: &libc::msghdr) -> Option<IpAddr> {
        // SAFETY: `hdr` is a message the kernel filled: its control data holds
        // `msg_controllen` bytes of well-formed control messages, walked with the libc macros
        // and read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(hdr);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        let info: libc::in_pktinfo = std::ptr::read_unaligned(data.cast());
                        return Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)).into());
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        let info: libc::in6_pktinfo = std::ptr::read_unaligned(data.cast());
                        return Some(Ipv6Addr::from(info.ipi6_addr.s6_addr).into());
                    }
                    _ => c = libc::CMSG_NXTHDR(hdr, c),
                }
            }
        }
        None
    }

    /// Reads up to `bufs.len()` datagrams with one `recvmmsg` (waiting for the first, up to
    /// the socket's read timeout), noting each one's path and length in `got`.
    pub(super) fn recv_some(
        socket: &UdpSocket,
        bufs: &mut [[u8; RECV_BUF]],
        cmsgs: &mut [Cmsg],
        got: &mut Vec<(Path, usize)>,
    ) -> std::io::Result<()> {
        // SAFETY: all-zero sockaddr_storage and mmsghdr are valid (null pointers, zero sizes).
        let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; bufs.len()];
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..bufs.len())
            .map(|i| {
                let mut m: libc::mmsghdr = unsafe { zeroed() };
                m.msg_hdr.msg_name = (&raw mut addrs[i]).cast();
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                m.msg_hdr.msg_iov = &raw mut iovs[i];
                m.msg_hdr.msg_iovlen = 1;
                m.msg_hdr.msg_control = cmsgs[i].as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = size_of::<Cmsg>() as _;
                m
            })
            .collect();
        // SAFETY: `msgs` point into `addrs`, `iovs`, `cmsgs` and `bufs`, alive and unmoved
        // during the call; the kernel writes at most the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        for (m, addr) in msgs.iter().zip(&addrs).take(n as usize) {
            if let Some(from) = from_sockaddr(addr) {
                let local = local_address(&m.msg_hdr);
                got.push((Path::new(Proto::Udp, from, local), m.msg_len as usize));
            }
        }
        Ok(())
    }

    /// Sends `queue` (UDP paths) with `sendmmsg`, GSO runs as one message each.
    pub(super) fn send_all(port: &UdpPort, queue: &[(Path, &[u8])]) {
        // Runs as (start, length) in `queue`.
        let mut runs = Vec::new();
        let mut at = 0;
        while at < queue.len() {
            let n = run_len(&queue[at..]);
            runs.push((at, n));
            at += n;
        }
        for chunk in runs.chunks(CHUNK) {
            send_chunk(port, queue, chunk);
        }
    }

    /// Writes the control messages of one message into `buf`: the GSO segment size (for a
    /// run of more than one datagram) and the source address (for a path with a local one);
    /// their total length.
    fn control(buf: &mut Cmsg, segment: Option<u16>, local: IpAddr) -> usize {
        // SAFETY: a msghdr over the 64 aligned bytes of `buf`, walked with the libc macros;
        // the two messages written (24 bytes for UDP_SEGMENT, at most 40 for a PKTINFO) fit.
        unsafe {
            let mut hdr: libc::msghdr = zeroed();
            hdr.msg_control = buf.as_mut_ptr().cast();
            hdr.msg_controllen = size_of::<Cmsg>() as _;
            let mut c = libc::CMSG_FIRSTHDR(&hdr);
            let mut len = 0;
            let mut put = |level: i32, ty: i32, data: &[u8]| {
                (*c).cmsg_level = level;
                (*c).cmsg_type = ty;
                (*c).cmsg_len = libc::CMSG_LEN(data.len() as u32) as _;
                std::ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(c), data.len());
                len += libc::CMSG_SPACE(data.len() as u32) as usize;
                c = libc::CMSG_NXTHDR(&hdr, c);
            };
            if let Some(size) = segment {
                put(libc::SOL_UDP, libc::UDP_SEGMENT, &size.to_ne_bytes());
            }
            match local {
                ip if ip.is_unspecified() => {}
                IpAddr::V4(ip) => {
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from_ne_bytes(ip.octets()),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    put(libc::IPPROTO_IP, libc::IP_PKTINFO, bytes_of(&info));
                }
                IpAddr::V6(ip) => {
                    let info = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: ip.octets(),
                        },
                        ipi6_ifindex: 0,
                    };
                    put(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, bytes_of(&info));
                }
            }
            len
        }
    }

    /// The bytes of a plain C struct.
    fn bytes_of<T>(value: &T) -> &[u8] {
        // SAFETY: `T` is a padding-free libc struct read as the bytes it occupies.
        unsafe { std::slice::from_raw_parts((value as *const T).cast(), size_of::<T>()) }
    }

    fn send_chunk(port: &UdpPort, queue: &[(Path, &[u8])], runs: &[(usize, usize)]) {
        // Every buffer is filled before any pointer into it is taken: none reallocates after.
        let mut addrs = Vec::with_capacity(runs.len());
        let mut iovs = Vec::with_capacity(runs.iter().map(|r| r.1).sum());
        let mut cmsgs: Vec<Cmsg> = vec![[0; 8]; runs.len()];
        let mut cmsg_lens = Vec::with_capacity(runs.len());
        for (i, &(start, n)) in runs.iter().enumerate() {
            let path = &queue[start].0;
            addrs.push(sockaddr(&path.remote, port.v6));
            let segment = (n > 1).then_some(queue[start].1.len() as u16);
            cmsg_lens.push(control(&mut cmsgs[i], segment, path.local));
            for (_, data) in &queue[start..start + n] {
                iovs.push(libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                });
            }
        }
        let mut msgs = Vec::with_capacity(runs.len());
        let mut iov_at = 0;
        for (i, &(_, n)) in runs.iter().enumerate() {
            // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
            let mut m: libc::mmsghdr = unsafe { zeroed() };
            m.msg_hdr.msg_name = (&raw mut addrs[i].0).cast();
            m.msg_hdr.msg_namelen = addrs[i].1;
            m.msg_hdr.msg_iov = iovs[iov_at..].as_mut_ptr();
            m.msg_hdr.msg_iovlen = n as _;
            iov_at += n;
            if cmsg_lens[i] > 0 {
                m.msg_hdr.msg_control = cmsgs[i].as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = cmsg_lens[i] as _;
            }
            msgs.push(m);
        }
        let fd = port.socket.as_raw_fd();
        let mut done = 0;
        while done < msgs.len() {
            // SAFETY: `msgs[done..]` are valid mmsghdrs whose pointers reference `addrs`,
            // `iovs`, `cmsgs` and the queued buffers, all alive and unmoved during the call.
            let sent = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs[done..].as_mut_ptr(),
                    (msgs.len() - done) as libc::c_uint,
                    0,
                )
            };
            if sent > 0 {
                done += sent as usize;
                continue;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // The message at `done` failed: resend a GSO run one datagram at a time (and stop
            // using GSO if the kernel refuses it), drop a single datagram.
            let (start, n) = runs[done];
            if n > 1 {
                if matches!(
                    err.raw_os_error(),
                    Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT)
                ) {
                    debug!("UDP GSO refused ({err}); sending datagrams one by one");
                    GSO.store(false, Relaxed);
                }
                let singles: Vec<(usize, usize)> = (start..start + n).map(|i| (i, 1)).collect();
                send_chunk(port, queue, &singles);
            } else {
                trace!("send to {} failed: {err}", queue[start].0);
            }
            done += 1;
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn runs_group_same_destination_equal_sizes_and_a_shorter_last() {
            let a = Path::udp("127.0.0.1:1000".parse().unwrap());
            let b = Path::udp("127.0.0.1:2000".parse().unwrap());
            let (long, short) = (vec![0u8; 100], vec![0u8; 60]);
            let d = |n: usize| if n == 100 { &long[..] } else { &short[..] };
            let q = vec![
                (a, d(100)),
                (a, d(100)),
                (a, d(60)),
                (a, d(100)),
                (b, d(100)),
            ];
            assert_eq!(run_len(&q), 3, "ends after the shorter segment");
            assert_eq!(run_len(&q[3..]), 1, "another destination ends a run");
            let q = vec![(a, d(60)), (a, d(100))];
            assert_eq!(run_len(&q), 1, "a longer segment cannot follow");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const WAIT: Option<Duration> = Some(Duration::from_secs(2));

    fn port(addr: &str) -> UdpPort {
        let p = UdpPort::bind(addr.parse().unwrap()).unwrap();
        p.set_read_timeout(WAIT).unwrap();
        p
    }

    fn client(addr: &str) -> UdpSocket {
        let s = UdpSocket::bind(addr).unwrap();
        s.set_read_timeout(WAIT).unwrap();
        s
    }

    #[test]
    fn recv_batch_reads_what_arrived_with_its_sources() {
        let rx = port("127.0.0.1:0");
        let to = rx.local_addr().unwrap();
        let (a, b) = (client("127.0.0.1:0"), client("127.0.0.1:0"));
        for i in 0..3u8 {
            a.send_to(&[i; 100], to).unwrap();
            b.send_to(&[10 + i; 1500], to).unwrap();
        }
        let mut batch = RecvBatch::default();
        let mut seen = Vec::new();
        for _ in 0..6 {
            if seen.len() == 6 {
                break;
            }
            assert!(batch.recv(&rx).unwrap() >= 1);
            seen.extend(batch.datagrams().map(|(from, d)| (from, d.to_vec())));
        }
        assert_eq!(seen.len(), 6);
        let from = |s: &UdpSocket| Path::udp(s.local_addr().unwrap());
        let from_a: Vec<_> = seen.iter().filter(|(f, _)| *f == from(&a)).collect();
        assert_eq!(
            from_a.len(),
            3,
            "bound to one address: no local address: {seen:?}"
        );
        assert!(
            from_a
                .iter()
                .enumerate()
                .all(|(i, (_, d))| d == &vec![i as u8; 100])
        );
        assert!(
            seen.iter()
                .filter(|(f, _)| *f == from(&b))
                .all(|(_, d)| d.len() == 1500)
        );
        rx.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert!(batch.recv(&rx).is_err(), "nothing more: the read times out");
    }

    #[test]
    fn send_batch_delivers_every_datagram_in_order() {
        let rx = client("127.0.0.1:0");
        let tx = port("127.0.0.1:0");
        let to = Path::udp(rx.local_addr().unwrap());
        let mut out = SendBatch::default();
        let sizes = [1200, 1200, 1200, 700, 90, 1200, 1200];
        let other = client("127.0.0.1:0");
        for (i, n) in sizes.iter().enumerate() {
            out.push(to, &vec![i as u8; *n]);
            // Interleaved datagrams to another destination do not break the order or the runs.
            out.push(Path::udp(other.local_addr().unwrap()), &[0xEE; 50]);
        }
        out.send(&tx, &TcpOutlet::default());
        let mut buf = [0u8; 2048];
        for (i, n) in sizes.iter().enumerate() {
            let got = rx.recv(&mut buf).unwrap();
            assert_eq!(got, *n, "datagram {i} keeps its size");
            assert!(buf[..got].iter().all(|b| *b == i as u8));
        }
    }

    /// A dual-stack socket on every address: IPv4 and IPv6 clients, each datagram's local
    /// address learnt, and the answers sent from the address each client reached (127.0.0.2
    /// is a local address of loopback that the kernel would not choose by itself).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_dual_stack_port_answers_each_client_from_the_address_it_reached() {
        let server = port("[::]:0");
        assert!(server.takes_ipv4() && server.takes_ipv6());
        let p = server.local_addr().unwrap().port();
        let v4 = client("127.0.0.1:0");
        let v6 = client("[::1]:0");
        let targets = [
            (&v4, SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), p))),
            (&v4, SocketAddr::from((Ipv4Addr::LOCALHOST, p))),
            (&v6, SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, p))),
        ];
        let mut batch = RecvBatch::default();
        let mut out = SendBatch::default();
        for (i, (c, to)) in targets.iter().enumerate() {
            c.send_to(&[i as u8; 40], to).unwrap();
            assert_eq!(batch.recv(&server).unwrap(), 1);
            let (path, data) = batch.datagrams().next().unwrap();
            assert_eq!(data, &[i as u8; 40][..]);
            assert_eq!(
                path.remote,
                c.local_addr().unwrap(),
                "canonical, not IPv4-mapped"
            );
            assert_eq!(path.local, to.ip(), "the address the client reached");
            out.push(path, &[0xA0 + i as u8; 30]);
            out.send(&server, &TcpOutlet::default());
            let mut buf = [0u8; 64];
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (30, 0xA0 + i as u8));
            assert_eq!(from, *to, "answered from the address reached");
        }
    }
}
