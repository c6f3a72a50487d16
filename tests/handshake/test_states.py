"""The handshake's one state table: which step runs in which state, and what refuses the rest."""

from __future__ import annotations

import pytest

from athkit.core.handshake import states
from athkit.core.handshake.states import TABLE, State, Step
from athkit.protocol.errors import ATHError

OK = "ok"
OOO = "HANDSHAKE_OUT_OF_ORDER"

#: state -> what each step answers there, in the order of Step.
EXPECTED = {
    State.STARTED: (OK, OOO, OOO, OOO, OOO, OOO),
    State.IDENTIFIED: (OOO, OK, OOO, OOO, OOO, OOO),
    State.PENDING_USER: (OOO, OOO, OK, OK, OOO, OOO),
    State.APPROVED: (OOO, OOO, OOO, OOO, OK, OK),
    State.DENIED: (OOO, OOO, OOO, OOO, "USER_DENIED", "USER_DENIED"),
    State.TIMEOUT: (OOO, OOO, OOO, OOO, "CONFIRMATION_TIMEOUT", OOO),
    State.COMPLETED: (OOO, OOO, OOO, OOO, OOO, OOO),
}
CASES = [
    (state, step, answer)
    for state, answers in EXPECTED.items()
    for step, answer in zip(Step, answers, strict=True)
]


@pytest.mark.parametrize(("state", "step", "answer"), CASES)
def test_each_step_runs_only_in_its_state(state: State, step: Step, answer: str) -> None:
    try:
        states.require(step, state.value)
    except ATHError as exc:
        got = exc.code_str
        if got == OOO:
            assert exc.status == 409
            assert exc.details == {"state": state.value}
            assert repr(TABLE[step].source.value) in exc.message
    else:
        got = OK
    assert got == answer


def test_moves_follow_the_table() -> None:
    assert states.move(Step.IDENTITY_PROOF, State.IDENTIFIED) == ("started", "identified")
    assert states.move(Step.SCOPE_REQUEST, State.PENDING_USER) == ("identified", "pending_user")
    assert states.move(Step.SCOPE_REQUEST, State.APPROVED) == ("identified", "approved")
    assert states.move(Step.CONFIRMATION, State.DENIED) == ("pending_user", "denied")
    assert states.move(Step.COMPLETE, State.COMPLETED) == ("approved", "completed")
    with pytest.raises(ValueError):
        states.move(Step.IDENTITY_PROOF, State.APPROVED)  # no step skips ahead
    with pytest.raises(ValueError):
        states.move(Step.SCOPE_RESULT, State.COMPLETED)  # step 8 only reads


def test_every_state_but_the_first_is_reached_by_some_step() -> None:
    reached = {t for transition in TABLE.values() for t in transition.targets}
    assert reached == set(State) - {State.STARTED}
