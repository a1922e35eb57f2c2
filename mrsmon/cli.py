"""The `mrsmon` command: parse first, then import only the subcommand that runs.

Each subcommand's body lives in `mrsmon/commands/<name>.py` as `run(args) -> int`, so `mrsmon --help`
is instant and `mrsmon agent` never imports Qt.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mrsmon import __version__

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_LISTEN = "tcp://127.0.0.1:5555"
DEFAULT_PUBLISH = "tcp://127.0.0.1:5556"
DEFAULT_CONTROL = "tcp://127.0.0.1:5557"


class _Fmt(argparse.RawDescriptionHelpFormatter):
    pass


def _sub(subs, name: str, help_: str, example: str) -> argparse.ArgumentParser:
    return subs.add_parser(name, help=help_, description=f"{help_}\n\nexample:\n  {example}",
                           formatter_class=_Fmt)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mrsmon", formatter_class=_Fmt,
        description="Real-time monitoring of functional MR spectroscopy: stream, store, fit, display.\n\n"
                    "examples:\n  mrsmon demo                      # simulator + agent + display, a first look\n"
                    "  mrsmon agent --sessions ./sessions\n"
                    "  mrsmon simulate --protocol quick --speed max")
    p.add_argument("--version", action="version", version=f"mrsmon {__version__}")
    subs = p.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_agent, _add_simulate, _add_bridge, _add_inspect, _add_keygen, _add_demo, _add_basis, _add_fit,
                _add_gui, _add_export, _add_replay, _add_refit, _add_report, _add_study, _add_simulate_study):
        add(subs)
    return p


def _add_agent(subs) -> None:
    s = _sub(subs, "agent", "Run the headless agent: receive transients, store them durably, fit blocks, publish.",
             "mrsmon agent --listen tcp://127.0.0.1:5555 --sessions ./sessions")
    s.add_argument("--listen", default=DEFAULT_LISTEN, help=f"data link to bind (default {DEFAULT_LISTEN})")
    s.add_argument("--sessions", required=True, help="folder that holds one sub-folder per session")
    s.add_argument("--publish", default=DEFAULT_PUBLISH, help=f"results PUB address (default {DEFAULT_PUBLISH})")
    s.add_argument("--control", default=DEFAULT_CONTROL, help=f"control address (default {DEFAULT_CONTROL})")
    s.add_argument("--keys", help="CURVE key folder from `mrsmon keygen` (required off loopback)")
    s.add_argument("--basis", default="auto", help="basis for block fits: .BASIS file, a folder of FSL-MRS .json, "
                   "jMRUI .txt or NIfTI-MRS files, or auto")
    s.add_argument("--block", type=int, default=None, help="transients per block (default: from the plan)")
    s.add_argument("--no-fit", action="store_true", help="store only; do not fit blocks")
    s.add_argument("--bids", default=None, help="MRS-BIDS root for the automatic export at session end "
                                                "(default SESSIONS/bids)")
    s.add_argument("--no-export", action="store_true", help="do not export sessions when they end")
    s.add_argument("--credit", type=int, default=64, help="sender window granted (default 64)")
    s.add_argument("--log-level", default="INFO")


def _add_simulate(subs) -> None:
    s = _sub(subs, "simulate", "Play a session protocol as a scanner would, streaming to an agent.",
             "mrsmon simulate --protocol ketamine-infusion --speed 60")
    s.add_argument("--connect", default=DEFAULT_LISTEN, help=f"agent data address (default {DEFAULT_LISTEN})")
    s.add_argument("--protocol", default="quick", help="session protocol name or .toml path (default quick)")
    s.add_argument("--speed", default="1", help="time factor: 1 = real time, 60 = a minute per second, max")
    s.add_argument("--transients", type=int, default=None, help="stop after N transients")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--session", default=None, help="session id (default: derived from protocol and seed)")
    s.add_argument("--kit", default=None, help="blinded kit code (default: from the plan)")
    s.add_argument("--condition", default=None, help="simulated arm (kept only in the truth file, never sent)")
    s.add_argument("--coils", type=int, default=None, help="override the plan's coil count")
    s.add_argument("--keys", help="folder with this client's CURVE key pair and the server's public key")
    s.add_argument("--truth", default=None, help="write the ground truth here (default: beside nothing)")
    s.add_argument("--fault", action="append", default=[],
                   help="fault injection NAME[=VALUE]: drop, duplicate, reorder, delay_ms (repeatable)")
    s.add_argument("--progress", action="store_true", help="print progress")


def _add_bridge(subs) -> None:
    s = _sub(subs, "bridge", "Accept a scanner's MRD stream (Siemens FIRE, Gadgetron clients); forward it to an agent.",
             "mrsmon bridge mrd --listen 0.0.0.0:9002 --connect tcp://127.0.0.1:5555 --allow 192.168.2.2")
    s.add_argument("kind", choices=["mrd"], help="the scanner-side protocol (MRD streaming)")
    s.add_argument("--listen", default="127.0.0.1:9002",
                   help="HOST:PORT to serve MRD on (default 127.0.0.1:9002); with --mrd2, '-' reads standard input")
    s.add_argument("--connect", default=DEFAULT_LISTEN, help=f"agent data address (default {DEFAULT_LISTEN})")
    s.add_argument("--mrd2", action="store_true", help="MRD 2 binary streams (mrd-python) instead of MRD 1")
    s.add_argument("--state", default="mrsmon-bridge", help="folder for the journal and the site salt "
                                                             "(default ./mrsmon-bridge)")
    s.add_argument("--salt-file", default=None, help="site salt for pseudonyms (default STATE/site.salt, "
                                                     "created on first use)")
    s.add_argument("--subject", default=None, help="explicit pseudonymous subject code (instead of a salted hash)")
    s.add_argument("--session-code", default=None, help="explicit pseudonymous session code")
    s.add_argument("--kit", default=None, help="blinded kit code (else the header's kit_code user parameter)")
    s.add_argument("--protocol", default=None, help="mrsmon session plan to name, e.g. ketamine-infusion "
                                                    "(default: the scanner's protocol name)")
    s.add_argument("--nucleus", default="1H")
    s.add_argument("--water-flag", action="append", default=None,
                   help="MRD flag that marks water reference scans (default IS_PHASECORR_DATA; repeatable, "
                        "e.g. USER1)")
    s.add_argument("--tick-ms", type=float, default=2.5, help="unit of acquisition_time_stamp (default 2.5)")
    s.add_argument("--conjugate", action="store_true",
                   help="conjugate every FID: for scanners whose phase convention is the opposite of mrsmon's "
                        "(the spectrum shows mirrored, NAA near 7.3 ppm); see docs/scanner.md")
    s.add_argument("--keys", help="folder with this client's CURVE key pair and the agent's public key")
    s.add_argument("--client", default="scanner", help="name of the client key pair in --keys (default scanner)")
    s.add_argument("--allow", action="append", default=[], help="accept MRD connections only from this address "
                                                                "(repeatable)")
    s.add_argument("--log-level", default="INFO")
    s.add_argument("--latency-log", default=None, help=argparse.SUPPRESS)


def _add_inspect(subs) -> None:
    s = _sub(subs, "inspect", "Summarise a stored session (what was received, what is missing).",
             "mrsmon inspect sessions/quick-0 --json")
    s.add_argument("session_dir")
    s.add_argument("--json", action="store_true", help="print one JSON object")


def _add_keygen(subs) -> None:
    s = _sub(subs, "keygen", "Create CURVE keys: the agent's pair and one client pair in an allowed-clients folder.",
             "mrsmon keygen ./keys")
    s.add_argument("dir")
    s.add_argument("--client", default="scanner", help="name of the client key pair (default scanner)")


def _add_demo(subs) -> None:
    s = _sub(subs, "demo", "Start agent, simulator and display together; headless without a display.",
             "mrsmon demo --protocol quick --speed 30")
    s.add_argument("--protocol", default="quick")
    s.add_argument("--speed", default="30")
    s.add_argument("--out", default="mrsmon-demo", help="folder for sessions, pictures and summary")
    s.add_argument("--headless", action="store_true", help="no window even when a display exists")
    s.add_argument("--seed", type=int, default=1)


def _add_basis(subs) -> None:
    s = _sub(subs, "basis", "Simulate a basis set (density matrix, ideal pulses) and write it.",
             "mrsmon basis --field-mhz 123.2 --sequence press --te-ms 30 --points 2048 --bandwidth-hz 4000 "
             "--out b.BASIS")
    s.add_argument("--field-mhz", type=float, required=True)
    s.add_argument("--sequence", choices=["fid", "press", "steam", "slaser"], required=True)
    s.add_argument("--te-ms", type=float, required=True)
    s.add_argument("--te1-ms", type=float, default=None)
    s.add_argument("--tm-ms", type=float, default=None)
    s.add_argument("--points", type=int, required=True)
    s.add_argument("--bandwidth-hz", type=float, required=True)
    s.add_argument("--metabolites", default=None, help="comma-separated (default: the standard set)")
    s.add_argument("--out", required=True, help="PATH.BASIS for LCModel, else an FSL-MRS folder")


def _add_fit(subs) -> None:
    s = _sub(subs, "fit", "Fit a spectrum file from any tool (NIfTI-MRS, LCModel .RAW, jMRUI .txt, vendor raw "
             "files via spec2nii); JSON lines out.",
             "mrsmon fit data.nii.gz --basis auto --block 32 --json\n"
             "  mrsmon fit data.RAW --basis lcmodel.BASIS --conjugate auto")
    s.add_argument("data", help="NIfTI-MRS (.nii/.nii.gz), LCModel .RAW/.H2O, jMRUI text (.txt), or a vendor raw "
                   "file spec2nii converts (Siemens .rda/.dat/DICOM, Philips .sdat/.data, GE .7)")
    s.add_argument("--basis", default="auto", help="LCModel .BASIS, a folder of FSL-MRS .json, jMRUI .txt, "
                   "LCModel .RAW or NIfTI-MRS files, or auto (simulated)")
    s.add_argument("--block", type=int, default=None, help="transients per block (default: all)")
    s.add_argument("--water", default=None, help="water reference, any of the data formats or a vendor file")
    s.add_argument("--conjugate", choices=["auto", "yes", "no"], default="auto",
                   help="data in the other frequency convention? auto detects (singlets, then the fit's chi2), "
                        "says so and fixes it; yes/no force it (default auto)")
    s.add_argument("--conjugate-basis", choices=["auto", "yes", "no"], default="auto",
                   help="the same for the basis (default auto)")
    s.add_argument("--cf-mhz", type=float, default=None, help="spectrometer frequency, for files that lack it")
    s.add_argument("--dwell-s", type=float, default=None, help="dwell time, for files that lack it")
    s.add_argument("--select", action="append", default=None, metavar="TAG=INDEX",
                   help="NIfTI-MRS: keep one index of a dimension, e.g. DIM_EDIT=0 (repeatable)")
    s.add_argument("--format", default=None, choices=["nifti_mrs", "lcmodel_raw", "jmrui_text"],
                   help="data format (default: from the file)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--spectra", action="store_true", help="include spectrum arrays in the JSON")


def _add_gui(subs) -> None:
    s = _sub(subs, "gui", "Operator display: follow a live agent or review a stored session.",
             "mrsmon gui --connect tcp://127.0.0.1")
    s.add_argument("--connect", default=None, help="agent host, e.g. tcp://127.0.0.1 (ports 5556/5557)")
    s.add_argument("--publish", default=DEFAULT_PUBLISH)
    s.add_argument("--control", default=DEFAULT_CONTROL)
    s.add_argument("--session", default=None, help="review a stored session folder")
    s.add_argument("--keys", default=None, help="CURVE key folder, for an agent whose links leave loopback")
    s.add_argument("--key-name", default="display", help="this display's key pair in --keys (default display; "
                                                         "make it with `mrsmon keygen DIR --client display`)")
    s.add_argument("--screenshot", default=None, help="render to this PNG and exit")
    s.add_argument("--size", default="1600x1000")
    s.add_argument("--theme", choices=["dark", "light"], default="dark")
    s.add_argument("--quit-after", type=float, default=None, help=argparse.SUPPRESS)


def _add_export(subs) -> None:
    s = _sub(subs, "export", "Export a session as MRS-BIDS (NIfTI-MRS + events + derivatives).",
             "mrsmon export sessions/quick-0 --bids ./bids")
    s.add_argument("session_dir")
    s.add_argument("--bids", required=True)


def _add_replay(subs) -> None:
    s = _sub(subs, "replay", "Stream a stored session, a NIfTI-MRS or MRD file, or a vendor raw file (via spec2nii) "
             "through an agent as a scanner would.", "mrsmon replay meas_MID42_svs_se.dat --speed 10")
    s.add_argument("source", help="session folder, .nii(.gz), MRD .h5/.mrd/.bin, or a vendor file: twix .dat, "
                                  ".rda, DICOM (file or folder), .sdat/.spar, .data/.list, GE .7")
    s.add_argument("--water", default=None, help="vendor water reference file to stream before the data")
    s.add_argument("--sequence", default=None, help="sequence name when the file does not state it (PRESS, ...)")
    s.add_argument("--water-flag", action="append", default=None,
                   help="MRD files: flag marking water reference scans (default IS_PHASECORR_DATA)")
    s.add_argument("--tick-ms", type=float, default=2.5, help="MRD files: acquisition_time_stamp unit (2.5)")
    s.add_argument("--conjugate", choices=["auto", "yes", "no"], default="auto",
                   help="MRD and vendor files: conjugate every FID; auto (default) does when the metabolite spectrum "
                        "is found mirrored (NAA near 7.3 ppm), and says so")
    s.add_argument("--connect", default=DEFAULT_LISTEN)
    s.add_argument("--speed", default="max")
    s.add_argument("--session", default=None, help="session id to use (default: source's id + -replay)")


def _add_refit(subs) -> None:
    s = _sub(subs, "refit", "Refit a stored session with other settings into a new derivative set.",
             "mrsmon refit sessions/quick-0 --block 16")
    s.add_argument("session_dir")
    s.add_argument("--block", type=int, default=None)
    s.add_argument("--window", type=int, default=None)
    s.add_argument("--step", type=int, default=None)
    s.add_argument("--basis", default="auto")
    s.add_argument("--dynamic", action="store_true", help="fit all blocks at once (shared lineshape)")
    s.add_argument("--smooth-s", type=float, default=300.0,
                   help="dynamic fit: time scale (s) over which lineshape and phases may change (default 300)")


def _add_report(subs) -> None:
    s = _sub(subs, "report", "Write a self-contained HTML report of a session.",
             "mrsmon report sessions/quick-0 --out report/")
    s.add_argument("session_dir")
    s.add_argument("--out", required=True)
    s.add_argument("--derivative", default=None, help="report a refit's fits (name under SESSION/derivatives)")


def _add_study(subs) -> None:
    s = _sub(subs, "study", "Analyse a set of sessions; with a key file, the crossover condition effect.",
             "mrsmon study ./study --key ./study/key.tsv --json")
    s.add_argument("root")
    s.add_argument("--key", default=None)
    s.add_argument("--scheduler", default=None, help="Dask scheduler address (default: local processes)")
    s.add_argument("--out", default=None)
    s.add_argument("--derivative", default=None,
                   help="analyse each session's derivatives/<NAME> fits (e.g. a dynamic refit)")
    s.add_argument("--json", action="store_true")


def _add_simulate_study(subs) -> None:
    s = _sub(subs, "simulate-study", "Simulate a crossover study: stored sessions, key file, truth.",
             "mrsmon simulate-study --out ./study --participants 26")
    s.add_argument("--out", required=True)
    s.add_argument("--participants", type=int, default=26)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--coils", type=int, default=2, help="receive coils per session (default 2: small on disk)")
    s.add_argument("--protocol", default="ketamine-placebo", help="plan for acquisition and timeline")
    s.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    # Fits are many small matrix problems: one BLAS thread each is faster and, under load, far steadier
    # (a multithreaded OpenBLAS decomposition was measured 6x slower). Set before numpy loads; overridable.
    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, "1")
    if os.environ.get("MRSMON_PARENT_PID"):  # a child of the agent (an export): it must not outlive the agent
        from agent.lifeline import die_with_parent

        die_with_parent()
    module = importlib.import_module(f"mrsmon.commands.{args.command.replace('-', '_')}")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bad file or setting gets one line, not a traceback
        if os.environ.get("MRSMON_DEBUG"):
            raise
        print(f"mrsmon {args.command}: error: {exc}", file=sys.stderr)
        print("  (set MRSMON_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
