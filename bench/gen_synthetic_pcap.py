"""Write a synthetic Ethernet pcap of many TCP flows (IPv4 and IPv6) for benchmarks and tests.

Flow recipes: normal close, refused SYN, client abort, server abort, RST after FIN, data
retransmitted after an RTO, fast retransmission after three duplicate ACKs, SYN and FIN
retransmissions. Packets are packed with struct (scapy would take minutes for a million).

    python bench/gen_synthetic_pcap.py --packets 1000000 --out /tmp/synthetic.pcap
"""

from __future__ import annotations

import argparse
import random
import struct

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
ETH_V4 = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
ETH_V6 = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x86\xdd"
RTT = 0.010          # handshake round trip; retransmissions come well after it (not out-of-order)
RTO = 0.200


class Flow:
    def __init__(self, rng: random.Random, index: int, t0: float, v6: bool):
        self.rng = rng
        self.v6 = v6
        self.t = t0
        self.cport = 1024 + index % 60000
        self.sport = rng.choice((80, 443, 8080, 5432, 22))
        n = index
        if v6:
            self.caddr = bytes.fromhex("fd000000000000000000") + n.to_bytes(6, "big")
            self.saddr = bytes.fromhex("fd00000000000000000000000001") + (n % 50).to_bytes(2, "big")
        else:
            self.caddr = bytes([10, (n >> 16) & 255, (n >> 8) & 255, n & 255])
            self.saddr = bytes([192, 0, 2, 1 + n % 50])
        self.cseq = rng.getrandbits(32)
        self.sseq = rng.getrandbits(32)
        self.ipid = {True: rng.getrandbits(16), False: rng.getrandbits(16)}
        self.packets: list[tuple[float, bytes]] = []

    def send(self, from_client: bool, flags: int, seq: int, ack: int, payload: int = 0, dt: float = 0.0005):
        self.t += dt
        src, dst = (self.caddr, self.saddr) if from_client else (self.saddr, self.caddr)
        sp, dp = (self.cport, self.sport) if from_client else (self.sport, self.cport)
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF if flags & ACK else 0,
                          5 << 4, flags, 65535, 0, 0) + b"x" * payload
        if self.v6:
            ip = struct.pack("!IHBB", 0x60000000, len(tcp), 6, 64) + src + dst
            frame = ETH_V6 + ip + tcp
        else:
            self.ipid[from_client] = (self.ipid[from_client] + 1) & 0xFFFF
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), self.ipid[from_client], 0x4000, 64, 6, 0,
                             src, dst)
            frame = ETH_V4 + ip + tcp
        self.packets.append((self.t, frame))

    def handshake(self, syn_retries: int = 0):
        self.send(True, SYN, self.cseq, 0, dt=0)
        for _ in range(syn_retries):
            self.send(True, SYN, self.cseq, 0, dt=1.0)
        self.send(False, SYN | ACK, self.sseq, self.cseq + 1, dt=RTT / 2)
        self.cseq += 1
        self.sseq += 1
        self.send(True, ACK, self.cseq, self.sseq, dt=RTT / 2)

    def exchange(self, rounds: int, retransmit: str | None = None):
        for r in range(rounds):
            size = self.rng.choice((100, 512, 1448))
            self.send(True, PSH | ACK, self.cseq, self.sseq, size)
            self.cseq += size
            self.send(False, ACK, self.sseq, self.cseq)
            resp = [self.rng.choice((200, 1448)) for _ in range(4)]
            lost = retransmit and r == rounds // 2
            seqs = []
            for size in resp:
                seqs.append((self.sseq, size))
                self.send(False, PSH | ACK, self.sseq, self.cseq, size, dt=0.0002)
                self.sseq += size
            if lost and retransmit == "rto":
                # the client acks all but the last segment; the server resends it after an RTO
                s, size = seqs[-1]
                self.send(True, ACK, self.cseq, s)
                self.send(False, PSH | ACK, s, self.cseq, size, dt=RTO)
            elif lost and retransmit == "fast":
                # the second segment was lost: three duplicate ACKs, then a fast retransmission
                s, size = seqs[1]
                for _ in range(3):
                    self.send(True, ACK, self.cseq, s, dt=0.0003)
                self.send(False, PSH | ACK, s, self.cseq, size, dt=0.002)
            self.send(True, ACK, self.cseq, self.sseq)

    def close(self, fin_retransmit: bool = False):
        self.send(True, FIN | ACK, self.cseq, self.sseq)
        if fin_retransmit:
            self.send(True, FIN | ACK, self.cseq, self.sseq, dt=RTO)
        self.cseq += 1
        self.send(False, FIN | ACK, self.sseq, self.cseq)
        self.sseq += 1
        self.send(True, ACK, self.cseq, self.sseq)


def make_flow(rng: random.Random, index: int, t0: float) -> list[tuple[float, bytes]]:
    f = Flow(rng, index, t0, v6=index % 4 == 3)
    recipe = rng.random()
    if recipe < 0.10:                      # refused: SYN answered by RST-ACK
        f.send(True, SYN, f.cseq, 0, dt=0)
        f.send(False, RST | ACK, 0, f.cseq + 1, dt=RTT / 2)
    elif recipe < 0.18:                    # client aborts mid-transfer
        f.handshake()
        f.exchange(rng.randint(1, 4))
        f.send(True, RST | ACK, f.cseq, f.sseq)
    elif recipe < 0.26:                    # server aborts mid-transfer
        f.handshake()
        f.exchange(rng.randint(1, 4))
        f.send(False, RST | ACK, f.sseq, f.cseq)
    elif recipe < 0.30:                    # client closes, server still writes, client resets
        f.handshake()
        f.exchange(2)
        f.send(True, FIN | ACK, f.cseq, f.sseq)
        f.cseq += 1
        f.send(False, PSH | ACK, f.sseq, f.cseq, 300)
        f.send(True, RST, f.cseq, 0)
    elif recipe < 0.42:                    # data retransmitted after an RTO
        f.handshake()
        f.exchange(rng.randint(2, 5), retransmit="rto")
        f.close()
    elif recipe < 0.50:                    # fast retransmission
        f.handshake()
        f.exchange(rng.randint(2, 5), retransmit="fast")
        f.close()
    elif recipe < 0.54:                    # SYN retransmitted before the answer
        f.handshake(syn_retries=1)
        f.exchange(1)
        f.close()
    elif recipe < 0.58:                    # FIN retransmitted
        f.handshake()
        f.exchange(1)
        f.close(fin_retransmit=True)
    else:                                  # plain connection
        f.handshake()
        f.exchange(rng.randint(1, 8))
        f.close()
    return f.packets


def write(path: str, packets: int, seed: int = 7, batch_flows: int = 2000) -> dict:
    rng = random.Random(seed)
    written = 0
    flows = 0
    t_batch = 1_700_000_000.0
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        while written < packets:
            batch: list[tuple[float, bytes]] = []
            for _ in range(batch_flows):
                batch.extend(make_flow(rng, flows, t_batch + rng.random() * 2.0))
                flows += 1
            batch.sort(key=lambda p: p[0])
            pack = struct.pack
            for ts, frame in batch[: packets - written]:
                sec = int(ts)
                usec = int(round((ts - sec) * 1e6))
                if usec >= 1_000_000:
                    sec, usec = sec + 1, usec - 1_000_000
                out.write(pack("<IIII", sec, usec, len(frame), len(frame)))
                out.write(frame)
            written += min(len(batch), packets - written)
            t_batch += 10.0  # batches never overlap: every flow of a batch ends within it
    return {"packets": written, "flows": flows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--out", default="bench/out/synthetic.pcap")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    info = write(args.out, args.packets, args.seed)
    print(f"wrote {args.out}: {info['packets']} packets, {info['flows']} flows")


if __name__ == "__main__":
    main()
