// netbird_native: the few OS calls Node cannot make by itself, for the data path.
//
//  - TUN: open /dev/net/tun with TUNSETIFF (IFF_TUN | IFF_NO_PI), nonblocking.
//  - UDP: a dual-stack socket with large buffers, recvmmsg/sendmmsg.
//  - Reader: a uv_poll on the main loop that drains an fd (read() for TUN,
//    recvmmsg() for UDP) into one preallocated JS buffer until EAGAIN or the
//    batch is full, then makes ONE call into JS with the packet count. This is
//    the batching that plain fs.read cannot do (fs.read also parks a libuv
//    worker thread per read).
//  - Writers: one JS->C call writes a whole batch (write() loop for TUN,
//    sendmmsg() for UDP).
//
// Address layout shared with JS (src/tun/udp.ts), ADDR_SIZE bytes per packet:
//   [0] family: 4 or 6   [1] unused   [2..3] port (network order)
//   [4..7] IPv4 address, or [4..19] IPv6 address   [20..23] IPv6 scope id (host order)
// IPv4-mapped IPv6 source addresses (dual-stack socket) are reported as family 4.

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

namespace {

// struct virtio_net_hdr of <linux/virtio_net.h> (that header does not compile as C++:
// it has a member named "class"). Native endianness, as TUN uses by default.
struct virtio_net_hdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV4 = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV6 = 4;
constexpr uint8_t VIRTIO_NET_HDR_GSO_ECN = 0x80;

constexpr size_t ADDR_SIZE = 24;
constexpr uint32_t MAX_BATCH = 1024;

Napi::Error ErrnoError(Napi::Env env, const char* what, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(what) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, err == EPERM ? "EPERM" : err == EACCES ? "EACCES" : err == EBUSY ? "EBUSY" : "ESYSCALL"));
  return e;
}

// Waits (briefly, blocking the loop) until fd is writable; used only when a
// kernel queue is full, which with multi-MiB buffers is rare. Dropping right
// away would turn every short burst into loss and TCP back-off.
bool WaitWritable(int fd, int timeoutMs) {
  struct pollfd p = {fd, POLLOUT, 0};
  int r;
  do { r = poll(&p, 1, timeoutMs); } while (r < 0 && errno == EINTR);
  return r > 0;
}

// ---- TUN -------------------------------------------------------------------

// tunOpen(name: string, multiQueue: boolean, offload: boolean) -> { fd, name, vnet, tso }
// offload: IFF_VNET_HDR + TUNSETOFFLOAD(CSUM|TSO4|TSO6): the kernel may hand us TCP
// super-packets of up to 64 KiB (one read instead of ~45) and packets whose checksum
// is left for us to finish; the reader splits and completes them (SplitTso below).
Napi::Value TunOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  bool mq = info.Length() > 1 && info[1].ToBoolean().Value();
  bool offload = info.Length() > 2 && info[2].ToBoolean().Value();
  if (name.size() >= IFNAMSIZ) {
    Napi::TypeError::New(env, "interface name longer than 15 characters").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    ErrnoError(env, "open /dev/net/tun", errno).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (mq ? IFF_MULTI_QUEUE : 0) | (offload ? IFF_VNET_HDR : 0);
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    ErrnoError(env, "TUNSETIFF", err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool tso = false;
  if (offload) {
    int hdrsz = sizeof(virtio_net_hdr);
    ioctl(fd, TUNSETVNETHDRSZ, &hdrsz);
    unsigned int feat = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    if (ioctl(fd, TUNSETOFFLOAD, feat) == 0) tso = true;
    else if (ioctl(fd, TUNSETOFFLOAD, (unsigned int)TUN_F_CSUM) != 0) ioctl(fd, TUNSETOFFLOAD, 0u);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("name", Napi::String::New(env, ifr.ifr_name));
  out.Set("vnet", Napi::Boolean::New(env, offload));
  out.Set("tso", Napi::Boolean::New(env, tso));
  return out;
}

// ---- TUN offload helpers ---------------------------------------------------

// Ones' complement sum of p[0..len) added to sum (not folded).
uint64_t CsumAdd(const uint8_t* p, size_t len, uint64_t sum) {
  while (len >= 2) {
    sum += (uint32_t)((p[0] << 8) | p[1]);
    p += 2;
    len -= 2;
  }
  if (len) sum += (uint32_t)(p[0] << 8);
  return sum;
}

uint16_t CsumFold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

inline void Put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}
inline uint16_t Get16(const uint8_t* p) { return (uint16_t)((p[0] << 8) | p[1]); }
inline uint32_t Get32(const uint8_t* p) { return ((uint32_t)p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]; }
inline void Put32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = (v >> 16) & 0xff;
  p[2] = (v >> 8) & 0xff;
  p[3] = v & 0xff;
}

// Finishes a checksum the kernel left partial (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field at
// start+offset holds the pseudo-header sum; the sum over [start, len) goes there.
bool FinishCsum(uint8_t* pkt, size_t len, uint16_t start, uint16_t offset) {
  if ((size_t)start + offset + 2 > len) return false;
  uint16_t c = CsumFold(CsumAdd(pkt + start, len - start, 0));
  Put16(pkt + start + offset, c);
  return true;
}

// Writes the TCP checksum of the IPv4/IPv6 packet seg (TCP header at l4, length len).
void TcpChecksum(uint8_t* seg, size_t l4, size_t len, bool v6) {
  uint64_t sum = 0;
  if (v6) sum = CsumAdd(seg + 8, 32, 0);
  else sum = CsumAdd(seg + 12, 8, 0);
  sum += 6 + (uint32_t)(len - l4);
  Put16(seg + l4 + 16, 0);
  sum = CsumAdd(seg + l4, len - l4, sum);
  Put16(seg + l4 + 16, CsumFold(sum));
}

// closeFd(fd)
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

// Writes one frame given as iovecs, retrying briefly when the queue is full. Returns 0 or errno.
int WriteFrame(int fd, const iovec* iov, int cnt) {
  for (int tries = 0; tries < 3; tries++) {
    ssize_t n = writev(fd, iov, cnt);
    if (n >= 0) return 0;
    if (errno == EINTR) { tries--; continue; }
    if (errno == EAGAIN && WaitWritable(fd, 5)) continue;
    return errno;
  }
  return EAGAIN;
}

// A TCP segment that may be coalesced with its neighbours before writing to the TUN.
struct TcpSeg {
  bool v6;
  size_t l4, hl, plen;
  uint32_t seq;
  uint8_t flags;
};

// Plain IPv4 (no options, not a fragment) or IPv6 (no extension headers) TCP with payload
// and only ACK (+PSH) set: the shapes Linux GRO merges too.
bool ParseTcpSeg(const uint8_t* p, size_t len, TcpSeg& t) {
  if (len < 40) return false;
  int v = p[0] >> 4;
  if (v == 4) {
    if ((p[0] & 15) != 5 || p[9] != 6 || Get16(p + 2) != len || (Get16(p + 6) & 0x3fff) != 0) return false;
    t.v6 = false;
    t.l4 = 20;
  } else if (v == 6) {
    if (len < 60 || p[6] != 6 || (size_t)Get16(p + 4) + 40 != len) return false;
    t.v6 = true;
    t.l4 = 40;
  } else {
    return false;
  }
  size_t thl = (p[t.l4 + 12] >> 4) * 4;
  if (thl < 20 || t.l4 + thl >= len) return false;
  t.flags = p[t.l4 + 13];
  if ((t.flags & ~(0x10 | 0x08)) != 0 || !(t.flags & 0x10)) return false;
  t.hl = t.l4 + thl;
  t.plen = len - t.hl;
  t.seq = Get32(p + t.l4 + 4);
  return true;
}

// Same flow and same headers apart from lengths, IDs, sequence numbers, flags and checksums.
bool SameFlow(const uint8_t* a, const TcpSeg& ta, const uint8_t* b, const TcpSeg& tb) {
  if (ta.v6 != tb.v6 || ta.hl != tb.hl) return false;
  if (!ta.v6) {
    if (memcmp(a, b, 2) != 0 || memcmp(a + 6, b + 6, 4) != 0 || memcmp(a + 12, b + 12, 8) != 0) return false;
  } else {
    if (memcmp(a, b, 4) != 0 || memcmp(a + 6, b + 6, 34) != 0) return false;
  }
  size_t l4 = ta.l4;
  if (memcmp(a + l4, b + l4, 4) != 0 || memcmp(a + l4 + 8, b + l4 + 8, 5) != 0) return false;  // ports, ack, data offset
  return memcmp(a + l4 + 20, b + l4 + 20, ta.hl - l4 - 20) == 0;                               // options (timestamps)
}

constexpr uint32_t GRO_MAX_SEGMENTS = 64;
bool tunGroDisabled = false;
// Process-wide counters for tests and diagnostics (main thread only).
double tunGroFrames = 0, tunGroSegments = 0, tunTsoFrames = 0, tunTsoSegments = 0;

// tunOffloadStats() -> { groDisabled, groFrames, groSegments, tsoFrames, tsoSegments }
Napi::Value TunOffloadStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("groDisabled", Napi::Boolean::New(env, tunGroDisabled));
  o.Set("groFrames", Napi::Number::New(env, tunGroFrames));
  o.Set("groSegments", Napi::Number::New(env, tunGroSegments));
  o.Set("tsoFrames", Napi::Number::New(env, tunTsoFrames));
  o.Set("tsoSegments", Napi::Number::New(env, tunTsoSegments));
  return o;
}

// tunWrite(fd, buf, offsets, lengths, count, vnet, gro) -> packets written
// vnet: the device was opened with IFF_VNET_HDR, so each frame starts with a virtio-net
// header. gro: consecutive TCP segments of one flow are merged into one GSO frame (the
// kernel's TCP receive path then runs once per frame, as after GRO on a NIC); payloads are
// gathered with writev straight from the batch buffer.
Napi::Value TunWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto buf = info[1].As<Napi::Uint8Array>();
  auto offs = info[2].As<Napi::Uint32Array>();
  auto lens = info[3].As<Napi::Uint32Array>();
  uint32_t count = info[4].As<Napi::Number>().Uint32Value();
  bool vnet = info.Length() > 5 && info[5].ToBoolean().Value();
  bool gro = vnet && !tunGroDisabled && info.Length() > 6 && info[6].ToBoolean().Value();
  static virtio_net_hdr zeroHdr;
  if (count > offs.ElementLength() || count > lens.ElementLength()) count = 0;
  uint8_t* base = buf.Data();
  size_t blen = buf.ByteLength();
  uint32_t done = 0;
  iovec iov[GRO_MAX_SEGMENTS + 2];
  auto writeOne = [&](uint32_t i) {
    iov[0].iov_base = &zeroHdr;
    iov[0].iov_len = sizeof zeroHdr;
    iov[1].iov_base = base + offs[i];
    iov[1].iov_len = lens[i];
    int err = vnet ? WriteFrame(fd, iov, 2) : WriteFrame(fd, iov + 1, 1);
    if (err == 0) done++;  // EINVAL for a malformed packet, EIO when down: dropped
  };
  uint32_t i = 0;
  while (i < count) {
    if ((size_t)offs[i] + lens[i] > blen) { i++; continue; }
    TcpSeg t0;
    const uint8_t* p0 = base + offs[i];
    if (!gro || !ParseTcpSeg(p0, lens[i], t0)) { writeOne(i++); continue; }
    // Extend a run of segments of this flow that continue each other exactly.
    uint32_t j = i + 1;
    size_t total = t0.plen;
    uint32_t nextSeq = t0.seq + (uint32_t)t0.plen;
    uint8_t lastFlags = t0.flags;
    size_t lastLen = t0.plen;
    while (j < count && j - i < GRO_MAX_SEGMENTS && !(lastFlags & 0x08) && lastLen == t0.plen) {
      if ((size_t)offs[j] + lens[j] > blen) break;
      const uint8_t* pj = base + offs[j];
      TcpSeg tj;
      if (!ParseTcpSeg(pj, lens[j], tj) || tj.seq != nextSeq || tj.plen > t0.plen || t0.hl + total + tj.plen > 65535) break;
      if (!SameFlow(p0, t0, pj, tj)) break;
      total += tj.plen;
      nextSeq += (uint32_t)tj.plen;
      lastFlags = tj.flags;
      lastLen = tj.plen;
      j++;
    }
    if (j == i + 1) { writeOne(i++); continue; }
    // One GSO frame: virtio header, the first segment's headers fixed up, all payloads.
    uint8_t hdr[120];
    memcpy(hdr, p0, t0.hl);
    size_t l4 = t0.l4;
    if (!t0.v6) {
      Put16(hdr + 2, (uint16_t)(t0.hl + total));
      Put16(hdr + 10, 0);
      Put16(hdr + 10, CsumFold(CsumAdd(hdr, 20, 0)));
    } else {
      Put16(hdr + 4, (uint16_t)(t0.hl - 40 + total));
    }
    hdr[l4 + 13] = (uint8_t)(t0.flags | (lastFlags & 0x08));
    // Checksum field: pseudo-header sum (not inverted), the rest left to the kernel (NEEDS_CSUM).
    uint64_t ps = t0.v6 ? CsumAdd(hdr + 8, 32, 0) : CsumAdd(hdr + 12, 8, 0);
    ps += 6 + (uint32_t)(t0.hl - l4 + total);
    Put16(hdr + l4 + 16, (uint16_t)~CsumFold(ps));
    virtio_net_hdr vh;
    vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    vh.gso_type = t0.v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
    vh.hdr_len = (uint16_t)t0.hl;
    vh.gso_size = (uint16_t)t0.plen;
    vh.csum_start = (uint16_t)l4;
    vh.csum_offset = 16;
    iov[0].iov_base = &vh;
    iov[0].iov_len = sizeof vh;
    iov[1].iov_base = hdr;
    iov[1].iov_len = t0.hl;
    int c = 2;
    for (uint32_t k = i; k < j; k++) {
      const uint8_t* pk = base + offs[k];
      size_t hl = t0.hl;
      iov[c].iov_base = const_cast<uint8_t*>(pk + hl);
      iov[c].iov_len = lens[k] - hl;
      c++;
    }
    int err = WriteFrame(fd, iov, c);
    if (err == 0) {
      done += j - i;
      tunGroFrames++;
      tunGroSegments += j - i;
    } else if (err == EINVAL) {
      // This kernel refuses our GSO frames: write segments one by one from now on.
      tunGroDisabled = true;
      for (uint32_t k = i; k < j; k++) writeOne(k);
    }
    i = j;
  }
  return Napi::Number::New(env, done);
}

// ---- network namespaces -----------------------------------------------------

// setNetns(fd): moves the CALLING thread (Node's main thread) into the network
// namespace open at fd. JS uses it to create a TUN device or a socket inside a
// lab namespace and then switches back at once (all synchronously, so no other
// JS runs in between). Objects keep the namespace they were created in.
Napi::Value SetNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (setns(fd, CLONE_NEWNET) < 0) ErrnoError(env, "setns", errno).ThrowAsJavaScriptException();
  return env.Undefined();
}

// ---- UDP -------------------------------------------------------------------

void SetBuf(int fd, int force, int plain, int size) {
  // *BUFFORCE ignores net.core.[rw]mem_max but needs CAP_NET_ADMIN.
  if (setsockopt(fd, SOL_SOCKET, force, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, plain, &size, sizeof size);
}

// udpOpen(host: string ('' = dual-stack any), port, bufBytes) -> { fd, port, family }
Napi::Value UdpOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int bufBytes = info[2].As<Napi::Number>().Int32Value();
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t slen;
  int family;
  struct in_addr a4;
  struct in6_addr a6;
  if (!host.empty() && inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    family = AF_INET;
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    s->sin_addr = a4;
    slen = sizeof *s;
  } else {
    if (host.empty()) a6 = in6addr_any;
    else if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
      Napi::TypeError::New(env, "not an IP address: " + host).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    family = AF_INET6;
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    s->sin6_addr = a6;
    slen = sizeof *s;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ErrnoError(env, "socket", errno).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (family == AF_INET6) {
    int v6only = host.empty() ? 0 : 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (bufBytes > 0) {
    SetBuf(fd, SO_RCVBUFFORCE, SO_RCVBUF, bufBytes);
    SetBuf(fd, SO_SNDBUFFORCE, SO_SNDBUF, bufBytes);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), slen) < 0) {
    int err = errno;
    close(fd);
    ErrnoError(env, "bind UDP", err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  socklen_t gl = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &gl);
  int bound = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port)
                                : ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  int rcv = 0, snd = 0;
  socklen_t ol = sizeof rcv;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, &ol);
  ol = sizeof snd;
  getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, &ol);
  Napi::Object out = Napi::Object::New(env);
  out.Set("fd", Napi::Number::New(env, fd));
  out.Set("port", Napi::Number::New(env, bound));
  out.Set("family", Napi::Number::New(env, family == AF_INET ? 4 : 6));
  out.Set("rcvbuf", Napi::Number::New(env, rcv));
  out.Set("sndbuf", Napi::Number::New(env, snd));
  return out;
}

void DecodeAddr(const sockaddr_storage& ss, uint8_t* a) {
  memset(a, 0, ADDR_SIZE);
  if (ss.ss_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
    a[0] = 4;
    memcpy(a + 2, &s->sin_port, 2);
    memcpy(a + 4, &s->sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
    memcpy(a + 2, &s->sin6_port, 2);
    if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
      a[0] = 4;
      memcpy(a + 4, s->sin6_addr.s6_addr + 12, 4);
    } else {
      a[0] = 6;
      memcpy(a + 4, &s->sin6_addr, 16);
      memcpy(a + 20, &s->sin6_scope_id, 4);
    }
  }
}

// Encodes for a socket of `sockFamily`; returns 0 if the address cannot be sent there.
socklen_t EncodeAddr(const uint8_t* a, int sockFamily, sockaddr_storage* ss) {
  memset(ss, 0, sizeof(sockaddr_in6));
  if (sockFamily == 4) {
    if (a[0] != 4) return 0;
    auto* s = reinterpret_cast<sockaddr_in*>(ss);
    s->sin_family = AF_INET;
    memcpy(&s->sin_port, a + 2, 2);
    memcpy(&s->sin_addr, a + 4, 4);
    return sizeof *s;
  }
  auto* s = reinterpret_cast<sockaddr_in6*>(ss);
  s->sin6_family = AF_INET6;
  memcpy(&s->sin6_port, a + 2, 2);
  if (a[0] == 4) {
    s->sin6_addr.s6_addr[10] = 0xff;
    s->sin6_addr.s6_addr[11] = 0xff;
    memcpy(s->sin6_addr.s6_addr + 12, a + 4, 4);
  } else if (a[0] == 6) {
    memcpy(&s->sin6_addr, a + 4, 16);
    memcpy(&s->sin6_scope_id, a + 20, 4);
  } else {
    return 0;
  }
  return sizeof *s;
}

// UdpSender: keeps the mmsghdr/iovec/sockaddr arrays between calls so a send
// allocates nothing.
// UDP_SEGMENT (GSO) limits: segments per send and bytes per super-datagram.
constexpr uint32_t GSO_MAX_SEGMENTS = 64;
constexpr uint32_t GSO_MAX_BYTES = 65000;
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

// UdpSender: keeps the mmsghdr/iovec/sockaddr arrays between calls so a send
// allocates nothing. With GSO on, runs of packets to the same destination with
// equal length (the last may be shorter) go out as ONE datagram carrying a
// UDP_SEGMENT control message; the kernel (or NIC) cuts it back into packets
// after the UDP/IP layers, so those layers run once per run instead of once
// per packet. The receiver sees ordinary datagrams.
class UdpSender : public Napi::ObjectWrap<UdpSender> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "UdpSender", {InstanceMethod("send", &UdpSender::Send), InstanceAccessor("gso", &UdpSender::GetGso, nullptr)});
  }
  // new UdpSender(fd, family, gso)
  explicit UdpSender(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UdpSender>(info) {
    fd_ = info[0].As<Napi::Number>().Int32Value();
    family_ = info[1].As<Napi::Number>().Int32Value();
    gso_ = info.Length() > 2 && info[2].ToBoolean().Value();
  }

 private:
  Napi::Value GetGso(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), gso_); }

  // Builds messages for packets [from, count); returns the number of messages.
  uint32_t Build(uint8_t* base, size_t blen, const uint32_t* offs, const uint32_t* lens, const uint8_t* addrs, uint32_t from,
                 uint32_t count) {
    uint32_t m = 0, k = 0;
    uint32_t i = from;
    while (i < count) {
      uint32_t o = offs[i], l = lens[i];
      const uint8_t* a = addrs + i * ADDR_SIZE;
      socklen_t sl = ((size_t)o + l > blen || l == 0) ? 0 : EncodeAddr(a, family_, &sa_[m]);
      if (sl == 0) { i++; continue; }
      msgFirst_[m] = i;
      mmsghdr& mh = msgs_[m];
      memset(&mh, 0, sizeof mh);
      mh.msg_hdr.msg_name = &sa_[m];
      mh.msg_hdr.msg_namelen = sl;
      mh.msg_hdr.msg_iov = &iov_[k];
      iov_[k].iov_base = base + o;
      iov_[k].iov_len = l;
      k++;
      uint32_t segs = 1, total = l;
      i++;
      if (gso_) {
        // Extend the run: same destination, same size (a shorter one ends it), within limits.
        while (i < count && segs < GSO_MAX_SEGMENTS) {
          uint32_t o2 = offs[i], l2 = lens[i];
          if (l2 > l || l2 == 0 || (size_t)o2 + l2 > blen || total + l2 > GSO_MAX_BYTES) break;
          if (memcmp(addrs + i * ADDR_SIZE, a, ADDR_SIZE) != 0) break;
          iov_[k].iov_base = base + o2;
          iov_[k].iov_len = l2;
          k++;
          segs++;
          total += l2;
          i++;
          if (l2 < l) break;
        }
      }
      mh.msg_hdr.msg_iovlen = segs;
      msgSegs_[m] = segs;
      if (segs > 1) {
        mh.msg_hdr.msg_control = ctl_[m].buf;
        mh.msg_hdr.msg_controllen = sizeof ctl_[m].buf;
        cmsghdr* c = CMSG_FIRSTHDR(&mh.msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gsoSize = (uint16_t)l;
        memcpy(CMSG_DATA(c), &gsoSize, sizeof gsoSize);
      }
      m++;
    }
    return m;
  }

  // send(buf, offsets, lengths, count, addrs) -> packets sent
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto buf = info[0].As<Napi::Uint8Array>();
    auto offs = info[1].As<Napi::Uint32Array>();
    auto lens = info[2].As<Napi::Uint32Array>();
    uint32_t count = info[3].As<Napi::Number>().Uint32Value();
    auto addrs = info[4].As<Napi::Uint8Array>();
    if (count > offs.ElementLength() || count > lens.ElementLength() || (size_t)count * ADDR_SIZE > addrs.ByteLength())
      count = 0;
    if (count > MAX_BATCH) count = MAX_BATCH;
    if (msgs_.size() < count) {
      msgs_.resize(count);
      iov_.resize(count);
      sa_.resize(count);
      ctl_.resize(count);
      msgFirst_.resize(count);
      msgSegs_.resize(count);
    }
    uint8_t* base = buf.Data();
    size_t blen = buf.ByteLength();
    uint32_t n = Build(base, blen, offs.Data(), lens.Data(), addrs.Data(), 0, count);
    uint32_t sent = 0, packets = 0;
    int waits = 0;
    while (sent < n) {
      int r = sendmmsg(fd_, &msgs_[sent], n - sent, 0);
      if (r > 0) {
        for (int j = 0; j < r; j++) packets += msgSegs_[sent + j];
        sent += r;
        continue;
      }
      int err = errno;
      if (r < 0 && err == EINTR) continue;
      if (r < 0 && err == EAGAIN && waits++ < 20 && WaitWritable(fd_, 2)) continue;
      if (r < 0 && gso_ && msgSegs_[sent] > 1 && (err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP)) {
        // No GSO on this path (e.g. a device without checksum offload): turn it off for good and
        // rebuild the rest as plain datagrams.
        gso_ = false;
        n = Build(base, blen, offs.Data(), lens.Data(), addrs.Data(), msgFirst_[sent], count);
        sent = 0;
        continue;
      }
      if (r < 0 && err != EAGAIN) {
        // One bad destination (e.g. EHOSTUNREACH, ENETUNREACH) must not stall the rest.
        sent++;
        continue;
      }
      break;
    }
    return Napi::Number::New(env, packets);
  }

  struct Ctl {
    alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(uint16_t))];
  };
  int fd_;
  int family_;
  bool gso_ = false;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_;
  std::vector<sockaddr_storage> sa_;
  std::vector<Ctl> ctl_;
  std::vector<uint32_t> msgFirst_;
  std::vector<uint32_t> msgSegs_;
};

// ---- Reader ----------------------------------------------------------------

// Reader drains a nonblocking fd whenever it is readable.
// new Reader(mode: 'tun' | 'udp' | 'udp-gro', fd, buf, offsets, slotSize, lengths, addrs|null, maxBatch, callback(count))
// 'tun', 'udp': packet i is written at buf[offsets[i] .. offsets[i] + slotSize); its length goes to lengths[i].
// 'udp-gro': the socket has UDP_GRO on, so one datagram may hold several packets of gso_size bytes
//   (the last may be shorter). Datagram j is received into buf[j * slotSize ..] (slotSize >= 64 KiB),
//   split here, and packet i described by offsets[i]/lengths[i]/addrs[i] (outputs; their capacity
//   bounds the packets per callback).
class Reader : public Napi::ObjectWrap<Reader> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Reader", {InstanceMethod("start", &Reader::Start), InstanceMethod("stop", &Reader::Stop)});
  }

  explicit Reader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Reader>(info) {
    Napi::Env env = info.Env();
    std::string mode = info[0].As<Napi::String>().Utf8Value();
    udp_ = mode == "udp" || mode == "udp-gro";
    gro_ = mode == "udp-gro";
    vnet_ = mode == "tun-vnet";
    if (vnet_) scratch_.resize(sizeof(virtio_net_hdr) + 65536);
    fd_ = info[1].As<Napi::Number>().Int32Value();
    auto buf = info[2].As<Napi::Uint8Array>();
    auto offs = info[3].As<Napi::Uint32Array>();
    slot_ = info[4].As<Napi::Number>().Uint32Value();
    auto lens = info[5].As<Napi::Uint32Array>();
    max_ = info[7].As<Napi::Number>().Uint32Value();
    if (max_ > MAX_BATCH) max_ = MAX_BATCH;
    cap_ = offs.ElementLength() < lens.ElementLength() ? offs.ElementLength() : lens.ElementLength();
    if (max_ > cap_) max_ = cap_;
    for (uint32_t i = 0; i < max_; i++) {
      size_t at = gro_ ? (size_t)i * slot_ : offs[i];
      if (at + slot_ > buf.ByteLength()) {
        Napi::RangeError::New(env, "slot outside buffer").ThrowAsJavaScriptException();
        return;
      }
    }
    if (udp_) {
      auto addrs = info[6].As<Napi::Uint8Array>();
      if (addrs.ByteLength() < (gro_ ? cap_ : max_) * ADDR_SIZE) {
        Napi::RangeError::New(env, "address buffer too small").ThrowAsJavaScriptException();
        return;
      }
      addrs_ = addrs.Data();
      addrsRef_ = Napi::Persistent(addrs);
    }
    base_ = buf.Data();
    offs_ = offs.Data();
    lens_ = lens.Data();
    bufRef_ = Napi::Persistent(buf);
    offsRef_ = Napi::Persistent(offs);
    lensRef_ = Napi::Persistent(lens);
    cb_ = Napi::Persistent(info[8].As<Napi::Function>());
    if (udp_) {
      msgs_.resize(max_);
      iov_.resize(max_);
      sa_.resize(max_);
      ctl_.resize(max_);
      for (uint32_t i = 0; i < max_; i++) {
        iov_[i].iov_base = base_ + (gro_ ? (size_t)i * slot_ : offs_[i]);
        iov_[i].iov_len = slot_;
      }
    }
    poll_ = new uv_poll_t;
    poll_->data = this;
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      Napi::Error::New(env, "uv_poll_init failed").ThrowAsJavaScriptException();
    }
  }

  ~Reader() override { Close(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (poll_ && !active_) {
      active_ = true;
      Ref();  // keep the wrapper alive while polling
      uv_poll_start(poll_, UV_READABLE, OnReadable);
    }
    return info.Env().Undefined();
  }

  // stop(): stops polling for good and releases the poll handle. Does not close the fd.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }

  void Close() {
    if (!poll_) return;
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
    if (active_) {
      active_ = false;
      Unref();
    }
  }

  static void OnReadable(uv_poll_t* h, int status, int events) {
    Reader* self = static_cast<Reader*>(h->data);
    if (status < 0) return;
    self->Drain();
  }

  uint32_t ReadTun() {
    uint32_t n = 0;
    while (n < max_) {
      ssize_t r = read(fd_, base_ + offs_[n], slot_);
      if (r < 0) {
        if (errno == EINTR) continue;
        break;  // EAGAIN: drained
      }
      lens_[n++] = (uint32_t)r;
    }
    return n;
  }

  // Copies packet segments of the super-packet in scratch_ into slots, from payload offset
  // pendPos_, until done (returns true) or the slots run out (keeps the rest pending).
  bool SplitTso(uint32_t& n) {
    const virtio_net_hdr* h = reinterpret_cast<const virtio_net_hdr*>(scratch_.data());
    uint8_t* pkt = scratch_.data() + sizeof(virtio_net_hdr);
    size_t len = pendLen_;
    bool v6 = h->gso_type == VIRTIO_NET_HDR_GSO_TCPV6 || (h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV6;
    size_t l4;
    if (!v6) {
      if (len < 20 || (pkt[0] >> 4) != 4 || pkt[9] != 6) return true;  // not TCPv4: drop
      l4 = (pkt[0] & 15) * 4;
    } else {
      if (len < 40 || (pkt[0] >> 4) != 6 || pkt[6] != 6) return true;  // extension headers: drop
      l4 = 40;
    }
    if (len < l4 + 20) return true;
    size_t hl = l4 + (pkt[l4 + 12] >> 4) * 4;
    uint32_t mss = h->gso_size;
    if (hl > len || mss == 0 || hl + mss > slot_) return true;
    uint32_t seq0 = Get32(pkt + l4 + 4);
    uint16_t id0 = v6 ? 0 : Get16(pkt + 4);
    uint8_t flags0 = pkt[l4 + 13];
    size_t payload = len - hl;
    while (pendPos_ < payload) {
      if (n >= max_) return false;
      size_t chunk = payload - pendPos_ < mss ? payload - pendPos_ : mss;
      bool first = pendPos_ == 0, last = pendPos_ + chunk == payload;
      uint8_t* seg = base_ + offs_[n];
      memcpy(seg, pkt, hl);
      memcpy(seg + hl, pkt + hl + pendPos_, chunk);
      size_t slen = hl + chunk;
      if (!v6) {
        Put16(seg + 2, (uint16_t)slen);
        Put16(seg + 4, (uint16_t)(id0 + pendPos_ / mss));
        Put16(seg + 10, 0);
        Put16(seg + 10, CsumFold(CsumAdd(seg, l4, 0)));
      } else {
        Put16(seg + 4, (uint16_t)(slen - 40));
      }
      Put32(seg + l4 + 4, seq0 + (uint32_t)pendPos_);
      uint8_t f = flags0;
      if (!last) f &= ~(0x01 | 0x08);  // FIN, PSH only on the last segment
      if (!first) f &= ~0x80;          // CWR only on the first
      seg[l4 + 13] = f;
      TcpChecksum(seg, l4, slen, v6);
      lens_[n++] = (uint32_t)slen;
      tunTsoSegments++;
      pendPos_ += chunk;
    }
    return true;
  }

  uint32_t ReadTunVnet() {
    uint32_t n = 0;
    if (pending_) {
      if (!SplitTso(n)) return n;
      pending_ = false;
    }
    const size_t hs = sizeof(virtio_net_hdr);
    while (n < max_) {
      ssize_t r = read(fd_, scratch_.data(), scratch_.size());
      if (r < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if ((size_t)r <= hs) continue;
      const virtio_net_hdr* h = reinterpret_cast<const virtio_net_hdr*>(scratch_.data());
      uint8_t* pkt = scratch_.data() + hs;
      size_t len = r - hs;
      if ((h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_NONE) {
        if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !FinishCsum(pkt, len, h->csum_start, h->csum_offset)) continue;
        if (len > slot_) continue;
        memcpy(base_ + offs_[n], pkt, len);
        lens_[n++] = (uint32_t)len;
        continue;
      }
      pendLen_ = len;
      pendPos_ = 0;
      tunTsoFrames++;
      if (!SplitTso(n)) {
        pending_ = true;
        break;
      }
    }
    return n;
  }

  uint32_t ReadUdp() {
    for (uint32_t i = 0; i < max_; i++) {
      memset(&msgs_[i].msg_hdr, 0, sizeof msgs_[i].msg_hdr);
      msgs_[i].msg_hdr.msg_name = &sa_[i];
      msgs_[i].msg_hdr.msg_namelen = sizeof sa_[i];
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      if (gro_) {
        msgs_[i].msg_hdr.msg_control = ctl_[i].buf;
        msgs_[i].msg_hdr.msg_controllen = sizeof ctl_[i].buf;
      }
    }
    int r;
    do { r = recvmmsg(fd_, msgs_.data(), max_, MSG_DONTWAIT, nullptr); } while (r < 0 && errno == EINTR);
    if (r <= 0) return 0;
    uint32_t n = 0;
    if (gro_) {
      for (int i = 0; i < r; i++) {
        msghdr& h = msgs_[i].msg_hdr;
        if (h.msg_flags & MSG_TRUNC) continue;
        uint32_t len = msgs_[i].msg_len;
        int seg = 0;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c))
          if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) memcpy(&seg, CMSG_DATA(c), sizeof seg);
        if (seg <= 0 || (uint32_t)seg > len) seg = len;
        uint8_t addr[ADDR_SIZE];
        DecodeAddr(sa_[i], addr);
        uint32_t base = (uint32_t)i * slot_;
        for (uint32_t off = 0; off < len && n < cap_; off += seg) {
          offs_[n] = base + off;
          lens_[n] = len - off < (uint32_t)seg ? len - off : (uint32_t)seg;
          memcpy(addrs_ + n * ADDR_SIZE, addr, ADDR_SIZE);
          n++;
        }
      }
      return n;
    }
    for (int i = 0; i < r; i++) {
      if (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) continue;  // larger than a slot: not one of ours
      if (n != (uint32_t)i) memmove(base_ + offs_[n], base_ + offs_[i], msgs_[i].msg_len);
      lens_[n] = msgs_[i].msg_len;
      DecodeAddr(sa_[i], addrs_ + n * ADDR_SIZE);
      n++;
    }
    return n;
  }

  void Drain() {
    // A full batch leaves data behind; libuv polls level-triggered, so we get
    // called again on the next loop iteration (after timers and other I/O had
    // their turn) instead of starving them here. Only a super-packet split
    // halfway (tun-vnet) is finished right away: the kernel queue may be empty
    // now, so no readiness event would bring us back for it. (A 64 KiB
    // super-packet is at most 64 segments, so this adds at most one round.)
    do {
      uint32_t n = udp_ ? ReadUdp() : vnet_ ? ReadTunVnet() : ReadTun();
      if (n == 0 || !Deliver(n)) return;
    } while (vnet_ && pending_);
  }

  // One call into JS with n packets; false if the reader was stopped meanwhile.
  bool Deliver(uint32_t n) {
    Napi::Env env = cb_.Env();
    Napi::HandleScope scope(env);
    napi_value argv[1] = {Napi::Number::New(env, n)};
    // The receiver must be an object for napi_make_callback: use this Reader.
    napi_value recv = Value();
    napi_value result;
    // napi_make_callback runs the nextTick/microtask queues afterwards, like any libuv-driven callback.
    napi_make_callback(env, nullptr, recv, cb_.Value(), 1, argv, &result);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);  // -> process 'uncaughtException'
    }
    return poll_ != nullptr;
  }

  struct Ctl {
    alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(int))];
  };
  bool udp_ = false;
  bool gro_ = false;
  bool vnet_ = false;
  // tun-vnet: one read of up to 64 KiB, and the super-packet being split across batches.
  std::vector<uint8_t> scratch_;
  bool pending_ = false;
  size_t pendLen_ = 0, pendPos_ = 0;
  int fd_ = -1;
  uint32_t slot_ = 0, max_ = 0, cap_ = 0;
  uint8_t* base_ = nullptr;
  uint32_t* offs_ = nullptr;
  uint32_t* lens_ = nullptr;
  uint8_t* addrs_ = nullptr;
  Napi::Reference<Napi::Uint8Array> bufRef_, addrsRef_;
  Napi::Reference<Napi::Uint32Array> offsRef_, lensRef_;
  Napi::FunctionReference cb_;
  uv_poll_t* poll_ = nullptr;
  bool active_ = false;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_;
  std::vector<sockaddr_storage> sa_;
  std::vector<Ctl> ctl_;
};

// udpEnableGro(fd) -> boolean: asks the kernel to coalesce received datagrams (UDP_GRO).
Napi::Value UdpEnableGro(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int one = 1;
  return Napi::Boolean::New(info.Env(), setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("tunOpen", Napi::Function::New(env, TunOpen));
  exports.Set("tunWrite", Napi::Function::New(env, TunWrite));
  exports.Set("tunOffloadStats", Napi::Function::New(env, TunOffloadStats));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("setNetns", Napi::Function::New(env, SetNetns));
  exports.Set("udpOpen", Napi::Function::New(env, UdpOpen));
  exports.Set("udpEnableGro", Napi::Function::New(env, UdpEnableGro));
  exports.Set("UdpSender", UdpSender::Init(env));
  exports.Set("Reader", Reader::Init(env));
  exports.Set("ADDR_SIZE", Napi::Number::New(env, ADDR_SIZE));
  exports.Set("MAX_BATCH", Napi::Number::New(env, MAX_BATCH));
  return exports;
}

}  // namespace

NODE_API_MODULE(netbird_native, Init)
