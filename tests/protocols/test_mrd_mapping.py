"""Acquisition flags and shapes -> transient kinds, or a refusal with a reason."""

import numpy as np
import pytest
from mrd_client import FLAG, mrd1_acquisition, session_scans

from protocols.mrd.mapping import Refused, check_against_session, kind_flags, readout_from_mrd1, samples


def readout(kind="metab", **kw):
    s = session_scans(1, coils=2, points=64, noise=0, water=0, dummy=0)[0]
    s.kind = kind
    for k, v in kw.items():
        setattr(s, k, v)
    return readout_from_mrd1(mrd1_acquisition(s).to_bytes())


@pytest.mark.parametrize("kind, flags", [("metab", ()), ("noise", ("noise",)), ("dummy", ("dummy",)),
                                         ("water", ("water_ref",))])
def test_flags_tell_the_transient_kinds_apart(kind, flags):
    assert kind_flags(readout(kind)) == flags


def test_a_user_flag_can_mark_water_references():
    r = readout()
    r.flags |= 1 << (57 - 1)  # ACQ_USER1
    assert kind_flags(r) == ()
    assert kind_flags(r, ("USER1",)) == ("water_ref",)


def test_navigators_and_trajectories_are_not_mrs():
    with pytest.raises(Refused, match="navigation") as exc:
        kind_flags(readout("navigator"))
    assert exc.value.code == "not_mrs"
    r = readout()
    r.trajectory_dims = 2
    with pytest.raises(Refused, match="trajectory"):
        kind_flags(r)


def test_discarded_samples_are_cut_off():
    s = session_scans(1, coils=2, points=64, noise=0, water=0, dummy=0, discard_pre=5)[0]
    r = readout_from_mrd1(mrd1_acquisition(s).to_bytes())
    assert np.array_equal(samples(r), s.data[:, 5:])


def test_a_readout_that_does_not_fit_the_session_is_refused():
    r = readout()
    data = samples(r)
    check_against_session(r, data, 2, 64, 2.5e-4)
    with pytest.raises(Refused, match="session has 4 x 64"):
        check_against_session(r, data, 4, 64, 2.5e-4)
    with pytest.raises(Refused, match="dwell") as exc:
        check_against_session(r, data, 2, 64, 5e-4)
    assert exc.value.code == "bad_dwell"
    data[0, 3] = np.nan
    with pytest.raises(Refused, match="NaN"):
        check_against_session(r, data, 2, 64, 2.5e-4)


def test_flag_numbers_match_the_ismrmrd_package():
    import ismrmrd

    from protocols.mrd.mapping import FLAG_BITS

    for name, bit in FLAG_BITS.items():
        assert getattr(ismrmrd, f"ACQ_{name}") == bit
    assert FLAG["phasecorr"] == ismrmrd.ACQ_IS_PHASECORR_DATA
