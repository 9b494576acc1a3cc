//! Batched UDP I/O on the shared media socket.
//!
//! A worker queues every datagram its peers produce during one wake-up in a [`SendBatch`] and
//! sends them together, grouped by destination (each destination's in their order): on Linux
//! with one `sendmmsg` per 256 messages, a run of same-sized datagrams to one destination (a
//! subscriber's packets of one video frame) going out as one UDP GSO message (`UDP_SEGMENT`);
//! elsewhere with one `send_to` per datagram. The receive thread reads with a
//! [`RecvBatch`]: on Linux up to [`RECV_BATCH`] datagrams per `recvmmsg`, elsewhere one per
//! `recv_from`.

use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;

use tracing::trace;

/// Datagrams waiting to be sent, in order: their bytes one after another in one buffer that
/// is reused from wake-up to wake-up (no allocation per datagram).
#[derive(Default)]
pub(crate) struct SendBatch {
    bytes: Vec<u8>,
    queue: Vec<(SocketAddr, Range<usize>)>,
}

impl SendBatch {
    /// Queues one datagram (copied).
    pub(crate) fn push(&mut self, to: SocketAddr, data: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.queue.push((to, start..self.bytes.len()));
    }

    /// Sends every queued datagram; send errors (e.g. an ICMP error surfacing from an earlier
    /// send) drop that datagram only.
    pub(crate) fn send(&mut self, socket: &UdpSocket) {
        if self.queue.is_empty() {
            return;
        }
        let mut queue: Vec<(SocketAddr, &[u8])> = self
            .queue
            .iter()
            .map(|(to, range)| (*to, &self.bytes[range.clone()]))
            .collect();
        // Each destination's datagrams together, in their order (a stable sort): a subscriber's
        // packets of one wake-up (a video frame's) become one run, sent as one GSO message.
        queue.sort_by_key(|(to, _)| *to);
        #[cfg(target_os = "linux")]
        linux::send_all(socket, &queue);
        #[cfg(not(target_os = "linux"))]
        for (to, data) in &queue {
            send_one(socket, *to, data);
        }
        self.queue.clear();
        self.bytes.clear();
    }
}

/// Datagrams read by one [`RecvBatch::recv`], at most.
pub(crate) const RECV_BATCH: usize = 32;
/// The largest datagram read (longer ones are truncated, and then fail to parse).
const RECV_BUF: usize = 2048;

/// Datagrams read together, in buffers allocated once.
pub(crate) struct RecvBatch {
    bufs: Vec<[u8; RECV_BUF]>,
    got: Vec<(SocketAddr, usize)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            bufs: vec![[0; RECV_BUF]; RECV_BATCH],
            got: Vec::with_capacity(RECV_BATCH),
        }
    }
}

impl RecvBatch {
    /// Waits (up to the socket's read timeout) for at least one datagram and reads what has
    /// arrived, up to [`RECV_BATCH`]; how many.
    pub(crate) fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        self.got.clear();
        #[cfg(target_os = "linux")]
        linux::recv_some(socket, &mut self.bufs, &mut self.got)?;
        #[cfg(not(target_os = "linux"))]
        {
            let (n, from) = socket.recv_from(&mut self.bufs[0])?;
            self.got.push((from, n));
        }
        Ok(self.got.len())
    }

    /// The datagrams of the last [`RecvBatch::recv`]: where each came from, and its bytes.
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.got
            .iter()
            .zip(&self.bufs)
            .map(|((from, n), buf)| (*from, &buf[..*n]))
    }
}

fn send_one(socket: &UdpSocket, to: SocketAddr, data: &[u8]) {
    if let Err(e) = socket.send_to(data, to) {
        trace!("send to {to} failed: {e}");
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::mem::{size_of, zeroed};
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    use tracing::{debug, trace};

    use super::send_one;

    /// Messages per `sendmmsg` call.
    const CHUNK: usize = 256;
    /// Most segments in one GSO message (the kernel allows 64).
    const MAX_SEGMENTS: usize = 32;
    /// Most bytes in one GSO message (one IP datagram's payload).
    const MAX_GSO_BYTES: usize = 65_000;

    /// Cleared when the kernel refuses GSO; runs are then sent as separate messages.
    static GSO: AtomicBool = AtomicBool::new(true);

    /// A control message buffer holding one `UDP_SEGMENT` (u16), aligned for `cmsghdr`.
    type Cmsg = [u64; 4];

    /// Length of the run starting at `queue[0]` that may go out as one GSO message: same
    /// destination, every segment the size of the first except a shorter last one.
    fn run_len(queue: &[(SocketAddr, &[u8])]) -> usize {
        let (to, first) = (&queue[0].0, queue[0].1.len());
        if !GSO.load(Relaxed) || first == 0 {
            return 1;
        }
        let mut n = 1;
        let mut bytes = first;
        while n < queue.len() && n < MAX_SEGMENTS {
            let (addr, data) = &queue[n];
            if addr != to
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

    fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: an all-zero sockaddr_storage is valid; the family-specific view written
        // below fits inside it.
        let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
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
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_in6 is smaller than sockaddr_storage.
                unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        (storage, len as libc::socklen_t)
    }

    /// The address in `storage` (as the kernel filled it for a datagram's source).
    fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
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

    /// Reads up to `bufs.len()` datagrams with one `recvmmsg` (waiting for the first, up to
    /// the socket's read timeout), noting each one's source and length in `got`.
    pub(super) fn recv_some(
        socket: &UdpSocket,
        bufs: &mut [[u8; super::RECV_BUF]],
        got: &mut Vec<(SocketAddr, usize)>,
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
                m
            })
            .collect();
        // SAFETY: `msgs` point into `addrs`, `iovs` and `bufs`, alive and unmoved during the
        // call; the kernel writes at most the lengths given.
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
                got.push((from, m.msg_len as usize));
            }
        }
        Ok(())
    }

    /// Sends `queue` with `sendmmsg`, GSO runs as one message each.
    pub(super) fn send_all(socket: &UdpSocket, queue: &[(SocketAddr, &[u8])]) {
        // Runs as (start, length) in `queue`.
        let mut runs = Vec::new();
        let mut at = 0;
        while at < queue.len() {
            let n = run_len(&queue[at..]);
            runs.push((at, n));
            at += n;
        }
        for chunk in runs.chunks(CHUNK) {
            send_chunk(socket, queue, chunk);
        }
    }

    fn send_chunk(socket: &UdpSocket, queue: &[(SocketAddr, &[u8])], runs: &[(usize, usize)]) {
        // Every buffer is filled before any pointer into it is taken: none reallocates after.
        let mut addrs = Vec::with_capacity(runs.len());
        let mut iovs = Vec::with_capacity(runs.iter().map(|r| r.1).sum());
        let mut cmsgs: Vec<Cmsg> = vec![[0; 4]; runs.len()];
        for &(start, n) in runs {
            addrs.push(sockaddr(&queue[start].0));
            for (_, data) in &queue[start..start + n] {
                iovs.push(libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                });
            }
        }
        let mut msgs = Vec::with_capacity(runs.len());
        let mut iov_at = 0;
        for (i, &(start, n)) in runs.iter().enumerate() {
            // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
            let mut m: libc::mmsghdr = unsafe { zeroed() };
            m.msg_hdr.msg_name = (&raw mut addrs[i].0).cast();
            m.msg_hdr.msg_namelen = addrs[i].1;
            m.msg_hdr.msg_iov = iovs[iov_at..].as_mut_ptr();
            m.msg_hdr.msg_iovlen = n as _;
            iov_at += n;
            if n > 1 {
                let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
                m.msg_hdr.msg_control = cmsgs[i].as_mut_ptr().cast();
                m.msg_hdr.msg_controllen = space as _;
                // SAFETY: the control buffer is 32 aligned bytes, enough for one cmsghdr with
                // a u16 (CMSG_SPACE(2) = 24 on 64-bit Linux); msg_control points at it.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(
                        libc::CMSG_DATA(c).cast::<u16>(),
                        queue[start].1.len() as u16,
                    );
                }
            }
            msgs.push(m);
        }
        let fd = socket.as_raw_fd();
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
                for (to, data) in &queue[start..start + n] {
                    send_one(socket, *to, data);
                }
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
            let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
            let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
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
    use super::*;

    #[test]
    fn recv_batch_reads_what_arrived_with_its_sources() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let to = rx.local_addr().unwrap();
        let (a, b) = (
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
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
        let from_a: Vec<_> = seen
            .iter()
            .filter(|(f, _)| *f == a.local_addr().unwrap())
            .collect();
        assert_eq!(from_a.len(), 3);
        assert!(
            from_a
                .iter()
                .enumerate()
                .all(|(i, (_, d))| d == &vec![i as u8; 100])
        );
        assert!(
            seen.iter()
                .filter(|(f, _)| *f == b.local_addr().unwrap())
                .all(|(_, d)| d.len() == 1500)
        );
        rx.set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        assert!(batch.recv(&rx).is_err(), "nothing more: the read times out");
    }

    #[test]
    fn send_batch_delivers_every_datagram_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut out = SendBatch::default();
        let sizes = [1200, 1200, 1200, 700, 90, 1200, 1200];
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        for (i, n) in sizes.iter().enumerate() {
            out.push(to, &vec![i as u8; *n]);
            // Interleaved datagrams to another destination do not break the order or the runs.
            out.push(other.local_addr().unwrap(), &[0xEE; 50]);
        }
        out.send(&tx);
        let mut buf = [0u8; 2048];
        for (i, n) in sizes.iter().enumerate() {
            let got = rx.recv(&mut buf).unwrap();
            assert_eq!(got, *n, "datagram {i} keeps its size");
            assert!(buf[..got].iter().all(|b| *b == i as u8));
        }
    }
}
