"""`mrsmon gui`: the operator display, live (`--connect`) or reviewing a stored session (`--session`)."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit


def endpoints(args: argparse.Namespace) -> tuple[str, str]:
    """(publish, control) addresses: `--connect tcp://HOST` means HOST:5556 and HOST:5557."""
    if not args.connect:
        return args.publish, args.control
    url = urlsplit(args.connect if "://" in args.connect else f"tcp://{args.connect}")
    if url.scheme != "tcp" or not url.hostname:
        raise ValueError(f"--connect {args.connect!r} is not tcp://HOST")
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"tcp://{host}:5556", f"tcp://{host}:5557"


def run(args: argparse.Namespace) -> int:
    from gui.screenshot import app, ensure_qt_platform, parse_size, render_session, render_window

    ensure_qt_platform()
    size = parse_size(args.size)
    if args.screenshot and args.session:
        out = render_session(args.session, args.screenshot, size=size, theme=args.theme)
        print(out)
        return 0
    qapp = app()
    from PySide6 import QtCore

    from gui.model import SessionModel
    from gui.window import MainWindow

    if args.session:
        from gui.review import load_session

        model = load_session(args.session)
        window = MainWindow(model, theme_name=args.theme, session_dir=args.session)
    else:
        from gui.link import AgentLink
        from protocols.sender import CurveClientKeys

        publish, control = endpoints(args)
        model = SessionModel(live=True)
        keys = CurveClientKeys.from_dir(args.keys, args.key_name) if getattr(args, "keys", None) else None
        link = AgentLink(publish, control, curve=keys)
        window = MainWindow(model, theme_name=args.theme, link=link)
        link.start()
    window.resize(*size)
    if args.screenshot:  # live screenshot: follow for --quit-after seconds (default 3), then render
        delay_ms = int(1000 * (args.quit_after if args.quit_after is not None else 3.0))
        QtCore.QTimer.singleShot(delay_ms, lambda: (render_window(window, size, args.screenshot), window.close()))
    elif args.quit_after is not None:
        QtCore.QTimer.singleShot(int(1000 * args.quit_after), window.close)
    window.show()
    return int(qapp.exec())
