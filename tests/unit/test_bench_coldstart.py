"""The cold-start benchmark's bookkeeping: its schedule and the ratio's noise interval."""

from __future__ import annotations

from bench.coldstart import Function, Runs, _schedule


def _runs(floor: list[float], handler: list[float]) -> Runs:
    return Runs(floor=[{"seconds": s} for s in floor], handler=[{"seconds": s} for s in handler])


def test_the_interval_brackets_the_ratio_and_is_the_same_for_the_same_runs() -> None:
    noisy = _runs([0.20, 0.26, 0.21, 0.30, 0.22, 0.24], [0.23, 0.29, 0.25, 0.33, 0.24, 0.27])

    low, high = noisy.ratio_interval()

    assert low < noisy.ratio < high
    assert noisy.ratio_interval() == (low, high)


def test_without_noise_the_interval_is_the_ratio() -> None:
    steady = _runs([0.2] * 10, [0.22] * 10)

    assert steady.ratio_interval() == (steady.ratio, steady.ratio)


def test_each_round_runs_every_handler_and_one_floor_per_client_set_in_a_new_order() -> None:
    functions = [
        Function("api", "m.api", ("dynamodb", "meteringmarketplace"), []),
        Function("signup", "m.signup", ("dynamodb",), []),
        Function("handoff", "m.handoff", ("dynamodb",), []),
        Function("publisher", "m.publisher", ("events", "sqs"), []),
    ]

    schedule = [(mode, function) for mode, function in _schedule(functions, 20)]

    rounds = [schedule[start : start + 7] for start in range(0, len(schedule), 7)]
    assert len(rounds) == 20
    for one_round in rounds:
        handlers = sorted(f.name for mode, f in one_round if mode == "handler")
        floors = sorted(f.clients for mode, f in one_round if mode == "floor")
        assert handlers == ["api", "handoff", "publisher", "signup"]
        # The dynamodb floor is shared by signup and handoff
        assert floors == [("dynamodb",), ("dynamodb", "meteringmarketplace"), ("events", "sqs")]
    assert len({tuple((m, f.name) for m, f in one_round) for one_round in rounds}) > 10
    assert _schedule(functions, 20) == schedule  # seeded: the same order every time
