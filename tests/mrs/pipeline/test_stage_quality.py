"""Quality: SNR, NAA linewidth, frequency statistics and the fit's status for one block; the spectrum the
display draws covers the fit window only."""

import numpy as np
import pytest
from stage_helpers import block_context, clean_fid, noisy, processed

from mrs.fit.toy import toy_basis
from mrs.pipeline.fit import Fit
from mrs.pipeline.quality import Quality
from mrs.pipeline.scale import Scale
from tests.mrs.pipeline.test_runner import CF, DWELL, NAMES, N


def test_a_clean_block_is_ok_with_plausible_measures():
    basis = toy_basis(CF, DWELL, N, names=NAMES)
    rng = np.random.default_rng(7)
    fid = noisy(clean_fid(basis), 0.05, rng)
    items = processed([fid] * 4)
    ctx = block_context(basis, items)
    ctx.freq_t.extend((i.t_s, i.freq_hz) for i in items)
    res, _ = Fit().process(fid, ctx)
    scaled, _ = Scale().process(res, ctx)
    _, est = Quality().process(scaled, ctx)
    assert est["fit_status"] == "ok", est["message"]
    assert est["snr"] > 10 and 3 < est["naa_fwhm_hz"] < 12
    assert est["freq_offset_hz"] == pytest.approx(0.15) and est["max_jump_hz"] == pytest.approx(0.1)
    assert est["drift_hz_per_min"] == pytest.approx(0.1 / 2.0 * 60, rel=0.01)  # 0.1 Hz per 2 s
    assert est["water_fwhm_hz"] is None and est["coils_excluded"] == ()
    spec = est["spectrum"]
    assert len(spec.ppm) == len(spec.fit) == len(spec.data) and min(spec.ppm) >= 0.2 and max(spec.ppm) <= 4.2
    assert {"NAA", "Glu"} <= set(spec.components)
