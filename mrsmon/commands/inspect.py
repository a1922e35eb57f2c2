from __future__ import annotations

import json


def run(args) -> int:
    from protocols.session_folder import SessionReader

    summary = SessionReader(args.session_dir).summary()
    if args.json:
        print(json.dumps(summary))
    else:
        width = max(len(k) for k in summary)
        for k, v in summary.items():
            print(f"{k:<{width}}  {v}")
    return 0
