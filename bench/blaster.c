/* The frame sender bench/live.py compiles (gcc -O2) into a temporary directory and runs:
 * 64-byte Ethernet/IPv4/UDP frames written to an AF_PACKET socket in sendmmsg() batches,
 * paced to a target rate, bounded by a count and by time.
 *   blaster IFACE DST_MAC PPS COUNT SECONDS FLOWS QUIC_EVERY [MODE]
 * MODE 1: every frame is a new flow instead (TCP to 443 from another source address
 * and port, its payload a TLS Handshake record header), the flood that fills flow tables.
 * MODE 2: TLS_FRAME_LEN-byte TCP segments from port 443 of FLOWS connections, each segment
 * one whole TLS record in sequence: a Handshake record first (the TLS analyzer confirms the
 * connection), then Application Data records, which the analyzer walks and the rules cut.
 * Prints "<frames sent> <seconds taken>". */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>

#define FRAME_LEN 64 /* 14 Ethernet + 20 IPv4 + 8 UDP + 22 payload */
#define TLS_FRAME_LEN 576 /* 14 Ethernet + 20 IPv4 + 20 TCP + a 522-byte TLS record */
#define BATCH 64

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static uint16_t checksum(const uint8_t *p, int n) {
    uint32_t sum = 0;
    for (int i = 0; i < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Flow f: 198.18.0.2:(10000+f) -> 198.18.0.1, to UDP 9; every quic_every-th flow (none if 0)
 * to UDP 443 instead, carrying a QUIC-shaped short header (8-byte DCID). */
static void build(uint8_t *frame, const uint8_t *dst, int flow, int quic_every) {
    static const uint8_t src[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x02};
    uint8_t *ip = frame + 14, *udp = ip + 20, *payload = udp + 8;
    int port = quic_every && flow % quic_every == 0 ? 443 : 9;
    memcpy(frame, dst, 6);
    memcpy(frame + 6, src, 6);
    frame[12] = 0x08, frame[13] = 0x00;
    ip[0] = 0x45, ip[2] = 0, ip[3] = FRAME_LEN - 14, ip[8] = 64, ip[9] = 17;
    ip[12] = 198, ip[13] = 18, ip[14] = 0, ip[15] = 2;
    ip[16] = 198, ip[17] = 18, ip[18] = 0, ip[19] = 1;
    uint16_t sum = checksum(ip, 20);
    ip[10] = sum >> 8, ip[11] = sum & 0xFF;
    udp[0] = (10000 + flow) >> 8, udp[1] = (10000 + flow) & 0xFF;
    udp[2] = port >> 8, udp[3] = port & 0xFF;
    udp[4] = 0, udp[5] = FRAME_LEN - 34; /* UDP checksum 0: none */
    payload[0] = 0x43; /* short header, fixed bit, 4-byte packet number */
    memset(payload + 1, 0x5e, 8);
    payload[8] = (uint8_t)flow;
}

/* Frame i of the new-flows flood: 198.18.x.y:(1024 + i % 60000) -> 198.18.0.1:443, where
 * x.y numbers the i / 60000-th block of ports, a TCP ACK|PSH whose payload starts a TLS
 * Handshake record, so the TLS analyzer stores a state for it. */
static void build_new_flow(uint8_t *frame, const uint8_t *dst, long i) {
    static const uint8_t src[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x02};
    uint8_t *ip = frame + 14, *tcp = ip + 20, *payload = tcp + 20;
    long block = 1 + i / 60000;
    int port = 1024 + (int)(i % 60000);
    memset(frame, 0, FRAME_LEN);
    memcpy(frame, dst, 6);
    memcpy(frame + 6, src, 6);
    frame[12] = 0x08, frame[13] = 0x00;
    ip[0] = 0x45, ip[2] = 0, ip[3] = FRAME_LEN - 14, ip[8] = 64, ip[9] = 6;
    ip[12] = 198, ip[13] = 18, ip[14] = (uint8_t)(block >> 8), ip[15] = (uint8_t)block;
    ip[16] = 198, ip[17] = 18, ip[18] = 0, ip[19] = 1;
    uint16_t sum = checksum(ip, 20);
    ip[10] = sum >> 8, ip[11] = sum & 0xFF;
    tcp[0] = port >> 8, tcp[1] = port & 0xFF, tcp[2] = 443 >> 8, tcp[3] = 443 & 0xFF;
    tcp[7] = 1;                      /* seq 1 */
    tcp[12] = 5 << 4, tcp[13] = 0x18; /* 20-byte header, ACK|PSH */
    tcp[14] = 0xFF, tcp[15] = 0xFF;  /* window; checksum left 0: nothing verifies it */
    payload[0] = 0x16, payload[1] = 0x03, payload[2] = 0x01; /* Handshake, TLS 1.0 record */
    payload[3] = 0x00, payload[4] = 0x05, payload[5] = 0x01; /* 5 bytes: a ClientHello start */
}

/* Flow f of MODE 2: 198.18.0.2:443 -> 198.18.0.1:(10000+f), a TCP ACK|PSH carrying one TLS
 * 1.2 record of the rest of the frame; send_tls_segment() sets its type and sequence number. */
static void build_tls(uint8_t *frame, const uint8_t *dst, int flow) {
    static const uint8_t src[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x02};
    uint8_t *ip = frame + 14, *tcp = ip + 20, *record = tcp + 20;
    int record_len = TLS_FRAME_LEN - 54 - 5;
    memset(frame, 0, TLS_FRAME_LEN);
    memcpy(frame, dst, 6);
    memcpy(frame + 6, src, 6);
    frame[12] = 0x08, frame[13] = 0x00;
    ip[0] = 0x45, ip[2] = (TLS_FRAME_LEN - 14) >> 8, ip[3] = (TLS_FRAME_LEN - 14) & 0xFF;
    ip[8] = 64, ip[9] = 6;
    ip[12] = 198, ip[13] = 18, ip[14] = 0, ip[15] = 2;
    ip[16] = 198, ip[17] = 18, ip[18] = 0, ip[19] = 1;
    uint16_t sum = checksum(ip, 20);
    ip[10] = sum >> 8, ip[11] = sum & 0xFF;
    tcp[0] = 443 >> 8, tcp[1] = 443 & 0xFF, tcp[2] = (10000 + flow) >> 8, tcp[3] = (10000 + flow) & 0xFF;
    tcp[12] = 5 << 4, tcp[13] = 0x18; /* 20-byte header, ACK|PSH */
    tcp[14] = 0xFF, tcp[15] = 0xFF;  /* window; checksum left 0: nothing verifies it */
    record[1] = 0x03, record[2] = 0x03; /* TLS 1.2 */
    record[3] = (uint8_t)(record_len >> 8), record[4] = (uint8_t)record_len;
    memset(record + 5, 0xa5, (size_t)record_len);
}

/* The k-th segment of a MODE 2 flow: a Handshake record if k is 0, else Application Data,
 * at sequence number 1 + k * payload length, so every flow's stream is contiguous. */
static void send_tls_segment(uint8_t *frame, long k) {
    uint8_t *tcp = frame + 34;
    uint32_t seq = (uint32_t)(1 + k * (TLS_FRAME_LEN - 54));
    tcp[4] = seq >> 24, tcp[5] = seq >> 16 & 0xFF, tcp[6] = seq >> 8 & 0xFF, tcp[7] = seq & 0xFF;
    tcp[20] = k == 0 ? 0x16 : 0x17;
}

int main(int argc, char **argv) {
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s IFACE DST_MAC PPS COUNT SECONDS FLOWS QUIC_EVERY [MODE]\n", argv[0]);
        return 2;
    }
    unsigned m[6];
    uint8_t dst[6];
    if (sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) return 2;
    for (int i = 0; i < 6; i++) dst[i] = (uint8_t)m[i];
    double pps = atof(argv[3]), seconds = atof(argv[5]);
    long count = atol(argv[4]);
    int flows = atoi(argv[6]), quic_every = atoi(argv[7]), mode = argc == 9 ? atoi(argv[8]) : 0;
    int new_flows = mode == 1, tls = mode == 2;
    if (pps <= 0 || count <= 0 || seconds <= 0 || flows <= 0 || flows > 50000 || quic_every < 0) return 2;
    if (mode < 0 || mode > 2 || (tls && flows < BATCH)) return 2; /* a flow at most once a batch */
    prctl(PR_SET_TIMERSLACK, 1UL); /* nanosleep() as short as asked */

    struct sockaddr_ll addr = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(argv[1])};
    int fd = socket(AF_PACKET, SOCK_RAW, 0), one = 1;
    if (fd < 0 || addr.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("blaster: AF_PACKET socket");
        return 1;
    }
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);

    if (new_flows) flows = BATCH; /* one batch of frames, rebuilt before each send */
    size_t frame_len = tls ? TLS_FRAME_LEN : FRAME_LEN;
    uint8_t *frames = calloc((size_t)flows, frame_len);
    if (!frames) return 1;
    for (int f = 0; f < flows; f++) {
        if (tls)
            build_tls(frames + (size_t)f * frame_len, dst, f);
        else
            build(frames + (size_t)f * frame_len, dst, f, quic_every);
    }
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    memset(msgs, 0, sizeof msgs);

    long sent = 0;
    double start = now(), stop_at = start + seconds * 1.2 + 0.5; /* the time bound */
    while (sent < count) {
        double due = start + sent / pps, t = now();
        if (t > stop_at) break;
        if (t < due) {
            if (due - t > 20e-6) {
                struct timespec nap = {0, (long)((due - t) * 1e9)};
                nanosleep(&nap, NULL);
            }
            continue;
        }
        int n = count - sent < BATCH ? (int)(count - sent) : BATCH;
        for (int i = 0; i < n; i++) {
            if (new_flows) build_new_flow(frames + (size_t)i * FRAME_LEN, dst, sent + i);
            uint8_t *frame = frames + (size_t)((sent + i) % flows) * frame_len;
            if (tls) send_tls_segment(frame, (sent + i) / flows);
            iov[i].iov_base = frame;
            iov[i].iov_len = frame_len;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int done = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (done < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
            perror("blaster: sendmmsg");
            return 1;
        }
        if (done > 0) sent += done;
    }
    printf("%ld %.6f\n", sent, now() - start);
    return 0;
}
