"""Spectral registration (Near et al. 2015) of each transient to the running reference, searched
around the recent shifts so a steady drift is followed however far it goes. It keeps the reference:
the first from the session's first transients aligned to their own mean, accepted transients join
it, and a long run of rejections (the voxel or the coil setup changed for good) rebuilds it."""

from __future__ import annotations

import numpy as np

from mrs.pipeline.record import CacheRecord
from mrs.pipeline.stage import TransientStage
from mrs.pipeline.water import without_dominant_water
from mrs.preproc.align import align_all

REBUILD_AFTER_REJECTED = 16     # consecutive rejections after which the reference is rebuilt


class Register(TransientStage):
    name = "register"
    settings = {"rebuild_after_rejected": REBUILD_AFTER_REJECTED}

    def prime(self, stack: np.ndarray, ctx) -> None:
        if not ctx.reference.ready:
            # The first reference: the transients aligned to their own mean, twice; without the residual water
            # where it dominates, as the water stage takes it out of each transient compared with it (else a
            # wet transient scales to a fraction of its own reference: "low_signal").
            dry = np.array([without_dominant_water(f, ctx.grid) for f in stack])
            aligned, _, _ = align_all(dry, ctx.aligner, iterations=2)
            ctx.emit(CacheRecord("reference", values={"rebuild": False}, arrays={"fid": aligned.mean(0)}))

    def process(self, data: np.ndarray, ctx) -> tuple[np.ndarray, dict]:
        ref = ctx.reference.mean()
        if ctx.estimates.get("water_removed"):
            # compare like with like: a reference of wet transients (a file of already averaged, unsuppressed
            # spectra) would make every dried transient look like lost signal
            ref = without_dominant_water(ref, ctx.grid, ctx.grid.centre_ppm - ctx.recent_shift_hz() / ctx.grid.cf_mhz)
        reg = ctx.aligner.register(data, ref, remove_smooth=ctx.estimates.get("water_dominates", False),
                                   center_hz=ctx.recent_shift_hz())
        ctx.unaligned = data
        return reg.fid, {"freq_hz": reg.freq_hz, "phase_deg": float(np.degrees(reg.phase_rad)),
                         "scale": reg.scale}

    def apply(self, rec: CacheRecord, ctx) -> None:
        if rec.kind == "reference":
            ctx.reference.set(np.asarray(rec.fid, complex).copy())
        elif rec.kind == "transient":
            freq = float(rec.value("freq_hz"))
            ctx.freq_t.append((float(rec.t_s), freq))
            fid = np.asarray(rec.fid, np.complex64).astype(complex)
            if rec.rejected:
                unaligned = ctx.unaligned
                if unaligned is None:  # from the cache: the aligned FID with its shift and phase put back
                    t = np.arange(ctx.grid.n) * ctx.grid.dwell_s
                    unaligned = fid * np.exp(1j * np.radians(rec.value("phase_deg")) + 2j * np.pi * freq * t)
                ctx.reference.run_rejected = ctx.reference.run_rejected + [unaligned]
            else:
                ctx.reference.run_rejected = []
                if ctx.reference.ready:
                    ctx.reference.push(fid)  # the rounded FID: a replay from the cache builds the same reference

    def after(self, ctx) -> None:
        run = ctx.reference.run_rejected
        if len(run) >= REBUILD_AFTER_REJECTED:
            aligned, _, _ = align_all(np.array(run), ctx.aligner, iterations=2)
            ctx.emit(CacheRecord("reference", values={"rebuild": True}, arrays={"fid": aligned.mean(0)}))
