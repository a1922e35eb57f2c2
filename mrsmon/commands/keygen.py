from __future__ import annotations


def run(args) -> int:
    from agent.security import keygen

    paths = keygen(args.dir, args.client)
    print(f"agent key pair:  {paths['server']} (give the agent --keys {args.dir})")
    print(f"client key pair: {paths[args.client]} (give the scanner/simulator --keys {args.dir})")
    print(f"allowed clients: {args.dir}/clients/ (copy other clients' .key files here)")
    return 0
