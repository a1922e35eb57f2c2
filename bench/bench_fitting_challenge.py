"""The ISMRM MRS fitting challenge's 28 datasets, each fitted three ways by `mrsmon fit`, and by LCModel
when it is installed: another group's spectra, basis and file formats, read without conversion.

    git clone https://github.com/wexeee/mrs_fitting_challenge       (CC BY-SA 4.0, 17 MB)
    python bench/bench_fitting_challenge.py --challenge mrs_fitting_challenge [--lcmodel PATH]
        -> prints tables, writes bench/results/fitting_challenge.txt

The three ways (the same spectra and basis, as the challenge ships them):
    jmrui   datasets_JMRUI/datasetN_WS.txt, water _nWS.txt; basis: the folder basisset_JMRUI/
    raw     datasets_LCModel/datasetN.RAW, water .H2O;      basis: the folder of .RAW files basisset_LCModel/
    basis   datasets_LCModel/datasetN.RAW, water .H2O;      basis: basisset_LCModel/press3T_30ms.BASIS
The challenge's true concentrations are not in the repository, so this measures what can be measured
without them: every dataset read and fitted, what was detected, agreement between the three forms
(they hold the same signals; the .BASIS at HZPPPM 123.2617 and 4096 points, the data at 123.22 MHz),
and agreement with LCModel on the same .RAW and .BASIS (LCModel 6.3 defaults, NSIMUL = 0: the basis
holds a measured macromolecule spectrum, Mac).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._table import write_table  # noqa: E402
from bench.bench_fit_external import parse_lcmodel_table, ratios_from_conc  # noqa: E402
from bench.truthset.writers import write_control  # noqa: E402

RATIOS = ("Glu/tCr", "Gln/tCr", "tNAA/tCr", "tCho/tCr", "mI/tCr", "GABA/tCr")


def forms(root: Path, i: int) -> dict[str, tuple[Path, Path, Path]]:
    lcm = root / "datasets_LCModel"
    jm = root / "datasets_JMRUI"
    return {"jmrui": (jm / f"dataset{i}_WS.txt", jm / f"dataset{i}_nWS.txt", root / "basisset_JMRUI"),
            "raw": (lcm / f"dataset{i}.RAW", lcm / f"dataset{i}.H2O", root / "basisset_LCModel"),
            "basis": (lcm / f"dataset{i}.RAW", lcm / f"dataset{i}.H2O",
                      root / "basisset_LCModel" / "press3T_30ms.BASIS")}


# The .RAW files state no field or dwell (LCModel takes them from its control file): the challenge's
# README gives them, as a user would pass them (`mrsmon fit --cf-mhz 123.2 --dwell-s 0.00025`).
README_ACQ = {"spectrometer_frequency_mhz": 123.2, "dwell_time_s": 2.5e-4}


def fit_mrsmon(data: Path, water: Path, basis: Path) -> dict:
    from mrsmon.commands.fit import fit_file

    t0 = time.process_time()
    try:
        overrides = README_ACQ if data.suffix.lower() == ".raw" else None
        r = fit_file(str(data), str(basis), water_path=str(water), acq_overrides=overrides)[0]
    except Exception as exc:  # reported, never fatal
        return {"error": f"{type(exc).__name__}: {exc}"}
    rec = r.qc.input or {}
    return {"ratios": dict(r.ratios), "status": r.qc.fit_status, "snr": r.qc.snr, "glu_crlb": r.crlb_pct.get("Glu"),
            "cpu_s": time.process_time() - t0, "data_conj": rec.get("data_conjugated"),
            "basis_conj": rec.get("basis_conjugated")}


def fit_lcmodel(lcmodel: str, data: Path, basis: Path, work: Path) -> dict:
    table, control = work / f"{data.stem}.table", work / f"{data.stem}.control"
    write_control(control, data, basis, table, 2048, 2.5e-4, 123.22, data.stem, nsimul=0)
    with open(control) as ctl:
        proc = subprocess.run([lcmodel], stdin=ctl, cwd=work, capture_output=True, text=True, timeout=600)
    if not table.exists():
        return {"error": f"no table (exit {proc.returncode})"}
    conc, _ = parse_lcmodel_table(table.read_text())
    return {"ratios": ratios_from_conc(conc)} if conc else {"error": "empty table"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--challenge", type=Path, default=os.environ.get("MRSMON_FITTING_CHALLENGE"))
    ap.add_argument("--lcmodel", default=os.environ.get("MRSMON_LCMODEL"))
    ap.add_argument("--datasets", type=int, default=28)
    args = ap.parse_args()
    if not args.challenge or not (args.challenge / "datasets_JMRUI").is_dir():
        print("give --challenge DIR: a checkout of https://github.com/wexeee/mrs_fitting_challenge", file=sys.stderr)
        return 2
    rows, agree_rows, fails = [], [], []
    spread_max = {q: 0.0 for q in RATIOS}
    lcm_diff: dict[str, list[float]] = {q: [] for q in RATIOS}
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(1, args.datasets + 1):
            out = {k: fit_mrsmon(*v) for k, v in forms(args.challenge, i).items()}
            bad = [f"{k}: {v.get('error') or v['status']}" for k, v in out.items()
                   if v.get("error") or v["status"] != "ok"]
            if bad:
                fails.append(f"dataset{i}: " + "; ".join(bad))
            j = out["jmrui"]
            if "error" in j:
                rows.append([i, "error"] + [float("nan")] * (len(RATIOS) + 3))
                continue
            all_ok = not bad  # spreads and the LCModel comparison only where every form fitted ok
            for q in RATIOS if all_ok else ():
                vals = [o["ratios"].get(q) for o in out.values()]
                if None not in vals and j["ratios"].get(q):
                    spread_max[q] = max(spread_max[q], 100 * (max(vals) - min(vals)) / abs(j["ratios"][q]))
            lcm = fit_lcmodel(args.lcmodel, *[forms(args.challenge, i)["basis"][k] for k in (0, 2)], Path(tmp)) \
                if args.lcmodel else None
            row = [i, j["status"], j["snr"]]
            row += [j["ratios"][q] if j["ratios"].get(q) is not None else float("nan") for q in RATIOS]
            conj = f"{'D' if j['data_conj'] else '-'}{'B' if j['basis_conj'] else '-'}"
            row += [j["glu_crlb"], 1e3 * j["cpu_s"], conj]
            rows.append(row)
            if lcm and "ratios" in lcm:
                agree_rows.append([i] + [lcm["ratios"][q] for q in RATIOS])
                for q in RATIOS if all_ok else ():
                    if j["ratios"].get(q) is not None and lcm["ratios"][q] > 0:
                        lcm_diff[q].append(100 * (j["ratios"][q] / lcm["ratios"][q] - 1))
            print(f"dataset{i}: {j['status']} Glu/tCr {j['ratios'].get('Glu/tCr')}", file=sys.stderr)
    import numpy as np

    notes = [f"{len(rows)} datasets, {time.time() - t_start:.0f} s. conj: D data conjugated, B basis conjugated "
             "(jmrui form). Ratios from the jmrui form (nan: undetermined, a warning).",
             "Largest spread between the three forms (datasets ok in all three, where all give the ratio), % of the "
             "jmrui value: "
             + ", ".join(f"{q} {v:.2f}" for q, v in spread_max.items()),
             "Not ok in any form: " + ("; ".join(fails) if fails else "none")]
    if any(lcm_diff.values()):
        notes.append("mrsmon / LCModel - 1, %, median [min, max] over the datasets ok in all three forms: " + ", ".join(
            f"{q} {np.median(v):+.1f} [{min(v):+.1f}, {max(v):+.1f}]" for q, v in lcm_diff.items() if v))
    header = ["dataset", "status", "SNR", *RATIOS, "Glu CRLB%", "cpu ms", "conj"]
    text = write_table("fitting_challenge", "ISMRM fitting challenge, mrsmon fit (jmrui form)", header, rows,
                       "\n".join(notes))
    if agree_rows:
        lcm_text = write_table("fitting_challenge_lcmodel", "ISMRM fitting challenge, LCModel 6.3 (.RAW + .BASIS, "
                               "NSIMUL=0)", ["dataset", *RATIOS], agree_rows)
        (Path(__file__).parent / "results" / "fitting_challenge.txt").write_text(text + "\n" + lcm_text)
        (Path(__file__).parent / "results" / "fitting_challenge_lcmodel.txt").unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
