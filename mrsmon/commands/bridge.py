"""`mrsmon bridge mrd`: serve MRD (1 over TCP, 2 over TCP or stdin) and forward each measurement to an agent."""

from __future__ import annotations

import sys
from pathlib import Path


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def run(args) -> int:
    from mrsmon.commands._common import on_stop_signals, setup_logging
    from protocols.mrd.bridge import Bridge
    from protocols.mrd.header import Pseudonyms
    from protocols.mrd.mapping import FLAG_BITS
    from protocols.mrd.session import BridgeConfig, read_salt
    from protocols.sender import CurveClientKeys

    setup_logging(args.log_level)
    water = tuple(f.upper() for f in (args.water_flag or ["IS_PHASECORR_DATA"]))
    unknown = [f for f in water if f not in FLAG_BITS]
    if unknown:
        raise ValueError(f"unknown MRD flag(s) {', '.join(unknown)}; known: {', '.join(FLAG_BITS)}")
    state = Path(args.state)
    salt = read_salt(Path(args.salt_file) if args.salt_file else state / "site.salt")
    cfg = BridgeConfig(agent=args.connect, state_dir=state, protocol=args.protocol, nucleus=args.nucleus,
                       pseudonyms=Pseudonyms(salt, args.subject, args.session_code, args.kit),
                       water_flags=water, tick_ns=int(round(args.tick_ms * 1e6)), conjugate=args.conjugate,
                       curve=CurveClientKeys.from_dir(args.keys, args.client) if args.keys else None,
                       track_latency=bool(args.latency_log))
    bridge = Bridge(cfg, mrd2=args.mrd2, allow=tuple(args.allow))
    on_stop_signals(bridge.stop)
    if args.listen == "-":
        if not args.mrd2:
            raise ValueError("--listen - (standard input) needs --mrd2: MRD 1 is a two-way TCP session")
        bridge.read_stdin(sys.stdin.buffer)
        bridge.serve(until_idle=True)
    else:
        host, port = parse_listen(args.listen)
        bridge.listen(host, port)
        bridge.serve()
    left = bridge.shutdown(latency_log=Path(args.latency_log) if args.latency_log else None)
    refused = sum(bridge.stats.refused.values())
    return 0 if left == 0 and (args.listen != "-" or refused == 0) else 1
