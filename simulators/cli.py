"""`vigil simulate`, `vigil record` and `vigil replay`: simulated and recorded device traffic."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    sim = sub.add_parser("simulate", help="publish a scenario of simulated devices and faults (YAML)")
    sim.add_argument("scenario", nargs="?", help="a scenario file, or a bundled scenario's name")
    sim.add_argument("--speed", type=float, default=None, help="simulated seconds a second (default: file)")
    sim.add_argument("--mqtt", default=None, help="broker URL (default: VIGIL_MQTT_URL)")
    sim.add_argument("--register", action="store_true", help="register the devices (VIGIL_DATABASE_URL)")
    sim.add_argument("--to", metavar="FILE", help="render into a recording for `vigil replay` instead")
    sim.add_argument("--faults", action="store_true", help="list each device type's faults and exit")
    rec = sub.add_parser("record", help="record MQTT traffic to a file (JSON lines)")
    rec.add_argument("file")
    rec.add_argument("--topic", default="vigil/v1/#")
    rec.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    rec.add_argument("--mqtt", default=None, help="broker URL (default: VIGIL_MQTT_URL)")
    rep = sub.add_parser("replay", help="publish a recording with its original spacing")
    rep.add_argument("file")
    rep.add_argument("--speed", type=float, default=1.0, help="N times faster (inf: as fast as possible)")
    rep.add_argument("--mqtt", default=None, help="broker URL (default: VIGIL_MQTT_URL)")
    for parser in (sim, rec, rep):
        parser.set_defaults(handler=_run)


async def _run(settings: Any, args: argparse.Namespace) -> int:
    from simulators.scenario import device_traffic_command  # YAML and the device models: only when asked

    return await device_traffic_command(settings, args)
