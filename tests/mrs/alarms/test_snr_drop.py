"""The SNR-drop alarm: raised when a block's SNR falls more than the plan's snr_drop_pct below the session's
start, with the numbers in its sentence; quiet at the start of a session and within the limit."""

from mrs.qc import evaluate_alarms
from mrs.results import BlockQC, BlockResult
from protocols.plan import Alarms

LIMITS = vars(Alarms())


def block(b: int, snr: float, revision: int = 0, status: str = "ok") -> BlockResult:
    return BlockResult(block=b, revision=revision, qc=BlockQC(snr=snr, fit_status=status))


def drop_alarm(result, history):
    return [a for a in evaluate_alarms(result, LIMITS, history) if a.name == "snr_drop"]


def test_a_block_far_below_the_start_raises_it_with_its_numbers():
    history = [block(0, 40), block(1, 44), block(2, 38), block(3, 42)]  # start: median 41
    alarm = drop_alarm(block(4, 18), history)
    assert len(alarm) == 1 and alarm[0].severity == "amber"
    assert "SNR 18 is 56% below the session's start (41; limit 40%)" in alarm[0].reason


def test_within_the_limit_and_before_the_start_is_known_nothing_is_raised():
    history = [block(0, 40), block(1, 44), block(2, 38), block(3, 42)]
    assert drop_alarm(block(4, 26), history) == []          # 37 % below: within 40 %
    assert drop_alarm(block(3, 10), history[:3]) == []      # the start is not known yet
    # failed blocks and revisions do not set the start
    odd = [block(0, 5, status="failed"), block(1, 40), block(0, 90, revision=1), block(2, 41), block(3, 39)]
    assert drop_alarm(block(4, 18), odd) == []               # only three good first publications so far


def test_the_threshold_is_the_plans():
    history = [block(0, 40), block(1, 44), block(2, 38), block(3, 42)]
    assert drop_alarm(block(4, 26), history) == []
    assert [a.name for a in evaluate_alarms(block(4, 26), {**LIMITS, "snr_drop_pct": 30.0}, history)] == ["snr_drop"]
