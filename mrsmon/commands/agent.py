from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from agent.service import Agent, AgentConfig
    from mrsmon.commands._common import on_stop_signals, setup_logging

    setup_logging(args.log_level)
    config = AgentConfig(sessions_dir=Path(args.sessions), listen=args.listen, publish=args.publish,
                         control=args.control, keys=Path(args.keys) if args.keys else None, basis=args.basis,
                         block=args.block, fit=not args.no_fit, credit=args.credit,
                         bids=None if args.no_export else Path(args.bids or Path(args.sessions) / "bids"))
    agent = Agent(config)
    on_stop_signals(agent.stop)
    agent.run()
    return 0
